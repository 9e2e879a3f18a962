package main

// Datastore clusters (StoragePods) with Storage DRS, as vCenter has them (our vCenter model only; an ESXi
// host has none). vcsim 0.24.2 has CreateStoragePod, a stub RecommendDatastores (one recommendation per pod
// child, only for disks named in initialVmConfig, no space, host, maintenance or policy check, keys "1",
// "2"... per call) and no ApplyStorageDrsRecommendation(ToPod)_Task, CancelStorageDrsRecommendation or
// RefreshStorageDrsRecommendation (MethodNotFound); a pod's summary stays 0; moving datastores into a pod
// one at a time duplicates its children, and moving one out answers NotSupported. Evidence per behaviour:
// FIDELITY.md, "Datastore clusters (Storage DRS)".

import (
	"context"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/vmware/govmomi/object"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ------------------------------------------------------------------------------------------ model

type podSpec struct {
	name     string
	enabled  bool
	behavior types.StorageDrsPodConfigInfoBehavior
	members  []dsSpec
}

const (
	behaviorManual    = types.StorageDrsPodConfigInfoBehaviorManual
	behaviorAutomated = types.StorageDrsPodConfigInfoBehaviorAutomated
)

// ourPods are the datastore clusters of main.go's table. Their members are datastores of their own (the
// datastores the other tests rely on are not touched), mounted on DC0_C0_H1 and DC0_C0_H2 (gold-3 on
// DC0_C0_H2 only): fewer hosts than ds-c0/ds-c1, so placement without a pod still ranks them after those.
// A datastore listing of DC0 includes them (as vCenter's does), so every member's capacity and free space
// differ from each other's and from the other datastores' (tests tell datastores apart by them).
func ourPods() []podSpec {
	h12 := []string{"DC0_C0_H1", "DC0_C0_H2"}
	normal := string(types.DatastoreSummaryMaintenanceModeStateNormal)
	return []podSpec{
		{"pod-gold", true, behaviorAutomated, []dsSpec{
			{"gold-1", h12, 1000 * gib, 400 * gib, true, normal},
			{"gold-2", h12, 900 * gib, 280 * gib, true, normal},
			{"gold-3", h12[1:], 500 * gib, 180 * gib, true, normal},
		}},
		{"pod-silver", true, behaviorManual, []dsSpec{
			{"silver-1", h12, 1200 * gib, 600 * gib, true, normal},
			{"silver-2", h12, 600 * gib, 160 * gib, true, normal},
		}},
		{"pod-off", false, behaviorManual, []dsSpec{
			{"off-1", h12, 700 * gib, 256 * gib, true, normal},
			{"off-2", h12, 800 * gib, 200 * gib, true, normal},
		}},
	}
}

// addOurPods creates the pods of ourPods in DC0's datastore folder with their member datastores; it returns
// the members' folders (removed at exit).
func addOurPods() ([]string, error) {
	var dirs []string
	dc, ok := simulator.Map.Any("Datacenter").(*simulator.Datacenter)
	if !ok {
		return nil, fmt.Errorf("no datacenter")
	}
	folder := simulator.Map.Get(dc.DatastoreFolder).(*simulator.Folder)
	ctx := &simulator.Context{Map: simulator.Map, Session: &simulator.Session{}}
	for _, p := range ourPods() {
		res := folder.CreateStoragePod(ctx, &types.CreateStoragePod{This: folder.Self, Name: p.name})
		if f := res.Fault(); f != nil {
			return dirs, fmt.Errorf("pod %s: %s", p.name, f.String)
		}
		pod := simulator.Map.Get(res.(*methods.CreateStoragePodBody).Res.Returnval).(*simulator.StoragePod)
		for _, s := range p.members {
			dir, err := ioutil.TempDir("", "vmdk-vcsim-"+s.name+"-")
			if err != nil {
				return dirs, err
			}
			dirs = append(dirs, dir)
			if err := addDatastore(s, dir); err != nil {
				return dirs, fmt.Errorf("datastore %s: %v", s.name, err)
			}
			moveDatastore(datastoreByName(s.name), pod)
		}
		setPodConfig(pod, types.StorageDrsPodConfigInfo{
			Enabled:                p.enabled,
			IoLoadBalanceEnabled:   false,
			DefaultVmBehavior:      string(p.behavior),
			LoadBalanceInterval:    480,
			DefaultIntraVmAffinity: types.NewBool(true),
			SpaceLoadBalanceConfig: &types.StorageDrsSpaceLoadBalanceConfig{
				SpaceThresholdMode:            "utilization",
				SpaceUtilizationThreshold:     80,
				MinSpaceUtilizationDifference: 5,
			},
		})
	}
	refreshPodSummaries()
	return dirs, nil
}

func setPodConfig(pod *simulator.StoragePod, config types.StorageDrsPodConfigInfo) {
	simulator.Map.WithLock(pod, func() {
		if pod.PodStorageDrsEntry == nil {
			pod.PodStorageDrsEntry = new(types.PodStorageDrsEntry)
		}
		entry := *pod.PodStorageDrsEntry
		entry.StorageDrsConfig.PodConfig = config
		simulator.Map.Update(pod, []types.PropertyChange{{Name: "podStorageDrsEntry", Val: &entry}})
	})
}

func podConfig(pod *simulator.StoragePod) types.StorageDrsPodConfigInfo {
	var c types.StorageDrsPodConfigInfo
	simulator.Map.WithLock(pod, func() {
		if pod.PodStorageDrsEntry != nil {
			c = pod.PodStorageDrsEntry.StorageDrsConfig.PodConfig
		}
	})
	return c
}

func podByName(name string) *simulator.StoragePod {
	for _, e := range simulator.Map.All("StoragePod") {
		if p := e.(*simulator.StoragePod); p.Name == name {
			return p
		}
	}
	return nil
}

// podMembers: the pod's datastores, each once, in child order.
func podMembers(pod *simulator.StoragePod) []*simulator.Datastore {
	var kids []types.ManagedObjectReference
	simulator.Map.WithLock(pod, func() { kids = append(kids, pod.ChildEntity...) })
	var out []*simulator.Datastore
	seen := map[types.ManagedObjectReference]bool{}
	for _, k := range kids {
		if ds, ok := simulator.Map.Get(k).(*simulator.Datastore); ok && !seen[k] {
			seen[k] = true
			out = append(out, ds)
		}
	}
	return out
}

// podOf is the pod a datastore is a member of (its parent), or nil.
func podOf(ds *simulator.Datastore) *simulator.StoragePod {
	if ds == nil || ds.Parent == nil {
		return nil
	}
	p, _ := simulator.Map.Get(*ds.Parent).(*simulator.StoragePod)
	return p
}

// refreshPodSummaries sets every pod's summary to the sums over its members ("the sum of the capacity
// [free space] of all datastores that are part of this storage pod"); vcsim leaves them 0. vCenter updates
// them "periodically"; we do before every SOAP request, so a reader always sees the current sums.
func refreshPodSummaries() {
	for _, e := range simulator.Map.All("StoragePod") {
		pod := e.(*simulator.StoragePod)
		var capacity, free int64
		for _, ds := range podMembers(pod) {
			simulator.Map.WithLock(ds, func() {
				capacity += ds.Summary.Capacity
				free += ds.Summary.FreeSpace
			})
		}
		simulator.Map.WithLock(pod, func() {
			s := pod.Summary
			if s != nil && s.Name == pod.Name && s.Capacity == capacity && s.FreeSpace == free {
				return
			}
			simulator.Map.Update(pod, []types.PropertyChange{{Name: "summary",
				Val: &types.StoragePodSummary{Name: pod.Name, Capacity: capacity, FreeSpace: free}}})
		})
	}
}

// ------------------------------------------------------------------------------ container views

var viewsSeen = struct {
	sync.Mutex
	refs map[types.ManagedObjectReference]bool
}{refs: map[types.ManagedObjectReference]bool{}}

// containerViews: vcsim's ContainerView objects; each is a handler of the global registry (Registry.handlers,
// unexported, read here under the registry's own lock).
func containerViews() []*simulator.ContainerView {
	rv := reflect.ValueOf(simulator.Map).Elem()
	mf, hf := rv.FieldByName("m"), rv.FieldByName("handlers")
	if !mf.IsValid() || !hf.IsValid() {
		return nil
	}
	mu := (*sync.Mutex)(unsafe.Pointer(mf.UnsafeAddr()))
	handlers := *(*map[types.ManagedObjectReference]simulator.RegisterObject)(unsafe.Pointer(hf.UnsafeAddr()))
	mu.Lock()
	defer mu.Unlock()
	var out []*simulator.ContainerView
	for _, h := range handlers {
		if v, ok := h.(*simulator.ContainerView); ok {
			out = append(out, v)
		}
	}
	return out
}

// below: e is root or below it in the inventory.
func below(e mo.Entity, root types.ManagedObjectReference) bool {
	for e != nil {
		if e.Reference() == root {
			return true
		}
		p := e.Entity().Parent
		if p == nil {
			return false
		}
		e, _ = simulator.Map.Get(*p).(mo.Entity)
	}
	return false
}

// fixContainerViews adds the members of datastore clusters to container views made since the last call:
// vCenter's views list every datastore below the container, pod members too; vcsim 0.24.2's walk does not
// enter a StoragePod (govmomi #3094, fixed in 2023 by #3101), so a view of the datacenter's datastores
// misses every member, and a view of a pod is empty.
func fixContainerViews() {
	views := containerViews()
	viewsSeen.Lock()
	defer viewsSeen.Unlock()
	current := map[types.ManagedObjectReference]bool{}
	for _, v := range views {
		current[v.Self] = true
		if viewsSeen.refs[v.Self] {
			continue
		}
		wants := len(v.Type) == 0
		for _, t := range v.Type {
			wants = wants || t == "Datastore" || t == "ManagedEntity"
		}
		root := simulator.Map.Get(v.Container)
		if !wants || root == nil {
			continue
		}
		_, rootIsPod := root.(*simulator.StoragePod)
		var add []types.ManagedObjectReference
		for _, e := range simulator.Map.All("StoragePod") {
			pod := e.(*simulator.StoragePod)
			if pod.Self == v.Container || (v.Recursive && !rootIsPod && below(pod, v.Container)) {
				for _, ds := range podMembers(pod) {
					add = append(add, ds.Self)
				}
			}
		}
		simulator.Map.WithLock(v, func() {
			view := append([]types.ManagedObjectReference{}, v.View...)
			listed := map[types.ManagedObjectReference]bool{}
			for _, r := range view {
				listed[r] = true
			}
			for _, r := range add {
				if !listed[r] {
					listed[r] = true
					view = append(view, r)
				}
			}
			if len(view) != len(v.View) {
				simulator.Map.Update(v, []types.PropertyChange{{Name: "view", Val: view}})
			}
		})
	}
	for ref := range current {
		viewsSeen.refs[ref] = true
	}
	for ref := range viewsSeen.refs {
		if !current[ref] {
			delete(viewsSeen.refs, ref)
		}
	}
}

// beforeRequest keeps what vcsim leaves stale current before each SOAP request (our vCenter model): pod
// summaries and container views.
func beforeRequest() {
	refreshPodSummaries()
	fixContainerViews()
}

// ------------------------------------------------------------------------------- MoveIntoFolder

// folderOf is the *mo.Folder of a Folder or StoragePod.
func folderOf(obj mo.Reference) *mo.Folder {
	switch f := obj.(type) {
	case *simulator.Folder:
		return &f.Folder
	case *simulator.StoragePod:
		return &f.Folder
	}
	return nil
}

// moveDatastore makes ds a child of to (a StoragePod or a datastore folder), listed once there and no
// longer in its old parent. It locks one object at a time.
func moveDatastore(ds *simulator.Datastore, to mo.Reference) {
	var old types.ManagedObjectReference
	simulator.Map.WithLock(ds, func() {
		if ds.Parent != nil {
			old = *ds.Parent
		}
	})
	if from := simulator.Map.Get(old); from != nil && old != to.Reference() {
		simulator.Map.WithLock(from, func() {
			f := folderOf(from)
			if f == nil {
				return
			}
			var kids []types.ManagedObjectReference
			for _, k := range f.ChildEntity {
				if k != ds.Self {
					kids = append(kids, k)
				}
			}
			simulator.Map.Update(from, []types.PropertyChange{{Name: "childEntity", Val: kids}})
		})
	}
	simulator.Map.WithLock(to, func() {
		f := folderOf(to)
		kids := []types.ManagedObjectReference{}
		for _, k := range f.ChildEntity {
			if k != ds.Self {
				kids = append(kids, k)
			}
		}
		kids = append(kids, ds.Self)
		simulator.Map.Update(to, []types.PropertyChange{{Name: "childEntity", Val: kids}})
	})
	parent := to.Reference()
	simulator.Map.WithLock(ds, func() {
		simulator.Map.Update(ds, []types.PropertyChange{{Name: "parent", Val: &parent}})
	})
}

// moveIntoFolder: MoveIntoFolder_Task that puts datastores into a pod once each (vcsim appends the pod's
// old children again on every call) and takes them out of a pod into a datastore folder (vcsim: NotSupported,
// the source parent must be a Folder). Anything else is vcsim's.
func moveIntoFolder(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.MoveIntoFolder_Task)
	target := simulator.Map.Get(req.This)
	_, toPod := target.(*simulator.StoragePod)
	ours := toPod
	for _, ref := range req.List {
		if ds, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok && podOf(ds) != nil {
			ours = true
		}
	}
	if !ours {
		var res soap.HasFault
		simulator.Map.WithLock(target, func() { res = callVcsim(ctx, m, target) })
		return res
	}
	ref := runTask(target, "moveIntoFolder", func() (types.AnyType, types.BaseMethodFault) {
		f := folderOf(target)
		takes := false
		for _, t := range f.ChildType {
			takes = takes || t == "Datastore"
		}
		var dss []*simulator.Datastore
		for _, ref := range req.List {
			ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
			if !ok || !takes {
				return nil, &types.NotSupported{}
			}
			dss = append(dss, ds)
		}
		for _, ds := range dss {
			moveDatastore(ds, target)
		}
		refreshPodSummaries()
		return nil, nil
	})
	return &methods.MoveIntoFolder_TaskBody{Res: &types.MoveIntoFolder_TaskResponse{Returnval: ref}}
}

