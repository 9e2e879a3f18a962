"""Disk data in and out of vSphere through HttpNfcLeases (ImportVApp, ExportVm), as Cinder moves images.

Import makes the shadow VM itself — its configSpec carries the volume's identity (instanceUuid, marks), so
a lost ImportVApp answer is reconciled by looking the VM up — and streams a streamOptimized VMDK to the
lease's device URL. Any failure aborts the lease, which makes vSphere remove what the import created.
Export streams the disk back as a streamOptimized VMDK. Lease progress is reported while data flows
(vSphere ends a lease that reports nothing for its timeout).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pyVmomi import vim

from .. import exceptions as exc
from ..connection import budget as _budget
from ..connection import tasks as _tasks
from ..connection import transfer
from ..connection.transfer import ReadStream, WriteStream
from . import specs
from .backing import is_ours
from .base import OpsBase, is_gone

__all__ = ["Nfc", "STREAM_VMDK"]

LOG = logging.getLogger("terraform_provider_vmdk.vsphere")
STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"
LEASE_POLL = 0.2
LEASE_WAIT = 300.0  # seconds for a lease to become ready


def _named_hosts(info: Any) -> frozenset[str]:
    """The hosts this lease's own device URLs name: the only ones besides our server its transfer may reach."""
    return transfer.lease_hosts(d.url for d in (info.deviceUrl or []) if isinstance(getattr(d, "url", None), str))


class Nfc(OpsBase):
    def _lease_state(self, lease: Any) -> tuple[Any, Any, Any]:
        props = self.session.get_properties(lease, ["state", "error", "info"])
        return props.get("state"), props.get("error"), props.get("info")

    def _ready(self, lease: Any, what: str) -> Any:
        """Wait for the lease to be ready; its info (device URLs)."""
        allowance = _budget.current()
        deadline = time.monotonic() + LEASE_WAIT
        while True:
            state, error, info = self._lease_state(lease)
            if state == vim.HttpNfcLease.State.ready:
                return info
            if state == vim.HttpNfcLease.State.error:
                raise _tasks.task_failed(error, what)
            if time.monotonic() > deadline:
                raise exc.TaskTimeout(task=what, timeout=LEASE_WAIT)
            allowance.sleep(LEASE_POLL)

    def _abort(self, lease: Any) -> None:
        try:
            with _budget.scoped(_budget.UNLIMITED):  # runs because the operation failed or was stopped
                self.session.call(lease.HttpNfcLeaseAbort)
        except Exception as error:  # noqa: BLE001 - the lease may be gone or done already
            LOG.debug("could not abort lease %s: %s", lease, error)

    def _progress(self, lease: Any, total: int) -> Callable[[int], None]:
        def report(done: int) -> None:
            percent = min(99, 100 * done // total) if total else 50
            try:
                self.session.call(lease.HttpNfcLeaseProgress, percent=percent)
            except Exception as error:  # noqa: BLE001 - progress is a keep-alive, not the transfer
                LOG.debug("lease progress: %s", error)
        return report

    def import_stream(self, *, pool: Any, folder: Any, host: Any, config: vim.vm.ConfigSpec, volume_id: str,
                      opener: Callable[[], ReadStream], size: int, what: str) -> Any:
        """ImportVApp a shadow VM from ``config`` and upload the streamOptimized VMDK ``opener()`` gives into
        its disk; the VM. A VM an earlier attempt left for this identity is removed first (its import never
        completed, or this would not be called)."""
        spec = vim.vm.VmImportSpec(configSpec=config)
        self._remove_incomplete_import(volume_id, config, what)
        try:
            lease = self.session.write(pool.ImportVApp, spec=spec, folder=folder, host=host)
        except exc.OutcomeUnknown:
            _tasks.settle(self.session, pool)
            # the import began but its lease is lost: what it made holds no data yet; start over once
            self._remove_incomplete_import(volume_id, config, what)
            lease = self.session.write(pool.ImportVApp, spec=spec, folder=folder, host=host)
        try:
            info = self._ready(lease, what)
            urls = [d for d in (info.deviceUrl or []) if d.disk]
            if len(urls) != 1:
                raise exc.VMwareDriverError(f"{what}: the import lease offers {len(urls)} disks, not one")
            transfer.upload(self.session, transfer.device_url(self.session, urls[0].url), opener, size,
                            what=what, content_type=STREAM_VMDK, progress=self._progress(lease, size),
                            hosts=_named_hosts(info))
            self.session.call(lease.HttpNfcLeaseComplete)
        except BaseException:
            self._abort(lease)
            raise
        return info.entity

    def _remove_incomplete_import(self, instance_uuid: str, config: vim.vm.ConfigSpec, what: str) -> None:
        """A VM with this import's identity is an import of ours that never completed (callers import an
        identity only while no complete object holds it: a new volume's id, or a copy's id once any earlier
        copy was settled). It is destroyed only when it provably is that: it owns the instanceUuid and carries
        exactly the marks this import gives (volume id and kind); anything else is an error, never destroyed."""
        stale = self._vm_with_uuid(instance_uuid)
        if stale is None:
            return
        wanted = {o.key: o.value for o in config.extraConfig or () if o.key in (specs.KEY_VOLUME_ID, specs.KEY_KIND)}
        try:
            record = self.get_backing(stale)
        except Exception as error:
            if is_gone(error):
                return
            raise
        if not (record.proven and is_ours(record.extra_config)
                and all(record.extra_config.get(k) == v for k, v in wanted.items())):
            raise exc.VMwareDriverError(f"{what}: VM {record.name} already has the instance UUID {instance_uuid} "
                                        "and is not an import of this provider's; nothing was changed")
        LOG.info("%s: removing the incomplete import an earlier attempt left (%s)", what, record.name)
        self._destroy(stale)

    def _vm_with_uuid(self, instance_uuid: str) -> Any:
        return self.session.call(self.session.content.searchIndex.FindByUuid, datacenter=self.inventory.datacenter,
                                 uuid=instance_uuid, vmSearch=True, instanceUuid=True)

    def export_stream(self, vm: Any, opener: Callable[[], WriteStream], *, what: str) -> int:
        """ExportVm: the VM's one disk as a streamOptimized VMDK into ``opener()``; the bytes written."""
        lease = self.session.call(vm.ExportVm)
        try:
            info = self._ready(lease, what)
            urls = [d for d in (info.deviceUrl or []) if d.disk]
            if len(urls) != 1:
                raise exc.VMwareDriverError(f"{what}: the export lease offers {len(urls)} disks, not one")
            total = int(info.totalDiskCapacityInKB or 0) * 1024
            written = transfer.download(self.session, transfer.device_url(self.session, urls[0].url), opener,
                                        what=what, progress=self._progress(lease, total), hosts=_named_hosts(info))
            self.session.call(lease.HttpNfcLeaseComplete)
            return written
        except BaseException as error:
            if not is_gone(error):
                self._abort(lease)
            raise
