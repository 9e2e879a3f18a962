"""Shadow-VM operations on vSphere, after Cinder's VMware VMDK driver's ``volumeops.py`` (1.5.0).

A volume is a never-powered-on VM named ``volume-<id>`` with one VMDK; its instanceUuid is the volume id
and extraConfig marks it ours (see specs.py). ``VolumeOps`` is the *how*, one module per concern:

  base       session, folders, task plumbing        lookup     find by id, the batched index, in-use
  lifecycle  create, delete, rename, annotation     snapshots  COW and template snapshots
  clones     full and linked clones                 resize     relocate, grow, disk type, adapter, policy
  nfc        HttpNfcLease import and export         imports    volumes from images, backups, existing VMDKs
  attachments  a volume on a VM and off it again (Nova's attach, detach and consolidation)

Whether and in which order to do these — extend in place or move first, which retype path, what to
refuse — is decided by the volume policy (``resources/volume_policy.py``), as Cinder's ``vmdk.py`` decides.

Every write is crash-safe: the new object's identity is fixed before the call, a lost answer is settled by
looking the object up (``reconcile``), and steps after a create set absolute values, so they can be sent
again. Design notes (where we differ from, or pin down, Cinder):
* Disk UUID: set with ReconfigVM editing ``backing.uuid`` (Cinder's way; works on vSphere and in vcsim,
  where VirtualDiskManager.SetVirtualDiskUuid is a no-op).
* Extend: ReconfigVM growing capacityInKB/capacityInBytes, not ExtendVirtualDisk_Task (deprecated since
  6.5, absent in vcsim).
* Adapter change: the disk is detached and re-attached in one ReconfigVM (Cinder uses two), so no failure
  leaves a volume without its disk.
"""

from __future__ import annotations

from collections.abc import Callable

from ..connection import transfer
from ..connection.transfer import ReadStream, WriteStream
from .attachments import Attachments
from .imports import Imports

__all__ = ["VolumeOps"]


class VolumeOps(Imports, Attachments):
    """All shadow-VM operations for one datacenter; safe to share between threads."""

    def _datacenter_path(self) -> str:
        name = getattr(self.inventory, "datacenter_name", None)
        if name:
            return str(name)
        return str(self.session.get_properties(self.inventory.datacenter, ["name"])["name"])

    def upload_file(self, datastore_name: str, path: str, opener: Callable[[], ReadStream], size: int) -> int:
        """PUT a file onto a datastore of this datacenter (HTTPS /folder, session cookie)."""
        return transfer.upload_file(self.session, self._datacenter_path(), datastore_name, path, opener, size)

    def download_file(self, datastore_name: str, path: str, opener: Callable[[], WriteStream]) -> int:
        """GET a datastore file into ``opener()``: the count of bytes written."""
        return transfer.download_file(self.session, self._datacenter_path(), datastore_name, path, opener)