// ------------------------------------------------------------------------- recommendations table

// placementRec is a recommendation RecommendDatastores made and ApplyStorageDrsRecommendation_Task can
// carry out once.
type placementRec struct {
	key   string
	call  int
	pod   types.ManagedObjectReference
	spec  types.StoragePlacementSpec             // the request (a copy)
	home  *types.ManagedObjectReference          // where the VM's files go (nil: not placed)
	disks map[int32]types.ManagedObjectReference // where each placed disk goes
}

type lease struct {
	ds    types.ManagedObjectReference
	bytes int64
	until time.Time
}

var recs = struct {
	sync.Mutex
	next   int
	calls  int
	byKey  map[string]*placementRec
	leases map[int]lease // by call: space held for the call's recommendations (resourceLeaseDurationSec)
}{byKey: map[string]*placementRec{}, leases: map[int]lease{}}

// held: bytes outstanding leases hold on ds.
func held(ds types.ManagedObjectReference) int64 {
	recs.Lock()
	defer recs.Unlock()
	var n int64
	now := time.Now()
	for call, l := range recs.leases {
		if now.After(l.until) {
			delete(recs.leases, call)
			continue
		}
		if l.ds == ds {
			n += l.bytes
		}
	}
	return n
}

// dropCall forgets a call's recommendations and lease (when one of them was applied).
func dropCall(call int) {
	for k, r := range recs.byKey {
		if r.call == call {
			delete(recs.byKey, k)
		}
	}
	delete(recs.leases, call)
}

