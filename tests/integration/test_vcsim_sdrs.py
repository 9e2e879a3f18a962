"""Datastore clusters (StoragePods) and Storage DRS in the simulator (tests/vcsim/sdrs.go) against vSphere's
documented behaviour; the evidence for each is in tests/vcsim/FIDELITY.md, "Datastore clusters".

Plain pyVmomi and HTTP, none of the provider's code. Our vCenter model has three pods (harness.PODS,
harness.POD_MEMBER_TABLE): pod-gold (Storage DRS on, automated: gold-1 1000 GiB/400 GiB free, gold-2 900/280,
gold-3 500/180 on DC0_C0_H2 only), pod-silver (on, manual: silver-1 1200/600, silver-2 600/160), pod-off
(disabled: off-1 700/256, off-2 800/200); every member but gold-3 is mounted on DC0_C0_H1 and DC0_C0_H2.

Tests that only place VMs use the session's simulator: they set the members' free space they rely on, make
and remove their own VMs and put the members' state back. Tests that change a pod's settings, membership or a
datastore's tags start a private simulator of their own. The last test documents what a stock vcsim answers.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import uuid

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import pbm, vim, vmodl
from test_vcsim_fidelity import World as FidelityWorld

from tests.vcsim.harness import POD_MEMBER_TABLE, POD_MEMBERS, PODS, start_vcsim

GiB = 1 << 30
TiB = 1 << 40
MiB = 1 << 20

# capacity and free space (bytes) at start, hosts (harness.POD_MEMBER_TABLE)
MEMBERS = {n: (c * GiB, f * GiB, set(h)) for n, (c, f, h) in POD_MEMBER_TABLE.items()}
OTHERS = {"ds-big": 4 * TiB, "ds-c0": 1 * TiB, "ds-c1": 2 * TiB, "ds-small": 100 * GiB, "ds-maint": 8 * TiB,
          "ds-gone": 8 * TiB}


def util(name, demand=0):
    """Space utilisation (%) of a member at its start state with ``demand`` bytes more."""
    capacity, free, _ = MEMBERS[name]
    return 100 * (capacity - free + demand) / capacity


# ------------------------------------------------------------------------------------ fixtures

def connect(sim):
    return SmartConnect(host=sim.host, port=sim.port, user=sim.user, pwd=sim.password,
                        sslContext=ssl.create_default_context(cafile=sim.ca_file))


def wait(task, timeout=60.0):
    deadline = time.monotonic() + timeout
    while task.info.state not in ("success", "error"):
        assert time.monotonic() < deadline, f"task {task} still {task.info.state}"
        time.sleep(0.05)
    if task.info.state == "error":
        raise task.info.error
    return task.info.result


class World(FidelityWorld):
    """Our vCenter model through pyVmomi, with Storage DRS helpers."""

    def __init__(self, sim, si):  # FidelityWorld's, with a folder of our own
        self.sim, self.si = sim, si
        self.content = si.RetrieveContent()
        self.dc = next(e for e in self.content.rootFolder.childEntity if isinstance(e, vim.Datacenter))
        self.hosts = {h.name: h for cr in self.dc.hostFolder.childEntity for h in cr.host}
        self.ds = {d.name: d for d in self.dc.datastore}
        self.srm = self.content.storageResourceManager
        self.clusters = {c.name: c for c in self.dc.hostFolder.childEntity}
        self.folder = self._folder("sdrs-tests")

    def pods(self):
        return {e.name: e for e in self.dc.datastoreFolder.childEntity if isinstance(e, vim.StoragePod)}

    def pod(self, name):
        return self.pods()[name]

    def cluster_pool(self, cluster="DC0_C0"):
        return self.clusters[cluster].resourcePool

    # ------------------------------------------------------------------ specs
    @staticmethod
    def config(name, size=GiB, key=-101, thin=True, files=None, instance_uuid=None, extra=None):
        """A CreateVM config: a controller and one new disk of ``size`` (device key ``key``); no datastore
        anywhere unless ``files`` names one (the VM's files and disks then go there)."""
        disk = vim.vm.device.VirtualDisk(
            key=key, controllerKey=1000, unitNumber=0, capacityInKB=size // 1024, capacityInBytes=size,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=thin))
        return vim.vm.ConfigSpec(
            name=name, guestId="otherGuest", numCPUs=1, memoryMB=64,
            files=vim.vm.FileInfo(vmPathName=files) if files else None,
            instanceUuid=instance_uuid,
            extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in (extra or {}).items()],
            deviceChange=[
                vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.VirtualLsiLogicController(
                    key=1000, busNumber=0, sharedBus="noSharing")),
                vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk),
            ])

    @staticmethod
    def selection(pod, disks=(-101,), profile=None, vm_config=None):
        """podSelectionSpec: the VM's files in pod and a PodDiskLocator per disk key, in pod."""
        locs = [vim.storageDrs.PodSelectionSpec.DiskLocator(
            diskId=k, profile=[vim.vm.DefinedProfileSpec(profileId=profile)] if profile else None) for k in disks]
        return vim.storageDrs.PodSelectionSpec(storagePod=pod, initialVmConfig=[
            vim.storageDrs.PodSelectionSpec.VmPodConfig(storagePod=pod, disk=locs, vmConfig=vm_config)])

    def create_spec(self, pod, name=None, size=GiB, host=None, cluster="DC0_C0", lease=None, locators=True, **kw):
        """type=create as terraform-provider-vsphere and govc send it: configSpec without files, the pool,
        podSelectionSpec.storagePod and one disk locator per new disk (diskId = the device key)."""
        name = name or f"sdrs-{uuid.uuid4().hex[:8]}"
        return vim.storageDrs.StoragePlacementSpec(
            type="create", configSpec=self.config(name, size, **kw), resourcePool=self.cluster_pool(cluster),
            host=self.hosts[host] if host else None, folder=self.folder, resourceLeaseDurationSec=lease,
            podSelectionSpec=self.selection(pod) if locators else vim.storageDrs.PodSelectionSpec(storagePod=pod))

    def recommend(self, spec):
        return self.srm.RecommendDatastores(storageSpec=spec)

    @staticmethod
    def order(result):
        return [r.action[0].destination.name for r in result.recommendations]

    def apply(self, *keys):
        return wait(self.srm.ApplyStorageDrsRecommendation_Task(key=list(keys)))

    def create_in(self, pod, **kw):
        """A VM placed by Storage DRS in pod (the top recommendation applied)."""
        result = self.recommend(self.create_spec(pod, **kw))
        return self.apply(result.recommendations[0].key).vm

    def create_on(self, ds, host="DC0_C0_H1", size=GiB, name=None):
        """A VM created directly on a datastore (CreateVM_Task)."""
        name = name or f"sdrs-{uuid.uuid4().hex[:8]}"
        return wait(self.folder.CreateVM_Task(self.config(name, size, files=f"[{ds}]"), self.cluster_pool(),
                                              self.hosts[host]))

    def exists(self, ds_path):
        return self.get(ds_path)[0] == 200

    def view(self, container, recursive=True, types=(vim.Datastore,)):
        """The objects a new container view lists (the view is destroyed)."""
        v = self.content.viewManager.CreateContainerView(container, list(types), recursive)
        try:
            return list(v.view)
        finally:
            v.DestroyView()


