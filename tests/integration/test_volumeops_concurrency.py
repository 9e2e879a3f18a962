"""Many create/delete operations from several threads on one session: no errors, nothing leaked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from test_volumeops import GiB, all_vms, new_id  # fixtures inventory, made, ops, places: see conftest.py

from terraform_provider_vmdk.vsphere.volumes import specs

pytestmark = pytest.mark.integration

OPERATIONS = 20
THREADS = 10


def test_parallel_create_delete(vsphere_session, inventory, ops, made, places):
    ids = [new_id() for _ in range(OPERATIONS)]
    made.ids.update(ids)

    def lifecycle(i: int) -> str:
        vid = ids[i]
        b = ops.create_backing(vid, f"p{i}", GiB, specs.DISK_TYPES[i % 3], "lsiLogic", places[i % len(places)])
        assert ops.find_backing(vid).moref_value == b.moref_value
        ops.delete_backing(b)
        return vid

    with ThreadPoolExecutor(THREADS) as pool:
        done = list(pool.map(lifecycle, range(OPERATIONS)))
    assert sorted(done) == sorted(ids)

    # inventory scan: none of the volumes is left behind, and the shared folder was made once
    wanted = {f"volume-{v}" for v in ids}
    assert not [o.props["name"] for o in all_vms(vsphere_session, inventory) if o.props["name"] in wanted]
    assert not set(ids) & set(ops.list_backings())
    children = vsphere_session.get_properties(inventory.vm_folder, ["childEntity"])["childEntity"]
    names = [vsphere_session.get_properties(c, ["name"])["name"] for c in children if c._wsdlName == "Folder"]
    assert names.count("Volumes") == 1


def test_parallel_creates_then_batch_list(vsphere_session, inventory, ops, made, places):
    ids = [new_id() for _ in range(OPERATIONS)]
    made.ids.update(ids)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: ops.create_backing(ids[i], f"q{i}", GiB, "thin", "paraVirtual",
                                                   places[i % len(places)]), range(OPERATIONS)))
    listed = ops.list_backings()
    assert set(ids) <= set(listed)
    assert all(listed[v].adapter_type == "paraVirtual" and listed[v].disk_uuid == v for v in ids)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(ops.delete_backing, [listed[v] for v in ids]))
    assert not set(ids) & set(ops.list_backings())