// takeRecs removes the recommendations of keys from the table, all or none (InvalidArgument: "If the
// specified key refers to a non-existent or an already executed recommendation").
func takeRecs(keys []string, pod *types.ManagedObjectReference) ([]*placementRec, types.BaseMethodFault) {
	recs.Lock()
	defer recs.Unlock()
	var out []*placementRec
	seen := map[string]bool{}
	for _, k := range keys {
		r, ok := recs.byKey[k]
		if !ok || seen[k] || (pod != nil && r.pod != *pod) {
			return nil, &types.InvalidArgument{InvalidProperty: "key"}
		}
		seen[k] = true
		out = append(out, r)
	}
	for _, r := range out {
		delete(recs.byKey, r.key)
	}
	return out, nil
}

// ------------------------------------------------------------------------------ RecommendDatastores

type diskReq struct {
	key      int32
	capacity int64
	profiles []string
	loc      *types.PodDiskLocator // the request's pod disk locator
	pod      *simulator.StoragePod // where SDRS places it (nil: not placed; it goes where the VM's files go)
	fixed    *simulator.Datastore  // a datastore the request names for it
	current  *simulator.Datastore  // where it is now (relocate)
}

type placement struct {
	kind     string
	vm       *simulator.VirtualMachine
	homePod  *simulator.StoragePod // the pod of the VM's files (nil: not placed by SDRS)
	homeHere *simulator.Datastore  // relocate: where the VM's files are now
	disks    []*diskReq
	profiles []string                // the VM home's policies
	hosts    []*simulator.HostSystem // hosts that may run the VM
	onlyOn   map[types.ManagedObjectReference]bool
	affinity bool // reconfigure: new disks stay with the VM (intra-VM affinity)
}

func invalid(prop string) types.BaseMethodFault { return &types.InvalidArgument{InvalidProperty: prop} }

// sdrsPod resolves a pod of the request: it must exist, have Storage DRS enabled and members (vcsim
// answers InvalidArgument for a disabled or empty pod, and so do we).
func sdrsPod(ref *types.ManagedObjectReference) (*simulator.StoragePod, types.BaseMethodFault) {
	if ref == nil {
		return nil, nil
	}
	pod, ok := simulator.Map.Get(*ref).(*simulator.StoragePod)
	if !ok || !podConfig(pod).Enabled || len(podMembers(pod)) == 0 {
		return nil, invalid("podSelectionSpec.storagePod")
	}
	return pod, nil
}

func profileIDs(specs []types.BaseVirtualMachineProfileSpec) []string {
	var ids []string
	for _, p := range specs {
		if d, ok := p.(*types.VirtualMachineDefinedProfileSpec); ok && d.ProfileId != "" {
			ids = append(ids, d.ProfileId)
		}
	}
	return ids
}

// complies: ds meets every policy (the placement solver's rules, pbm.go).
func complies(ds *simulator.Datastore, ids []string) bool {
	for _, id := range ids {
		c, f := profileConstraints(pbmtypes.PbmProfileId{UniqueId: id})
		if f != nil || (c != nil && unmet(ds, c) != nil) {
			return false
		}
	}
	return true
}

func hostUsable(h *simulator.HostSystem) bool {
	return h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected && !h.Runtime.InMaintenanceMode
}

// hostsFor: the usable hosts a VM may run on: the host asked, else the pool's compute resource's hosts,
// else the VM's current host (the rules of RelocateSpec.host, placement.go pickHost).
func hostsFor(host, pool, current *types.ManagedObjectReference) []*simulator.HostSystem {
	var refs []types.ManagedObjectReference
	switch {
	case host != nil:
		refs = []types.ManagedObjectReference{*host}
	case pool != nil:
		if e, ok := simulator.Map.Get(*pool).(mo.Entity); ok {
			if cr := computeResourceOf(e); cr != nil {
				refs = hostsOf(cr)
			}
		}
	case current != nil:
		refs = []types.ManagedObjectReference{*current}
	}
	var out []*simulator.HostSystem
	for _, r := range refs {
		if h, ok := simulator.Map.Get(r).(*simulator.HostSystem); ok && hostUsable(h) {
			out = append(out, h)
		}
	}
	return out
}

func dsOfPath(p string) *simulator.Datastore {
	var dp object.DatastorePath
	if !dp.FromString(p) || dp.Datastore == "" {
		return nil
	}
	return datastoreByName(dp.Datastore)
}

func dsOfRef(ref *types.ManagedObjectReference) *simulator.Datastore {
	if ref == nil {
		return nil
	}
	ds, _ := simulator.Map.Get(*ref).(*simulator.Datastore)
	return ds
}

// newDisks: the disks a config spec creates (add with fileOperation create).
func newDisks(spec *types.VirtualMachineConfigSpec) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, c := range spec.DeviceChange {
		s := c.GetVirtualDeviceConfigSpec()
		if d, ok := s.Device.(*types.VirtualDisk); ok && s.Operation == types.VirtualDeviceConfigSpecOperationAdd &&
			s.FileOperation == types.VirtualDeviceConfigSpecFileOperationCreate {
			out = append(out, d)
		}
	}
	return out
}

func deviceProfiles(spec *types.VirtualMachineConfigSpec, d *types.VirtualDisk) []string {
	for _, c := range spec.DeviceChange {
		if s := c.GetVirtualDeviceConfigSpec(); s.Device == types.BaseVirtualDevice(d) {
			return profileIDs(s.Profile)
		}
	}
	return nil
}