@pytest.fixture(scope="module")
def sim(is_vcsim, tmp_path_factory):
    """A simulator of this module's own: its figures (free space, Storage DRS leases) are what the table says,
    whatever other modules did with the session's simulator."""
    if not is_vcsim:
        pytest.skip("tests the simulator of tests/vcsim")
    own = start_vcsim(tmp_path_factory.mktemp("sdrs-sim"))
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def w(sim):
    si = connect(sim)
    world = World(sim, si)
    try:
        yield world
    finally:
        try:
            if not world.folder.childEntity:
                wait(world.folder.Destroy_Task())
        finally:
            Disconnect(si)


@pytest.fixture
def private(is_vcsim, tmp_path):
    """A simulator of this test's own (our vCenter model), for tests that change pods."""
    if not is_vcsim:
        pytest.skip("starts the simulator of tests/vcsim")
    sim = start_vcsim(tmp_path)
    si = connect(sim)
    try:
        yield World(sim, si)
    finally:
        Disconnect(si)
        sim.stop()


@pytest.fixture
def members(w, sim):
    """Set pod members' state through the test endpoint; every member is put back as it was afterwards."""
    saved = {n: (w.ds[n].summary.capacity, w.ds[n].summary.freeSpace, w.ds[n].summary.maintenanceMode,
                 w.ds[n].summary.accessible) for n in POD_MEMBERS}

    def change(name, **kw):
        sim.set_datastore(name, **kw)

    yield change
    for n, (capacity, free, maint, accessible) in saved.items():
        sim.set_datastore(n, capacity=capacity, free=free, maintenance=maint, accessible=accessible)


@pytest.fixture
def made(w, members):
    """VMs to destroy after the test (before members are put back)."""
    vms: list = []
    yield vms
    for vm in reversed(vms):
        w.destroy(vm)


def start_state(members, *names):
    """Members' free space as the table has it (other tests may have used some)."""
    for n in names or POD_MEMBERS:
        members(n, free=MEMBERS[n][1])


# --------------------------------------------------------------------------------------- model

def test_model_has_datastore_clusters_with_their_own_members(w):
    pods = w.pods()
    assert set(pods) == set(PODS)
    for name, want in PODS.items():
        pod = pods[name]
        assert isinstance(pod, vim.StoragePod) and pod.childType == ["Datastore"]
        assert [d.name for d in pod.childEntity] == list(want)  # each member once
        for d in pod.childEntity:
            assert d.parent == pod
            capacity, _, hosts = MEMBERS[d.name]
            assert d.summary.type == "VMFS" and d.summary.capacity == capacity
            assert {m.key.name for m in d.host} == hosts
    config = {n: pods[n].podStorageDrsEntry.storageDrsConfig.podConfig for n in PODS}
    assert {n: (c.enabled, c.defaultVmBehavior) for n, c in config.items()} == {
        "pod-gold": (True, "automated"), "pod-silver": (True, "manual"), "pod-off": (False, "manual")}
    gold = config["pod-gold"]
    assert gold.defaultIntraVmAffinity is True and gold.loadBalanceInterval == 480
    assert gold.spaceLoadBalanceConfig.spaceUtilizationThreshold == 80
    # The datastores the other tests rely on are where they were, as they were.
    for name, capacity in OTHERS.items():
        assert w.ds[name].parent == w.dc.datastoreFolder and w.ds[name].summary.capacity == capacity


