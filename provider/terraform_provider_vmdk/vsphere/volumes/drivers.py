"""The two drivers, after Cinder's ``VMwareVcVmdkDriver`` and ``VMwareEsxVmdkDriver``: everything that differs
between a vCenter and a standalone ESXi host is here, in one place.

``volume_ops`` picks the driver by what the server says it is (``about.apiType``: "VirtualCenter" or
"HostAgent"), never by guessing from names.
"""

from __future__ import annotations

from typing import Any

from .volumeops import VolumeOps

__all__ = ["VcenterVolumeOps", "volume_ops"]


class VcenterVolumeOps(VolumeOps):
    """vCenter: volumes in a folder of their own, clones and moves by CloneVM_Task and RelocateVM_Task,
    storage policies through PBM (all of ``VolumeOps``)."""


def volume_ops(session: Any, inventory: Any, **settings: Any) -> VolumeOps:
    """The driver for the server ``session`` talks to."""
    return VcenterVolumeOps(session, inventory, **settings)