// vmDiskCopies: the VM's disks (copies, read under its lock) and its host and pool.
func vmState(vm *simulator.VirtualMachine) (disks []*types.VirtualDisk, host, pool *types.ManagedObjectReference, home *simulator.Datastore) {
	simulator.Map.WithLock(vm, func() {
		for _, d := range vmDisks(vm) {
			disks = append(disks, deepCopy(d).(*types.VirtualDisk))
		}
		if vm.Runtime.Host != nil {
			h := *vm.Runtime.Host
			host = &h
		}
		if vm.ResourcePool != nil {
			p := *vm.ResourcePool
			pool = &p
		}
		home = datastoreByName(vmDir(vm).Datastore)
	})
	return
}

// plan reads a StoragePlacementSpec: what is placed in which pod, how big, where it may run.
func plan(spec *types.StoragePlacementSpec) (*placement, types.BaseMethodFault) {
	ps := spec.PodSelectionSpec
	p := &placement{kind: spec.Type}
	homePod, f := sdrsPod(ps.StoragePod)
	if f != nil {
		return nil, f
	}
	locPods := map[int32]*simulator.StoragePod{}
	locs := map[int32]*types.PodDiskLocator{}
	for i := range ps.InitialVmConfig {
		c := &ps.InitialVmConfig[i]
		pod, f := sdrsPod(&c.StoragePod)
		if f != nil {
			return nil, f
		}
		for j := range c.Disk {
			locPods[c.Disk[j].DiskId] = pod
			locs[c.Disk[j].DiskId] = &c.Disk[j]
		}
	}
	used := map[int32]bool{}
	addDisk := func(d *types.VirtualDisk, profiles []string, fixed, current *simulator.Datastore) {
		r := &diskReq{key: d.Key, capacity: diskCapacity(d), profiles: profiles, fixed: fixed, current: current,
			loc: locs[d.Key], pod: locPods[d.Key]}
		if r.loc != nil {
			used[d.Key] = true
			r.profiles = append(r.profiles, profileIDs(r.loc.Profile)...)
		}
		if r.fixed != nil {
			r.pod = nil // "the manually selected datastore"
		}
		p.disks = append(p.disks, r)
	}

	switch types.StoragePlacementSpecPlacementType(spec.Type) {
	case types.StoragePlacementSpecPlacementTypeCreate:
		if spec.ResourcePool == nil {
			return nil, invalid("resourcePool")
		}
		if spec.ConfigSpec == nil {
			return nil, invalid("configSpec")
		}
		if spec.ConfigSpec.Files != nil && dsOfPath(spec.ConfigSpec.Files.VmPathName) != nil {
			homePod = nil // the files' datastore was chosen by hand
		}
		for _, d := range newDisks(spec.ConfigSpec) {
			var fixed *simulator.Datastore
			if b := flatBacking(d); b != nil {
				if fixed = dsOfRef(b.Datastore); fixed == nil {
					fixed = dsOfPath(b.FileName)
				}
			}
			addDisk(d, deviceProfiles(spec.ConfigSpec, d), fixed, nil)
		}
		p.profiles = profileIDs(spec.ConfigSpec.VmProfile)
		p.hosts = hostsFor(spec.Host, spec.ResourcePool, nil)
	case types.StoragePlacementSpecPlacementTypeReconfigure:
		vm, ok := vmOf(spec.Vm)
		if !ok {
			return nil, invalid("vm")
		}
		if spec.ConfigSpec == nil {
			return nil, invalid("configSpec")
		}
		p.vm = vm
		_, host, _, home := vmState(vm)
		for _, d := range newDisks(spec.ConfigSpec) {
			var fixed *simulator.Datastore
			if b := flatBacking(d); b != nil {
				if fixed = dsOfRef(b.Datastore); fixed == nil {
					fixed = dsOfPath(b.FileName)
				}
			}
			addDisk(d, deviceProfiles(spec.ConfigSpec, d), fixed, nil)
		}
		homePod = nil // a reconfigure places the new disks only
		p.homeHere = home
		p.hosts = hostsFor(nil, nil, host)
		p.affinity = true
	case types.StoragePlacementSpecPlacementTypeRelocate:
		vm, ok := vmOf(spec.Vm)
		if !ok {
			return nil, invalid("vm")
		}
		if spec.RelocateSpec == nil {
			return nil, invalid("relocateSpec")
		}
		p.vm = vm
		rs := spec.RelocateSpec
		if rs.Datastore != nil {
			homePod = nil
		}
		disks, host, _, home := vmState(vm)
		p.homeHere = home
		for _, d := range disks {
			var fixed *simulator.Datastore
			if dl := locatorFor(rs.Disk, d.Key); dl != nil && dl.Datastore.Value != "" {
				fixed = dsOfRef(&dl.Datastore)
			}
			var current *simulator.Datastore
			if b := flatBacking(d); b != nil {
				current = dsOfPath(b.FileName)
			}
			addDisk(d, profileIDs(locatorProfiles(rs.Disk, d.Key)), fixed, current)
		}
		p.profiles = profileIDs(rs.Profile)
		p.hosts = hostsFor(rs.Host, rs.Pool, host)
	case types.StoragePlacementSpecPlacementTypeClone:
		if spec.Folder == nil {
			return nil, invalid("folder")
		}
		vm, ok := vmOf(spec.Vm)
		if !ok {
			return nil, invalid("vm")
		}
		if spec.CloneName == "" {
			return nil, invalid("cloneName")
		}
		if spec.CloneSpec == nil {
			return nil, invalid("cloneSpec")
		}
		p.vm = vm
		loc := spec.CloneSpec.Location
		if loc.Datastore != nil {
			homePod = nil
		}
		disks, host, _, _ := vmState(vm)
		if spec.CloneSpec.Snapshot != nil {
			if snap, ok := simulator.Map.Get(*spec.CloneSpec.Snapshot).(*simulator.VirtualMachineSnapshot); ok {
				disks = nil
				for _, dev := range snap.Config.Hardware.Device {
					if d, ok := dev.(*types.VirtualDisk); ok {
						disks = append(disks, d)
					}
				}
			}
		}
		for _, d := range disks {
			var fixed *simulator.Datastore
			if dl := locatorFor(loc.Disk, d.Key); dl != nil && dl.Datastore.Value != "" {
				fixed = dsOfRef(&dl.Datastore)
			}
			addDisk(d, profileIDs(locatorProfiles(loc.Disk, d.Key)), fixed, nil)
			if moveTypeOf(loc.DiskMoveType, locatorFor(loc.Disk, d.Key)) == newChildBacking {
				// "Storage DRS will not recommend placement of a linked clone that would span datastores
				// from the base disk": the child goes where its parent is, and takes (almost) no space.
				if b := flatBacking(d); b != nil {
					if p.onlyOn == nil {
						p.onlyOn = map[types.ManagedObjectReference]bool{}
					}
					if ds := dsOfPath(b.FileName); ds != nil {
						p.onlyOn[ds.Self] = true
					}
				}
				p.disks[len(p.disks)-1].capacity = 0
			}
		}
		p.profiles = profileIDs(loc.Profile)
		p.hosts = hostsFor(loc.Host, loc.Pool, host)
	default:
		return nil, invalid("type")
	}
	for key := range locs {
		if !used[key] {
			// a locator for a disk the request does not create, clone or move (vcsim's property name)
			return nil, invalid("podSelectionSpec.initialVmConfig.disk.fileBacking")
		}
	}
	p.homePod = homePod
	// Disks without a locator of their own and not placed by hand go where the VM's files go.
	for _, d := range p.disks {
		if d.pod == nil && d.fixed == nil && homePod != nil {
			d.pod = homePod
		}
	}
	if p.homePod == nil {
		placed := false
		for _, d := range p.disks {
			placed = placed || d.pod != nil
		}
		if !placed {
			// nothing for Storage DRS to place (no pod named, or every datastore chosen by hand)
			return nil, invalid("podSelectionSpec.storagePod")
		}
	}
	return p, nil
}