def test_container_views_list_pod_members_once_with_the_pod_as_parent(w):
    pods = w.pods()
    for container in (w.dc, w.dc.datastoreFolder, w.content.rootFolder):
        listed = w.view(container)
        names = [d.name for d in listed]
        assert len(names) == len(set(names))  # each datastore once
        assert POD_MEMBERS <= set(names) and set(OTHERS) <= set(names)
        for d in listed:
            if d.name in POD_MEMBERS:
                assert d.parent == pods[next(p for p, m in PODS.items() if d.name in m)]
    # A view of a pod lists its members; a view that does not recurse stops at the pods.
    assert [d.name for d in w.view(pods["pod-silver"], recursive=False)] == list(PODS["pod-silver"])
    flat = {e.name for e in w.view(w.dc.datastoreFolder, recursive=False, types=())}
    assert set(PODS) <= flat and not flat & POD_MEMBERS
    # Entities of every type: the members are there too, and the pods.
    everything = {e.name for e in w.view(w.dc.datastoreFolder, types=())}
    assert set(PODS) | POD_MEMBERS <= everything


def test_pod_summary_is_the_sum_of_its_members(w, members, made):
    pod = w.pod("pod-gold")

    def sums():
        ds = [w.ds[n].summary for n in PODS["pod-gold"]]
        return sum(s.capacity for s in ds), sum(s.freeSpace for s in ds)

    start_state(members, *PODS["pod-gold"])
    assert pod.summary.name == "pod-gold"
    assert (pod.summary.capacity, pod.summary.freeSpace) == sums() == (2400 * GiB, (400 + 280 + 180) * GiB)
    members("gold-2", free=123 * GiB)
    assert (pod.summary.capacity, pod.summary.freeSpace) == sums() == (2400 * GiB, (400 + 123 + 180) * GiB)
    made.append(w.create_on("gold-1", size=2 * GiB))  # CreateVM straight onto a member
    assert pod.summary.freeSpace == (400 - 2 + 123 + 180) * GiB == sums()[1]


# ------------------------------------------------------------------------- RecommendDatastores

def test_recommend_create_ranks_members_by_space_utilisation_after_placement(w, members):
    start_state(members, *PODS["pod-gold"])
    pod = w.pod("pod-gold")
    spec = w.create_spec(pod, size=GiB)
    assert spec.configSpec.files is None  # Storage DRS chooses the VM's datastore
    (disk_change,) = [c for c in spec.configSpec.deviceChange if c.fileOperation == "create"]
    assert spec.podSelectionSpec.initialVmConfig[0].disk[0].diskId == disk_change.device.key == -101
    first = w.recommend(spec)
    # utilisation after placing 1 GiB: gold-1 60.1 %, gold-3 64.2 %, gold-2 69.0 %; by free space alone the
    # order would be gold-1 (400 GiB), gold-2 (280), gold-3 (180)
    assert sorted(PODS["pod-gold"], key=lambda n: util(n, GiB)) == ["gold-1", "gold-3", "gold-2"]
    assert w.order(first) == ["gold-1", "gold-3", "gold-2"]
    assert first.drsFault is None
    recs = first.recommendations
    assert [r.rating for r in recs] == [5, 4, 3]
    assert len({r.key for r in recs}) == 3
    for r in recs:
        assert (r.type, r.reason, r.target) == ("V1", "storagePlacement", pod)
        (action,) = r.action
        assert isinstance(action, vim.storageDrs.StoragePlacementAction) and action.type == "StoragePlacementV1"
        assert action.vm is None  # the VM does not exist yet
        assert action.relocateSpec.datastore == action.destination
        assert [(d.diskId, d.datastore) for d in action.relocateSpec.disk] == [(-101, action.destination)]
        assert action.spaceUtilBefore == pytest.approx(util(action.destination.name), abs=0.01)
        assert action.spaceUtilAfter == pytest.approx(util(action.destination.name, GiB), abs=0.01)
    # keys are unique across calls (vcsim's stub starts at "1" on every call)
    second = w.recommend(w.create_spec(pod, size=GiB))
    assert not {r.key for r in recs} & {r.key for r in second.recommendations}
    # PodSelectionSpec.storagePod alone places the VM's files and the disks with them (vcsim: no recommendation)
    assert w.order(w.recommend(w.create_spec(pod, size=GiB, locators=False))) == ["gold-1", "gold-3", "gold-2"]
    for r in (*recs, *second.recommendations):
        w.srm.CancelStorageDrsRecommendation(key=[r.key])


def test_a_disk_locator_must_name_a_disk_the_request_creates(w):
    spec = w.create_spec(w.pod("pod-gold"))
    spec.podSelectionSpec.initialVmConfig[0].disk[0].diskId = -999  # no device -999 in configSpec.deviceChange
    with pytest.raises(vmodl.fault.InvalidArgument) as e:
        w.recommend(spec)
    assert e.value.invalidProperty == "podSelectionSpec.initialVmConfig.disk.fileBacking"
    for missing in ("resourcePool", "configSpec"):
        spec = w.create_spec(w.pod("pod-gold"))
        setattr(spec, missing, None)
        with pytest.raises(vmodl.fault.InvalidArgument) as e:
            w.recommend(spec)
        assert e.value.invalidProperty == missing


def test_members_without_room_get_no_recommendation(w, members):
    start_state(members, *PODS["pod-gold"])
    pod = w.pod("pod-gold")
    result = w.recommend(w.create_spec(pod, size=250 * GiB))
    assert w.order(result) == ["gold-1", "gold-2"] and result.drsFault is None  # gold-3 has 180 GiB free
    assert w.order(w.recommend(w.create_spec(pod, size=280 * GiB))) == ["gold-1", "gold-2"]  # exactly full is room
    assert w.order(w.recommend(w.create_spec(pod, size=281 * GiB))) == ["gold-1"]


def test_no_member_with_room_answers_a_drs_fault(w, members):
    pod = w.pod("pod-gold")
    for n in PODS["pod-gold"]:
        members(n, free=GiB)
    result = w.recommend(w.create_spec(pod, size=10 * GiB))
    assert result.recommendations == [] and result.drsFault.reason == "storagePlacement"
    (by_vm,) = result.drsFault.faultsByVm
    (fault,) = by_vm.fault
    assert by_vm.vm is None and isinstance(fault, vim.fault.InsufficientStorageSpace)
    assert "Insufficient" in fault.msg and "pod-gold" in fault.msg
    # the pod as a whole has room (3 GiB), no member does: still no recommendation
    assert w.recommend(w.create_spec(pod, size=2 * GiB)).recommendations == []


def test_members_out_of_service_or_not_mounted_by_the_pools_hosts_are_left_out(w, members):
    start_state(members, *PODS["pod-gold"])
    pod = w.pod("pod-gold")
    # gold-3 is mounted on DC0_C0_H2 only: a VM asked on DC0_C0_H1 cannot use it
    assert w.order(w.recommend(w.create_spec(pod, host="DC0_C0_H1"))) == ["gold-1", "gold-2"]
    assert w.order(w.recommend(w.create_spec(pod, host="DC0_C0_H2"))) == ["gold-1", "gold-3", "gold-2"]
    # no host of cluster DC0_C1 mounts a member
    result = w.recommend(w.create_spec(pod, cluster="DC0_C1"))
    assert result.recommendations == []
    assert isinstance(result.drsFault.faultsByVm[0].fault[0], vim.fault.NoCompatibleDatastore)
    members("gold-1", maintenance="enteringMaintenance")
    members("gold-2", accessible=False)
    assert w.order(w.recommend(w.create_spec(pod))) == ["gold-3"]
    members("gold-3", maintenance="inMaintenance")
    result = w.recommend(w.create_spec(pod, size=MiB))
    assert result.recommendations == []
    assert isinstance(result.drsFault.faultsByVm[0].fault[0], vim.fault.NoCompatibleDatastore)


def test_a_resource_lease_holds_the_space_of_the_top_recommendation(w, members):
    start_state(members, *PODS["pod-gold"])
    pod = w.pod("pod-gold")
    # 200 GiB: gold-1 80.0 % after, gold-2 91.1 %, gold-3 has no room
    held = w.recommend(w.create_spec(pod, size=200 * GiB, lease=300))
    assert w.order(held) == ["gold-1", "gold-2"]
    # gold-1's 200 GiB are held for the first call: it would be 100 % full, gold-2 goes first now
    assert w.order(w.recommend(w.create_spec(pod, size=200 * GiB))) == ["gold-2", "gold-1"]
    w.srm.CancelStorageDrsRecommendation(key=[r.key for r in held.recommendations])
    assert w.order(w.recommend(w.create_spec(pod, size=200 * GiB))) == ["gold-1", "gold-2"]
    # a lease ends after its duration
    w.recommend(w.create_spec(pod, size=200 * GiB, lease=1))
    time.sleep(1.5)
    assert w.order(w.recommend(w.create_spec(pod, size=200 * GiB))) == ["gold-1", "gold-2"]
    # without a lease nothing is held: back-to-back calls get the same answer (terraform-provider-vsphere #2448)
    w.recommend(w.create_spec(pod, size=200 * GiB))
    assert w.order(w.recommend(w.create_spec(pod, size=200 * GiB))) == ["gold-1", "gold-2"]


# ------------------------------------------------------------------------------------- Apply