func vmOf(ref *types.ManagedObjectReference) (*simulator.VirtualMachine, bool) {
	if ref == nil {
		return nil, false
	}
	vm, ok := simulator.Map.Get(*ref).(*simulator.VirtualMachine)
	return vm, ok
}

func locatorProfiles(locs []types.VirtualMachineRelocateSpecDiskLocator, key int32) []types.BaseVirtualMachineProfileSpec {
	if dl := locatorFor(locs, key); dl != nil {
		return dl.Profile
	}
	return nil
}

// candidate: a member datastore that can take part of a placement.
type candidate struct {
	ds                    *simulator.Datastore
	capacity, free        int64 // free: less what leases hold
	demand                int64
	utilBefore, utilAfter float64
}

// why nothing fits a pod: no member passed the static checks (NoCompatibleDatastore), or none had room
// (InsufficientStorageSpace).
type podMiss struct {
	pod     *simulator.StoragePod
	noSpace bool
}

// rank orders the members of pod that can take the disks ds (and the VM's files when home): accessible,
// not in (or entering) maintenance, mounted by one of the hosts, complying with the policies, with room
// for the demand; lowest space utilisation after placement first ("the datastore that provides the best
// overall cluster balance"), then most free space, then name.
func (p *placement) rank(pod *simulator.StoragePod, disks []*diskReq, home bool) ([]candidate, *podMiss) {
	var out []candidate
	static := 0
	for _, ds := range podMembers(pod) {
		var accessible bool
		var maint string
		var capacity, free int64
		simulator.Map.WithLock(ds, func() {
			accessible, maint = ds.Summary.Accessible, ds.Summary.MaintenanceMode
			capacity, free = ds.Summary.Capacity, ds.Summary.FreeSpace
		})
		if !accessible || (maint != "" && maint != string(types.DatastoreSummaryMaintenanceModeStateNormal)) || capacity <= 0 {
			continue
		}
		if p.onlyOn != nil && !p.onlyOn[ds.Self] {
			continue
		}
		mounted := false
		for _, h := range p.hosts {
			mounted = mounted || mounts(h, ds)
		}
		if !mounted {
			continue
		}
		if p.affinity && p.homeHere != nil && podOf(p.homeHere) == pod && ds != p.homeHere && intraVMAffinity(pod, p.vm) {
			continue // intra-VM affinity: a new disk joins the VM's datastore when that is in the pod
		}
		profiles := []string{}
		if home {
			profiles = append(profiles, p.profiles...)
		}
		var demand int64
		for _, d := range disks {
			profiles = append(profiles, d.profiles...)
			if d.current != ds {
				demand += d.capacity
			}
		}
		if !complies(ds, profiles) {
			continue
		}
		static++
		free -= held(ds.Self)
		if free < demand {
			continue
		}
		c := candidate{ds: ds, capacity: capacity, free: free, demand: demand}
		c.utilBefore = 100 * float64(capacity-free) / float64(capacity)
		c.utilAfter = 100 * float64(capacity-free+demand) / float64(capacity)
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if math.Abs(a.utilAfter-b.utilAfter) > 1e-9 {
			return a.utilAfter < b.utilAfter
		}
		if a.free != b.free {
			return a.free > b.free
		}
		return a.ds.Name < b.ds.Name
	})
	if len(out) == 0 {
		return nil, &podMiss{pod: pod, noSpace: static > 0}
	}
	return out, nil
}

// intraVMAffinity: "Specifies whether or not each virtual machine in this pod should have its virtual disks
// on the same datastore by default ... If not set, the default value is true", unless the VM's own
// StorageDrsVmConfigInfo.intraVmAffinity overrides it.
func intraVMAffinity(pod *simulator.StoragePod, vm *simulator.VirtualMachine) bool {
	on := true
	simulator.Map.WithLock(pod, func() {
		if pod.PodStorageDrsEntry == nil {
			return
		}
		c := pod.PodStorageDrsEntry.StorageDrsConfig
		if c.PodConfig.DefaultIntraVmAffinity != nil {
			on = *c.PodConfig.DefaultIntraVmAffinity
		}
		for _, v := range c.VmConfig {
			if vm != nil && v.Vm != nil && *v.Vm == vm.Self && v.IntraVmAffinity != nil {
				on = *v.IntraVmAffinity
			}
		}
	})
	return on
}

func recommendDatastores(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RecommendDatastores)
	body := new(methods.RecommendDatastoresBody)
	result, f := recommend(&req.StorageSpec)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	body.Res = &types.RecommendDatastoresResponse{Returnval: *result}
	return body
}