def test_apply_create_makes_the_vm_on_the_recommended_member(w, members, made):
    start_state(members, *PODS["pod-gold"])
    pod = w.pod("pod-gold")
    name, iid = f"sdrs-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    result = w.recommend(w.create_spec(pod, name=name, instance_uuid=iid, extra={"vmdk.volume.id": iid}))
    top, sibling = result.recommendations[0], result.recommendations[1]
    assert top.action[0].destination.name == "gold-1"
    task = w.srm.ApplyStorageDrsRecommendation_Task(key=[top.key])
    res = wait(task)
    assert isinstance(res, vim.storageDrs.ApplyRecommendationResult) and task.info.entity == pod
    vm = res.vm
    assert isinstance(vm, vim.VirtualMachine)
    made.append(vm)
    assert vm.name == name and vm.parent == w.folder and vm.config.instanceUuid == iid
    assert {o.key: o.value for o in vm.config.extraConfig}["vmdk.volume.id"] == iid
    assert vm.config.files.vmPathName == f"[gold-1] {name}/{name}.vmx"
    disk = w.disk(vm).backing.fileName
    assert disk == f"[gold-1] {name}/{name}.vmdk" and w.exists(disk) and w.exists(w.flat(disk))
    assert [d.name for d in vm.datastore] == ["gold-1"] and vm.runtime.host.name in MEMBERS["gold-1"][2]
    assert w.ds["gold-1"].summary.freeSpace == MEMBERS["gold-1"][1] - GiB
    # "Each recommendation can be applied only once": the same key, another of the call's (the VM is
    # placed) and an unknown one are InvalidArgument; nothing is made.
    for key in (top.key, sibling.key, "no-such-key"):
        with pytest.raises(vmodl.fault.InvalidArgument) as e:
            w.srm.ApplyStorageDrsRecommendation_Task(key=[key])
        assert e.value.invalidProperty == "key"
    assert [v.name for v in w.folder.childEntity].count(name) == 1
    assert w.ds["gold-1"].summary.freeSpace == MEMBERS["gold-1"][1] - GiB


def test_a_vm_created_without_host_gets_one_that_mounts_its_datastore(w, members, made):
    """CreateVM_Task without host (as Apply runs it) on gold-3, which DC0_C0_H2 alone mounts: the VM runs there,
    and the cluster keeps its hosts (vcsim 0.24.2 filtered the cluster's own host list in place)."""
    hosts = [h.name for h in w.clusters["DC0_C0"].host]
    assert hosts == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    name = f"sdrs-{uuid.uuid4().hex[:8]}"
    vm = wait(w.folder.CreateVM_Task(w.config(name, MiB, files="[gold-3]"), w.cluster_pool()))
    made.append(vm)
    assert vm.runtime.host.name == "DC0_C0_H2"
    assert [h.name for h in w.clusters["DC0_C0"].host] == hosts


def test_apply_to_pod_applies_a_key_of_that_pod_only(w, members, made):
    gold, silver = w.pod("pod-gold"), w.pod("pod-silver")
    key = w.recommend(w.create_spec(gold)).recommendations[0].key
    with pytest.raises(vmodl.fault.InvalidArgument):
        w.srm.ApplyStorageDrsRecommendationToPod_Task(pod=silver, key=key)
    vm = wait(w.srm.ApplyStorageDrsRecommendationToPod_Task(pod=gold, key=key)).vm
    made.append(vm)
    assert vm.datastore[0].parent == gold
    with pytest.raises(vmodl.fault.InvalidArgument):
        w.srm.ApplyStorageDrsRecommendationToPod_Task(pod=gold, key=key)


def test_apply_clone_clones_onto_the_member(w, members, made):
    start_state(members, *PODS["pod-gold"])
    source = w.create_on("ds-c0", host="DC0_C0_H1")
    made.append(source)
    pod = w.pod("pod-gold")
    name = f"sdrs-{uuid.uuid4().hex[:8]}"
    spec = vim.storageDrs.StoragePlacementSpec(
        type="clone", vm=source, folder=w.folder, cloneName=name,
        cloneSpec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=w.cluster_pool()),
                                   config=vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="k", value="v")])),
        podSelectionSpec=vim.storageDrs.PodSelectionSpec(storagePod=pod))
    result = w.recommend(spec)
    assert w.order(result) == ["gold-1", "gold-3", "gold-2"]
    assert result.recommendations[0].action[0].vm is None  # the clone does not exist yet
    clone = w.apply(result.recommendations[0].key).vm
    made.append(clone)
    assert clone.name == name and clone.config.files.vmPathName == f"[gold-1] {name}/{name}.vmx"
    assert w.disk(clone).backing.fileName.startswith("[gold-1] ") and w.exists(w.disk(clone).backing.fileName)
    assert {o.key: o.value for o in clone.config.extraConfig}["k"] == "v"
    assert w.disk(source).backing.fileName.startswith("[ds-c0] ")  # the source stays
    assert w.ds["gold-1"].summary.freeSpace == MEMBERS["gold-1"][1] - GiB


def test_apply_relocate_moves_the_vm_into_another_pod(w, members, made):
    start_state(members)
    vm = w.create_in(w.pod("pod-gold"))
    made.append(vm)
    before = w.disk(vm).backing.fileName
    silver = w.pod("pod-silver")
    spec = vim.storageDrs.StoragePlacementSpec(type="relocate", vm=vm, relocateSpec=vim.vm.RelocateSpec(),
                                               podSelectionSpec=vim.storageDrs.PodSelectionSpec(storagePod=silver))
    result = w.recommend(spec)
    assert w.order(result) == ["silver-1", "silver-2"]
    assert result.recommendations[0].action[0].vm == vm
    res = w.apply(result.recommendations[0].key)
    assert isinstance(res, vim.storageDrs.ApplyRecommendationResult) and res.vm is None  # "no return value"
    assert [d.name for d in vm.datastore] == ["silver-1"]
    after = w.disk(vm).backing.fileName
    assert after.startswith("[silver-1] ") and w.exists(after) and not w.exists(before)
    assert w.ds["gold-1"].summary.freeSpace == MEMBERS["gold-1"][1]
    assert w.ds["silver-1"].summary.freeSpace == MEMBERS["silver-1"][1] - GiB


def test_apply_reconfigure_puts_a_new_disk_with_the_vm(w, members, made):
    pod = w.pod("pod-gold")
    start_state(members, *PODS["pod-gold"])
    vm = w.create_in(pod)  # on gold-1
    made.append(vm)
    members("gold-2", free=800 * GiB)  # far emptier, but the VM's disks stay together (intra-VM affinity)
    disk = vim.vm.device.VirtualDisk(
        key=-102, controllerKey=1000, unitNumber=1, capacityInKB=MiB // 1024,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True))
    config = vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)])
    spec = vim.storageDrs.StoragePlacementSpec(type="reconfigure", vm=vm, configSpec=config,
                                               podSelectionSpec=w.selection(pod, disks=(-102,)))
    spec.podSelectionSpec.storagePod = None  # as terraform-provider-vsphere's ReconfigureVM sends it
    result = w.recommend(spec)
    assert w.order(result) == ["gold-1"]
    assert w.apply(result.recommendations[0].key).vm is None
    files = sorted(d.backing.fileName for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    assert len(files) == 2 and all(f.startswith("[gold-1] ") and w.exists(f) for f in files)


def test_a_linked_clone_is_placed_with_its_base_disk(w, members, made):
    source = w.create_on("gold-2", host="DC0_C0_H1")
    made.append(source)
    snap = wait(source.CreateSnapshot_Task(name="base", memory=False, quiesce=False))
    spec = vim.storageDrs.StoragePlacementSpec(
        type="clone", vm=source, folder=w.folder, cloneName=f"sdrs-{uuid.uuid4().hex[:8]}",
        cloneSpec=vim.vm.CloneSpec(snapshot=snap, location=vim.vm.RelocateSpec(
            diskMoveType="createNewChildDiskBacking")),
        podSelectionSpec=vim.storageDrs.PodSelectionSpec(storagePod=w.pod("pod-gold")))
    assert w.order(w.recommend(spec)) == ["gold-2"]


def test_initial_vm_config_is_saved_to_the_pod_when_applied(w, members, made):
    pod = w.pod("pod-gold")
    spec = w.create_spec(pod)
    spec.podSelectionSpec = w.selection(pod, vm_config=vim.storageDrs.VmConfigInfo(enabled=False, behavior="manual"))
    vm = w.apply(w.recommend(spec).recommendations[0].key).vm
    made.append(vm)
    saved = [c for c in pod.podStorageDrsEntry.storageDrsConfig.vmConfig if c.vm == vm]
    assert [(c.enabled, c.behavior) for c in saved] == [(False, "manual")]


def test_cancel_drops_recommendations_and_refresh_is_accepted(w, members):
    pod = w.pod("pod-gold")
    folder_before = len(w.folder.childEntity)
    keys = [r.key for r in w.recommend(w.create_spec(pod)).recommendations]
    assert len(keys) == 3
    w.srm.CancelStorageDrsRecommendation(key=keys[:1])
    for bad in (keys[:1], ["no-such-key"]):
        with pytest.raises(vmodl.fault.InvalidArgument):
            w.srm.CancelStorageDrsRecommendation(key=bad)
    with pytest.raises(vmodl.fault.InvalidArgument):
        w.srm.ApplyStorageDrsRecommendation_Task(key=keys[:1])
    w.srm.CancelStorageDrsRecommendation(key=keys[1:])
    with pytest.raises(vmodl.fault.InvalidArgument):
        w.srm.ApplyStorageDrsRecommendationToPod_Task(pod=pod, key=keys[1])
    assert len(w.folder.childEntity) == folder_before  # nothing was made
    w.srm.RefreshStorageDrsRecommendation(pod=pod)
    assert not pod.podStorageDrsEntry.recommendation


# ------------------------------------------------------------ pod settings (private simulators)

def test_a_pod_with_storage_drs_disabled_is_an_invalid_argument(private):
    w = private
    for spec in (w.create_spec(w.pod("pod-off")), w.create_spec(w.pod("pod-off"), locators=False)):
        with pytest.raises(vmodl.fault.InvalidArgument) as e:
            w.recommend(spec)
        assert e.value.invalidProperty == "podSelectionSpec.storagePod"
    gold = w.pod("pod-gold")
    off = vim.storageDrs.ConfigSpec(podConfigSpec=vim.storageDrs.PodConfigSpec(enabled=False))
    wait(w.srm.ConfigureStorageDrsForPod_Task(pod=gold, spec=off, modify=True))
    assert gold.podStorageDrsEntry.storageDrsConfig.podConfig.enabled is False
    with pytest.raises(vmodl.fault.InvalidArgument):
        w.recommend(w.create_spec(gold))
    on = vim.storageDrs.ConfigSpec(podConfigSpec=vim.storageDrs.PodConfigSpec(enabled=True))
    wait(w.srm.ConfigureStorageDrsForPod_Task(pod=gold, spec=on, modify=True))
    assert w.recommend(w.create_spec(gold)).recommendations


def test_storage_policies_in_disk_locators_narrow_the_members(private):
    w = private
    pm = w.pbm().profileManager
    ids = pm.PbmQueryProfile(resourceType=pbm.profile.ResourceType(resourceType="STORAGE"),
                             profileCategory="REQUIREMENT")
    gold = next(p.profileId.uniqueId for p in pm.PbmRetrieveContent(ids) if p.name == "vmdk-gold")
    pod = w.pod("pod-gold")
    spec = w.create_spec(pod)
    spec.podSelectionSpec = w.selection(pod, profile=gold)
    result = w.recommend(spec)  # no member carries tier=gold
    assert result.recommendations == [] and isinstance(result.drsFault.faultsByVm[0].fault[0],
                                                       vim.fault.NoCompatibleDatastore)
    w.sim.set_datastore_tag("gold-2", "tier", "gold")
    assert w.order(w.recommend(spec)) == ["gold-2"]


def test_datastores_move_into_a_pod_one_at_a_time_and_out_again(private):
    w = private
    off = w.pod("pod-off")
    one, two = w.ds["off-1"], w.ds["off-2"]
    pod = w.dc.datastoreFolder.CreateStoragePod("pod-new")
    assert (pod.summary.capacity, pod.childEntity) == (0, [])
    wait(pod.MoveIntoFolder_Task([one]))
    wait(pod.MoveIntoFolder_Task([two]))
    assert pod.childEntity == [one, two] and off.childEntity == []  # vcsim: [off-1, off-1, off-2]
    assert one.parent == pod and two.parent == pod
    assert (pod.summary.capacity, pod.summary.freeSpace) == ((700 + 800) * GiB, (256 + 200) * GiB)
    assert (off.summary.capacity, off.summary.freeSpace) == (0, 0)
    wait(w.dc.datastoreFolder.MoveIntoFolder_Task([two]))  # out of the pod (vcsim: NotSupported)
    assert two.parent == w.dc.datastoreFolder and pod.childEntity == [one]
    assert [e for e in w.dc.datastoreFolder.childEntity if e == two] == [two]
    assert pod.summary.capacity == 700 * GiB
    wait(w.dc.datastoreFolder.MoveIntoFolder_Task([two]))  # already there: still once
    assert [e for e in w.dc.datastoreFolder.childEntity if e == two] == [two]
    wait(off.MoveIntoFolder_Task([one, two]))
    assert off.childEntity == [one, two] and one.parent == off and two.parent == off
    assert two not in w.dc.datastoreFolder.childEntity and pod.childEntity == []
    names = [d.name for d in w.view(w.dc)]
    assert names.count("off-1") == 1 and names.count("off-2") == 1
    # A folder takes no datastore into a pod it does not hold; a VM folder takes no datastore.
    with pytest.raises(vmodl.fault.NotSupported):
        wait(w.dc.vmFolder.MoveIntoFolder_Task([one]))
    assert one.parent == off
    # An empty pod can be destroyed.
    wait(pod.Destroy_Task())
    assert "pod-new" not in w.pods()


def test_pod_control_changes_storage_drs_settings_and_members(private):
    w, sim = private, private.sim
    silver = w.pod("pod-silver")
    assert {p["name"]: p for p in sim.pods()}["pod-silver"] == {
        "name": "pod-silver", "sdrs": True, "behavior": "manual", "datastores": list(PODS["pod-silver"])}
    sim.set_pod("pod-silver", sdrs=False, behavior="automated")
    config = silver.podStorageDrsEntry.storageDrsConfig.podConfig
    assert (config.enabled, config.defaultVmBehavior) == (False, "automated")
    assert {p["name"]: p for p in sim.pods()}["pod-silver"] == {
        "name": "pod-silver", "sdrs": False, "behavior": "automated", "datastores": list(PODS["pod-silver"])}
    with pytest.raises(vmodl.fault.InvalidArgument):  # Storage DRS is off now
        w.recommend(w.create_spec(silver))
    sim.set_pod("pod-off", remove=["off-2"])
    assert w.ds["off-2"].parent == w.dc.datastoreFolder and [d.name for d in w.pod("pod-off").childEntity] == ["off-1"]
    sim.set_pod("pod-gold", add=["off-2"])
    assert w.ds["off-2"].parent == w.pod("pod-gold") and w.pod("pod-gold").summary.capacity == (2400 + 800) * GiB
    for bad in ({"name": "pod-nope"}, {"name": "pod-gold", "sdrs": "maybe"}, {"name": "pod-gold", "remove": "ds-big"}):
        with pytest.raises(urllib.error.HTTPError) as e:
            sim._post("/vmdk-test/pod", bad)
        assert e.value.code in (400, 404)


# ------------------------------------------------------------------------------- svmotion

def test_svmotion_control_moves_a_vm_or_one_of_its_disks(w, sim, members, made):
    start_state(members)
    vm = w.create_in(w.pod("pod-gold"))  # gold-1
    made.append(vm)
    other = w.create_in(w.pod("pod-gold"))  # gold-1 too; it must stay where it is
    made.append(other)
    name = vm.name
    old_disk = w.disk(vm).backing.fileName
    sim.svmotion(name, "gold-2")  # as Storage DRS in automated mode would
    assert [d.name for d in vm.datastore] == ["gold-2"]
    assert vm.config.files.vmPathName == f"[gold-2] {name}/{name}.vmx"
    assert w.disk(vm).backing.fileName == f"[gold-2] {name}/{name}.vmdk"
    assert w.exists(w.disk(vm).backing.fileName) and not w.exists(old_disk)
    assert w.disk(other).backing.fileName.startswith("[gold-1] ") and w.exists(w.disk(other).backing.fileName)
    assert w.ds["gold-1"].summary.freeSpace == MEMBERS["gold-1"][1] - GiB  # only the other VM's disk is left
    sim.svmotion(vm._GetMoId(), "ds-c0")  # out of the pod
    assert [d.name for d in vm.datastore] == ["ds-c0"] and w.disk(vm).backing.fileName.startswith("[ds-c0] ")
    assert w.ds["gold-2"].summary.freeSpace == MEMBERS["gold-2"][1]
    key = w.disk(vm).key
    sim.svmotion(name, "gold-2", disk=key)  # that disk only: the VM's files stay
    moved = w.disk(vm).backing.fileName
    assert moved.startswith("[gold-2] ") and w.exists(moved) and vm.config.files.vmPathName.startswith("[ds-c0] ")
    with pytest.raises(urllib.error.HTTPError) as e:
        sim.svmotion(name, "ds-c1")  # the VM's host (DC0_C0_H1) does not mount ds-c1
    assert e.value.code == 409 and "DatastoreNotWritableOnHost" in e.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as e:
        sim.svmotion("no-such-vm", "gold-2")
    assert e.value.code == 404


# ------------------------------------------------------------------------------------ stock

def test_stock_vcsim_has_no_pods_a_stub_recommend_and_no_apply(is_vcsim, tmp_path):
    """What a stock vcsim 0.24.2 answers (the provider must cope): FIDELITY.md, "Datastore clusters"."""
    if not is_vcsim:
        pytest.skip("starts the simulator of tests/vcsim")
    stock = start_vcsim(tmp_path, mode="stock")
    si = connect(stock)
    try:
        content = si.RetrieveContent()
        dc = content.rootFolder.childEntity[0]
        srm = content.storageResourceManager
        assert not [e for e in dc.datastoreFolder.childEntity if isinstance(e, vim.StoragePod)]  # no pods of ours
        pod = dc.datastoreFolder.CreateStoragePod("pod")
        config = pod.podStorageDrsEntry.storageDrsConfig.podConfig
        assert (config.enabled, config.defaultVmBehavior) == (True, "")
        ds = dc.datastore[0]
        wait(pod.MoveIntoFolder_Task([ds]))
        assert pod.childEntity == [ds] and (pod.summary.capacity, pod.summary.freeSpace) == (0, 0)
        cluster = next(c for c in dc.hostFolder.childEntity if isinstance(c, vim.ClusterComputeResource))

        def spec(locators):
            return vim.storageDrs.StoragePlacementSpec(
                type="create", configSpec=World.config("x", MiB), resourcePool=cluster.resourcePool,
                folder=dc.vmFolder,
                podSelectionSpec=World.selection(pod) if locators else vim.storageDrs.PodSelectionSpec(storagePod=pod))

        assert srm.RecommendDatastores(spec(False)).recommendations == []  # no locator, no recommendation
        for _ in range(2):
            (rec,) = srm.RecommendDatastores(spec(True)).recommendations
            assert (rec.key, rec.rating, rec.reason) == ("1", 1, "storagePlacement")  # "1" on every call
            assert rec.action[0].destination == ds and rec.action[0].relocateSpec.datastore == ds
        for call in (lambda: srm.ApplyStorageDrsRecommendation_Task(key=["1"]),
                     lambda: srm.ApplyStorageDrsRecommendationToPod_Task(pod=pod, key="1"),
                     lambda: srm.CancelStorageDrsRecommendation(key=["1"]),
                     lambda: srm.RefreshStorageDrsRecommendation(pod=pod)):
            with pytest.raises(vmodl.fault.MethodNotFound) as e:
                call()
            assert "StorageResourceManager does not implement" in e.value.msg
        with pytest.raises(vmodl.fault.NotSupported):  # out of a pod
            wait(dc.datastoreFolder.MoveIntoFolder_Task([ds]))
        srm.ConfigureStorageDrsForPod_Task(pod=pod, modify=True, spec=vim.storageDrs.ConfigSpec(
            podConfigSpec=vim.storageDrs.PodConfigSpec(enabled=False)))  # its task's entity pyVmomi cannot read
        with pytest.raises(vmodl.fault.InvalidArgument) as e:
            srm.RecommendDatastores(spec(True))
        assert e.value.invalidProperty == "configSpec.files"
    finally:
        Disconnect(si)
        stock.stop()