func recommend(spec *types.StoragePlacementSpec) (*types.StoragePlacementResult, types.BaseMethodFault) {
	p, f := plan(spec)
	if f != nil {
		return nil, f
	}
	// The pod whose members the recommendations go through: the VM's files', else the first disk's.
	primary := p.homePod
	byPod := map[*simulator.StoragePod][]*diskReq{}
	var pods []*simulator.StoragePod
	for _, d := range p.disks {
		if d.pod == nil {
			continue
		}
		if _, ok := byPod[d.pod]; !ok {
			pods = append(pods, d.pod)
		}
		byPod[d.pod] = append(byPod[d.pod], d)
		if primary == nil {
			primary = d.pod
		}
	}
	result := &types.StoragePlacementResult{}
	miss := func(m *podMiss) (*types.StoragePlacementResult, types.BaseMethodFault) {
		var lf types.LocalizedMethodFault
		if m.noSpace {
			lf = types.LocalizedMethodFault{Fault: &types.InsufficientStorageSpace{},
				LocalizedMessage: fmt.Sprintf("Insufficient storage space in datastore cluster %s.", m.pod.Name)}
		} else {
			lf = types.LocalizedMethodFault{Fault: &types.NoCompatibleDatastore{},
				LocalizedMessage: fmt.Sprintf("No compatible datastore in datastore cluster %s.", m.pod.Name)}
		}
		byVM := &types.ClusterDrsFaultsFaultsByVm{Fault: []types.LocalizedMethodFault{lf}}
		if p.vm != nil && p.kind != string(types.StoragePlacementSpecPlacementTypeClone) {
			ref := p.vm.Self
			byVM.Vm = &ref
		}
		result.DrsFault = &types.ClusterDrsFaults{Reason: string(types.RecommendationReasonCodeStoragePlacement),
			FaultsByVm: []types.BaseClusterDrsFaultsFaultsByVm{byVM}}
		return result, nil
	}
	primaryCands, m := p.rank(primary, byPod[primary], p.homePod != nil)
	if m != nil {
		return miss(m)
	}
	// Disks in other pods go to their pod's best member in every recommendation.
	others := map[int32]*simulator.Datastore{}
	for _, pod := range pods {
		if pod == primary {
			continue
		}
		cands, m := p.rank(pod, byPod[pod], false)
		if m != nil {
			return miss(m)
		}
		for _, d := range byPod[pod] {
			others[d.key] = cands[0].ds
		}
	}

	recs.Lock()
	defer recs.Unlock()
	recs.calls++
	call := recs.calls
	stored := deepCopy(*spec).(types.StoragePlacementSpec)
	now := time.Now()
	for i, c := range primaryCands {
		recs.next++
		key := strconv.Itoa(recs.next)
		dest := c.ds.Self
		rec := &placementRec{key: key, call: call, pod: primary.Self, spec: stored,
			disks: map[int32]types.ManagedObjectReference{}}
		if p.homePod != nil {
			rec.home = &dest
		}
		rs := types.VirtualMachineRelocateSpec{DiskMoveType: string(types.VirtualMachineRelocateDiskMoveOptionsMoveAllDiskBackingsAndAllowSharing)}
		if rec.home != nil {
			rs.Datastore = &dest
		}
		if spec.RelocateSpec != nil && spec.RelocateSpec.DiskMoveType != "" {
			rs.DiskMoveType = spec.RelocateSpec.DiskMoveType
		}
		if spec.CloneSpec != nil && spec.CloneSpec.Location.DiskMoveType != "" {
			rs.DiskMoveType = spec.CloneSpec.Location.DiskMoveType
		}
		for _, d := range p.disks {
			var to types.ManagedObjectReference
			switch {
			case d.pod == primary:
				to = dest
			case d.pod != nil:
				to = others[d.key].Self
			default:
				continue
			}
			rec.disks[d.key] = to
			dl := types.VirtualMachineRelocateSpecDiskLocator{DiskId: d.key, Datastore: to}
			if d.loc != nil {
				dl.DiskMoveType = d.loc.DiskMoveType
				dl.DiskBackingInfo = d.loc.DiskBackingInfo
			}
			rs.Disk = append(rs.Disk, dl)
		}
		action := &types.StoragePlacementAction{
			ClusterAction:     types.ClusterAction{Type: string(types.ActionTypeStoragePlacementV1)},
			RelocateSpec:      rs,
			Destination:       dest,
			SpaceUtilBefore:   float32(c.utilBefore),
			SpaceDemandBefore: float32(c.utilBefore),
			SpaceUtilAfter:    float32(c.utilAfter),
			SpaceDemandAfter:  float32(c.utilAfter),
		}
		if p.vm != nil && p.kind != string(types.StoragePlacementSpecPlacementTypeClone) {
			ref := p.vm.Self
			action.Vm = &ref // "It is possible that the VM has not been created, in which case, this property is left unset."
		}
		rating := int32(5 - i)
		if rating < 1 {
			rating = 1
		}
		target := primary.Self
		result.Recommendations = append(result.Recommendations, types.ClusterRecommendation{
			Key:        key,
			Type:       string(types.RecommendationTypeV1),
			Time:       now,
			Rating:     rating,
			Reason:     string(types.RecommendationReasonCodeStoragePlacement),
			ReasonText: "Satisfy storage initial placement requests",
			Action:     []types.BaseClusterAction{action},
			Target:     &target,
		})
		recs.byKey[key] = rec
	}
	kind := types.StoragePlacementSpecPlacementType(spec.Type)
	if spec.ResourceLeaseDurationSec > 0 && (kind == types.StoragePlacementSpecPlacementTypeCreate ||
		kind == types.StoragePlacementSpecPlacementTypeClone) {
		// "Storage DRS will hold onto resources needed for applying recommendations generated as part of
		// that call. Only initial placement recommendations ... can reserve resources this way": the space
		// of the top recommendation, until one of the call's recommendations is applied or the lease ends.
		top := primaryCands[0]
		recs.leases[call] = lease{ds: top.ds.Self, bytes: top.demand,
			until: now.Add(time.Duration(spec.ResourceLeaseDurationSec) * time.Second)}
	}
	return result, nil
}

// ------------------------------------------------------------------------------------------ Apply

func applyStorageDrsRecommendation(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ApplyStorageDrsRecommendation_Task)
	ref, f := applyKeys(ctx, req.Key, nil)
	if f != nil {
		return &methods.ApplyStorageDrsRecommendation_TaskBody{Fault_: fault("", f)}
	}
	return &methods.ApplyStorageDrsRecommendation_TaskBody{
		Res: &types.ApplyStorageDrsRecommendation_TaskResponse{Returnval: ref}}
}

func applyStorageDrsRecommendationToPod(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ApplyStorageDrsRecommendationToPod_Task)
	pod := req.Pod
	ref, f := applyKeys(ctx, []string{req.Key}, &pod)
	if f != nil {
		return &methods.ApplyStorageDrsRecommendationToPod_TaskBody{Fault_: fault("", f)}
	}
	return &methods.ApplyStorageDrsRecommendationToPod_TaskBody{
		Res: &types.ApplyStorageDrsRecommendationToPod_TaskResponse{Returnval: ref}}
}

// applyKeys carries the recommendations out in a task on their pod: its result is an
// ApplyStorageRecommendationResult, with the new VM for a create or clone.
func applyKeys(ctx *simulator.Context, keys []string, pod *types.ManagedObjectReference) (types.ManagedObjectReference, types.BaseMethodFault) {
	if len(keys) == 0 {
		return types.ManagedObjectReference{}, invalid("key")
	}
	todo, f := takeRecs(keys, pod)
	if f != nil {
		return types.ManagedObjectReference{}, f
	}
	// The task is on the pod (vcsim would name the StorageResourceManager, which no client can read as a
	// TaskInfo.entity; taskEntities clears such an entity).
	var entity mo.Reference = simulator.Map.Get(todo[0].pod)
	if entity == nil {
		entity = simulator.Map.Get(vim25.ServiceInstance)
	}
	ref := runTask(entity, "applyRecommendation", func() (types.AnyType, types.BaseMethodFault) {
		result := types.ApplyStorageRecommendationResult{}
		for _, r := range todo {
			vm, f := r.apply(ctx)
			recs.Lock()
			if f == nil {
				dropCall(r.call) // the placement is done: the call's other recommendations and lease go
			} else {
				delete(recs.leases, r.call)
			}
			recs.Unlock()
			if f != nil {
				return nil, f
			}
			if vm != nil {
				result.Vm = vm
			}
		}
		refreshPodSummaries()
		return result, nil
	})
	return ref, nil
}

// call runs one of our overridden methods (or vcsim's) as a nested call of the caller's session.
func call(ctx *simulator.Context, name string, this types.ManagedObjectReference, body interface{}) (types.AnyType, types.BaseMethodFault) {
	m := &simulator.Method{Name: name, This: this, Body: body}
	var us types.UserSession
	if ctx.Session != nil {
		us = ctx.Session.UserSession
	}
	return outcome(dispatch(newContext(us, m), m))
}

// withDatastore points a backing without a datastore at ds ("[ds]": the VM's folder names the file).
func withDatastore(b *types.VirtualDiskFlatVer2BackingInfo, ds types.ManagedObjectReference) {
	if b == nil || dsOfRef(b.Datastore) != nil || dsOfPath(b.FileName) != nil {
		return
	}
	d := simulator.Map.Get(ds).(*simulator.Datastore)
	b.FileName = "[" + d.Name + "]"
	ref := ds
	b.Datastore = &ref
}

// locate sets the datastore (and the pod locator's move type and backing) of a disk's relocate locator.
func locate(locs []types.VirtualMachineRelocateSpecDiskLocator, key int32, ds types.ManagedObjectReference,
	pl *types.PodDiskLocator) []types.VirtualMachineRelocateSpecDiskLocator {
	dl := locatorFor(locs, key)
	if dl == nil {
		locs = append(locs, types.VirtualMachineRelocateSpecDiskLocator{DiskId: key})
		dl = &locs[len(locs)-1]
	}
	if dl.Datastore.Value == "" {
		dl.Datastore = ds
	}
	if pl != nil {
		if dl.DiskMoveType == "" {
			dl.DiskMoveType = pl.DiskMoveType
		}
		if dl.DiskBackingInfo == nil {
			dl.DiskBackingInfo = pl.DiskBackingInfo
		}
		if len(dl.Profile) == 0 {
			dl.Profile = pl.Profile
		}
	}
	return locs
}

func (r *placementRec) podLocator(key int32) *types.PodDiskLocator {
	for i := range r.spec.PodSelectionSpec.InitialVmConfig {
		c := &r.spec.PodSelectionSpec.InitialVmConfig[i]
		for j := range c.Disk {
			if c.Disk[j].DiskId == key {
				return &c.Disk[j]
			}
		}
	}
	return nil
}

// apply runs the workflow the recommendation was made for, onto its datastores, through the same methods
// (and so the same file layout, chains and free space accounting) as a client calling them directly.
func (r *placementRec) apply(ctx *simulator.Context) (*types.ManagedObjectReference, types.BaseMethodFault) {
	spec := deepCopy(r.spec).(types.StoragePlacementSpec)
	var vm *types.ManagedObjectReference
	switch types.StoragePlacementSpecPlacementType(spec.Type) {
	case types.StoragePlacementSpecPlacementTypeCreate:
		config := spec.ConfigSpec
		if r.home != nil {
			if config.Files == nil {
				config.Files = &types.VirtualMachineFileInfo{}
			}
			if dsOfPath(config.Files.VmPathName) == nil {
				config.Files.VmPathName = "[" + simulator.Map.Get(*r.home).(*simulator.Datastore).Name + "]"
			}
		}
		for _, d := range newDisks(config) {
			if to, ok := r.disks[d.Key]; ok {
				withDatastore(flatBacking(d), to)
			}
		}
		folder := spec.Folder
		if folder == nil {
			folder = vmFolderOf(*spec.ResourcePool)
		}
		if folder == nil {
			return nil, invalid("folder")
		}
		res, f := call(ctx, "CreateVM_Task", *folder, &types.CreateVM_Task{This: *folder, Config: *config,
			Pool: *spec.ResourcePool, Host: spec.Host})
		if f != nil {
			return nil, f
		}
		ref := res.(types.ManagedObjectReference)
		vm = &ref
	case types.StoragePlacementSpecPlacementTypeClone:
		cs := spec.CloneSpec
		if r.home != nil && cs.Location.Datastore == nil {
			cs.Location.Datastore = r.home
		}
		for key, to := range r.disks {
			cs.Location.Disk = locate(cs.Location.Disk, key, to, r.podLocator(key))
		}
		res, f := call(ctx, "CloneVM_Task", *spec.Vm, &types.CloneVM_Task{This: *spec.Vm, Folder: *spec.Folder,
			Name: spec.CloneName, Spec: *cs})
		if f != nil {
			return nil, f
		}
		ref := res.(types.ManagedObjectReference)
		vm = &ref
	case types.StoragePlacementSpecPlacementTypeRelocate:
		rs := spec.RelocateSpec
		if r.home != nil && rs.Datastore == nil {
			rs.Datastore = r.home
		}
		for key, to := range r.disks {
			rs.Disk = locate(rs.Disk, key, to, r.podLocator(key))
		}
		if _, f := call(ctx, "RelocateVM_Task", *spec.Vm, &types.RelocateVM_Task{This: *spec.Vm, Spec: *rs,
			Priority: spec.Priority}); f != nil {
			return nil, f
		}
	case types.StoragePlacementSpecPlacementTypeReconfigure:
		config := spec.ConfigSpec
		for _, d := range newDisks(config) {
			if to, ok := r.disks[d.Key]; ok {
				withDatastore(flatBacking(d), to)
			}
		}
		if _, f := call(ctx, "ReconfigVM_Task", *spec.Vm, &types.ReconfigVM_Task{This: *spec.Vm, Spec: *config}); f != nil {
			return nil, f
		}
	}
	target := vm
	if target == nil {
		target = spec.Vm
	}
	if target != nil {
		saveVMConfig(spec.PodSelectionSpec, *target)
	}
	return vm, nil
}

// saveVMConfig: "This configuration will be saved to the pod config when the placement recommendations
// are applied" (VmPodConfigForPlacement.vmConfig), for the VM placed.
func saveVMConfig(ps types.StorageDrsPodSelectionSpec, vm types.ManagedObjectReference) {
	for _, c := range ps.InitialVmConfig {
		if c.VmConfig == nil {
			continue
		}
		pod, ok := simulator.Map.Get(c.StoragePod).(*simulator.StoragePod)
		if !ok {
			continue
		}
		info := *c.VmConfig
		info.Vm = &vm
		simulator.Map.WithLock(pod, func() {
			entry := types.PodStorageDrsEntry{}
			if pod.PodStorageDrsEntry != nil {
				entry = *pod.PodStorageDrsEntry
			}
			var list []types.StorageDrsVmConfigInfo
			for _, v := range entry.StorageDrsConfig.VmConfig {
				if v.Vm == nil || *v.Vm != vm {
					list = append(list, v)
				}
			}
			entry.StorageDrsConfig.VmConfig = append(list, info)
			simulator.Map.Update(pod, []types.PropertyChange{{Name: "podStorageDrsEntry", Val: &entry}})
		})
	}
}

// vmFolderOf: the VM folder of the datacenter a resource pool is in (a create without spec.folder).
func vmFolderOf(pool types.ManagedObjectReference) *types.ManagedObjectReference {
	e, ok := simulator.Map.Get(pool).(mo.Entity)
	if !ok {
		return nil
	}
	if dc := datacenterOf(e); dc != nil {
		f := dc.VmFolder
		return &f
	}
	return nil
}

// ------------------------------------------------------------------------------- Cancel, Refresh

// cancelStorageDrsRecommendation: "Cancels a recommendation ... InvalidArgument: If the specified key refers
// to a non-existent or an already executed recommendation."
func cancelStorageDrsRecommendation(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CancelStorageDrsRecommendation)
	body := new(methods.CancelStorageDrsRecommendationBody)
	gone, f := takeRecs(req.Key, nil)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	recs.Lock()
	for _, r := range gone {
		left := false
		for _, o := range recs.byKey {
			left = left || o.call == r.call
		}
		if !left {
			delete(recs.leases, r.call)
		}
	}
	recs.Unlock()
	body.Res = new(types.CancelStorageDrsRecommendationResponse)
	return body
}

// refreshStorageDrsRecommendation: Storage DRS runs again on the pod; ours makes no migration
// recommendations (podStorageDrsEntry.recommendation stays empty), so there is nothing to do.
func refreshStorageDrsRecommendation(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RefreshStorageDrsRecommendation)
	body := new(methods.RefreshStorageDrsRecommendationBody)
	if _, ok := simulator.Map.Get(req.Pod).(*simulator.StoragePod); !ok {
		body.Fault_ = fault("", &types.ManagedObjectNotFound{Obj: req.Pod})
		return body
	}
	body.Res = new(types.RefreshStorageDrsRecommendationResponse)
	return body
}

// destroyPod: Destroy_Task of an empty datastore cluster removes it (vcsim: MethodNotFound, a StoragePod has
// no DestroyTask). vSphere "destroys *all* children if at all possible" (terraform-provider-vsphere, which
// checks HasChildren first); destroying a pod with members is not modelled (vcsim's answer).
// The caller (dispatch) holds the pod's lock: its children are read as they are.
func destroyPod(ctx *simulator.Context, pod *simulator.StoragePod, m *simulator.Method) soap.HasFault {
	for _, k := range pod.ChildEntity {
		if _, ok := simulator.Map.Get(k).(*simulator.Datastore); ok {
			return callVcsim(ctx, m, pod)
		}
	}
	return (&simulator.Folder{Folder: pod.Folder}).DestroyTask(ctx, m.Body.(*types.Destroy_Task))
}

// installSDRS adds the Storage DRS methods to the fidelity layer (vCenter model only).
func installSDRS() {
	fid.overrides["RecommendDatastores"] = recommendDatastores
	fid.overrides["ApplyStorageDrsRecommendation_Task"] = applyStorageDrsRecommendation
	fid.overrides["ApplyStorageDrsRecommendationToPod_Task"] = applyStorageDrsRecommendationToPod
	fid.overrides["CancelStorageDrsRecommendation"] = cancelStorageDrsRecommendation
	fid.overrides["RefreshStorageDrsRecommendation"] = refreshStorageDrsRecommendation
	fid.overrides["MoveIntoFolder_Task"] = moveIntoFolder
	// Apply runs CreateVM/CloneVM/RelocateVM/ReconfigVM, which lock their own objects; MoveIntoFolder locks
	// the old and the new parent one after the other.
	unlockedOverrides["ApplyStorageDrsRecommendation_Task"] = true
	unlockedOverrides["ApplyStorageDrsRecommendationToPod_Task"] = true
	unlockedOverrides["MoveIntoFolder_Task"] = true
	podSummaries = true
}

// podSummaries: refresh pod summaries before each SOAP request (our vCenter model).
var podSummaries bool

// ---------------------------------------------------------------------------- test controls

// podInfo is what GET /vmdk-test/pod lists.
type podInfo struct {
	Name     string   `json:"name"`
	Enabled  bool     `json:"sdrs"`
	Behavior string   `json:"behavior"`
	Members  []string `json:"datastores"`
}

// controlPod (not vSphere): POST name=<pod> [sdrs=on|off] [behavior=manual|automated] [add=<ds>,...]
// [remove=<ds>,...] changes a pod's Storage DRS settings and membership (removed datastores go to the
// datacenter's datastore folder); GET lists the pods as JSON.
func controlPod(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		var out []podInfo
		for _, e := range simulator.Map.All("StoragePod") {
			pod := e.(*simulator.StoragePod)
			c := podConfig(pod)
			info := podInfo{Name: pod.Name, Enabled: c.Enabled, Behavior: c.DefaultVmBehavior, Members: []string{}}
			for _, ds := range podMembers(pod) {
				info.Members = append(info.Members, ds.Name)
			}
			out = append(out, info)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	pod := podByName(r.FormValue("name"))
	if pod == nil {
		http.Error(w, "no such datastore cluster", http.StatusNotFound)
		return
	}
	c := podConfig(pod)
	switch v := r.FormValue("sdrs"); v {
	case "":
	case "on", "true":
		c.Enabled = true
	case "off", "false":
		c.Enabled = false
	default:
		http.Error(w, "sdrs: on or off", http.StatusBadRequest)
		return
	}
	switch v := r.FormValue("behavior"); v {
	case "":
	case string(behaviorManual), string(behaviorAutomated):
		c.DefaultVmBehavior = v
	default:
		http.Error(w, "behavior: manual or automated", http.StatusBadRequest)
		return
	}
	var add, remove []*simulator.Datastore
	for key, list := range map[string]*[]*simulator.Datastore{"add": &add, "remove": &remove} {
		for _, name := range strings.Split(r.FormValue(key), ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			ds := datastoreByName(name)
			if ds == nil {
				http.Error(w, "no such datastore: "+name, http.StatusNotFound)
				return
			}
			if key == "remove" && podOf(ds) != pod {
				http.Error(w, name+" is not in "+pod.Name, http.StatusBadRequest)
				return
			}
			*list = append(*list, ds)
		}
	}
	setPodConfig(pod, c)
	for _, ds := range add {
		moveDatastore(ds, pod)
	}
	for _, ds := range remove {
		if dc := datacenterOf(pod); dc != nil {
			moveDatastore(ds, simulator.Map.Get(dc.DatastoreFolder))
		}
	}
	refreshPodSummaries()
	w.WriteHeader(http.StatusNoContent)
}

// controlSvmotion (not vSphere): POST vm=<name or moref value> datastore=<name> [disk=<device key>] moves
// the VM's files and disks (or only that disk) to the datastore, as a storage vMotion by Storage DRS in
// automated mode, or by an administrator, would: RelocateVM's work (files move, this VM's backings
// follow, another powered-off VM holding a moved disk keeps naming the old file). Answers 204, or 409 with
// the fault's name.
func controlSvmotion(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var vm *simulator.VirtualMachine
	want := r.FormValue("vm")
	for _, e := range simulator.Map.All("VirtualMachine") {
		if v := e.(*simulator.VirtualMachine); v.Name == want || v.Self.Value == want {
			vm = v
		}
	}
	if vm == nil {
		http.Error(w, "no such virtual machine", http.StatusNotFound)
		return
	}
	ds := datastoreByName(r.FormValue("datastore"))
	if ds == nil {
		http.Error(w, "no such datastore", http.StatusNotFound)
		return
	}
	spec := types.VirtualMachineRelocateSpec{}
	if v := r.FormValue("disk"); v != "" {
		key, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			http.Error(w, "disk: a device key", http.StatusBadRequest)
			return
		}
		spec.Disk = []types.VirtualMachineRelocateSpecDiskLocator{{DiskId: int32(key), Datastore: ds.Self}}
	} else {
		ref := ds.Self
		spec.Datastore = &ref
	}
	self := vm.Self
	ctx := &simulator.Context{Context: context.Background(), Map: simulator.Map, Caller: &self,
		Session: &simulator.Session{UserSession: types.UserSession{UserName: "vcsim"}, Registry: simulator.NewRegistry()}}
	var f types.BaseMethodFault
	simulator.Map.WithLock(vm, func() { f = doRelocate(ctx, vm, &spec) })
	if f != nil {
		http.Error(w, reflect.TypeOf(f).Elem().Name()+": "+faultMessage(f), http.StatusConflict)
		return
	}
	refreshPodSummaries()
	w.WriteHeader(http.StatusNoContent)
}
