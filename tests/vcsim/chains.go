package main

// Disk chains as vSphere keeps them. A snapshot does not copy a disk: the VM goes on writing to a new
// delta file ("<disk>-00000N.vmdk", a vmfsSparse redo log next to the disk it grows from) whose
// backing.parent is the disk as it was; the snapshot's config keeps pointing at that parent. Removing a
// snapshot merges a delta into its parent when nothing else needs the parent as it is; reverting starts
// a fresh delta from the snapshot's file; destroying a VM deletes every file of its chains that no other
// VM uses. vcsim 0.24.2 keeps every VM on its base disk: its snapshots are only inventory.
//
// Our deltas are materialised: "-delta.vmdk" holds the disk's whole current content (a sparse copy of
// the parent's bytes at snapshot time, written to afterwards), so the data paths (datastore HTTP, NFC
// export, clone) read a disk's current bytes from its top file alone, as they read a linked clone's.

import (
	"bytes"
	"fmt"
	"io/ioutil"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	deltaCreateType = "vmfsSparse"
	deltaExtentType = "VMFSSPARSE"
)

// chainMu serialises the chain surgery (it reads other VMs' chains to know who else uses a file).
// It is always taken last: nothing locks a managed object while holding it.
var chainMu sync.Mutex

// ------------------------------------------------------------------------------------- helpers

func isIndependent(b *types.VirtualDiskFlatVer2BackingInfo) bool {
	switch types.VirtualDiskMode(b.DiskMode) {
	case types.VirtualDiskModeIndependent_persistent, types.VirtualDiskModeIndependent_nonpersistent:
		return true
	}
	return false
}

// deltaExtentName: "x-000001.vmdk" -> "x-000001-delta.vmdk".
func deltaExtentName(desc string) string {
	return strings.TrimSuffix(desc, ".vmdk") + "-delta.vmdk"
}

var deltaSuffix = regexp.MustCompile(`-[0-9]{6}$`)

// deltaBase is the name a disk's deltas are numbered after: "x.vmdk" and "x-000002.vmdk" -> "x".
func deltaBase(file string) string {
	return deltaSuffix.ReplaceAllString(strings.TrimSuffix(file, ".vmdk"), "")
}

// snapshotsOf lists a VM's snapshot objects, parents before children.
func snapshotsOf(vm *simulator.VirtualMachine) []*simulator.VirtualMachineSnapshot {
	var out []*simulator.VirtualMachineSnapshot
	if vm.Snapshot == nil {
		return nil
	}
	var walk func(tree []types.VirtualMachineSnapshotTree)
	walk = func(tree []types.VirtualMachineSnapshotTree) {
		for i := range tree {
			if s, ok := simulator.Map.Get(tree[i].Snapshot).(*simulator.VirtualMachineSnapshot); ok {
				out = append(out, s)
			}
			walk(tree[i].ChildSnapshotList)
		}
	}
	walk(vm.Snapshot.RootSnapshotList)
	return out
}

func diskBackingsOf(devices []types.BaseVirtualDevice) []*types.VirtualDiskFlatVer2BackingInfo {
	var out []*types.VirtualDiskFlatVer2BackingInfo
	for _, dev := range devices {
		if d, ok := dev.(*types.VirtualDisk); ok {
			if b := flatBacking(d); b != nil && b.FileName != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// chainTops: the top backing of every disk chain a VM holds, in its devices and its snapshots' configs.
func chainTops(vm *simulator.VirtualMachine) []*types.VirtualDiskFlatVer2BackingInfo {
	var tops []*types.VirtualDiskFlatVer2BackingInfo
	if vm.Config != nil {
		tops = diskBackingsOf(vm.Config.Hardware.Device)
	}
	for _, s := range snapshotsOf(vm) {
		tops = append(tops, diskBackingsOf(s.Config.Hardware.Device)...)
	}
	return tops
}

// chainRefs is who uses which disk files.
type chainRefs struct {
	tops     map[string]bool            // the top of a chain (a device's or a snapshot's disk)
	all      map[string]bool            // any file of a chain
	children map[string]map[string]bool // parent file -> the files that name it as parent
}

func newChainRefs() *chainRefs {
	return &chainRefs{tops: map[string]bool{}, all: map[string]bool{}, children: map[string]map[string]bool{}}
}

func (r *chainRefs) add(top *types.VirtualDiskFlatVer2BackingInfo) {
	r.tops[top.FileName] = true
	for b := top; b != nil; b = b.Parent {
		r.all[b.FileName] = true
		if b.Parent != nil {
			if r.children[b.Parent.FileName] == nil {
				r.children[b.Parent.FileName] = map[string]bool{}
			}
			r.children[b.Parent.FileName][b.FileName] = true
		}
	}
}

func refsOfVM(vm *simulator.VirtualMachine) *chainRefs {
	r := newChainRefs()
	for _, t := range chainTops(vm) {
		r.add(t)
	}
	return r
}

// refsOfAll: the chains of every VM, but skip.
func refsOfAll(skip *simulator.VirtualMachine) *chainRefs {
	r := newChainRefs()
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		if vm == skip {
			continue
		}
		for _, t := range chainTops(vm) {
			r.add(t)
		}
	}
	return r
}

func allVMs() []*simulator.VirtualMachine {
	var out []*simulator.VirtualMachine
	for _, e := range simulator.Map.All("VirtualMachine") {
		out = append(out, e.(*simulator.VirtualMachine))
	}
	return out
}

// deleteDiskFiles removes a disk's descriptor and extent.
func deleteDiskFiles(file string) {
	desc, _, f := localPath(file)
	if f != nil {
		return
	}
	for _, name := range diskFileSet(desc) {
		_ = os.Remove(name)
	}
}

// syncChainDescriptors rewrites the parent hint and parent CID of every delta in a VM's chains (its
// devices' and its snapshots') after files were merged or moved.
func syncChainDescriptors(vm *simulator.VirtualMachine) {
	for _, top := range chainTops(vm) {
		for b := top; b != nil && b.Parent != nil; b = b.Parent {
			desc, _, f := localPath(b.FileName)
			if f != nil {
				continue
			}
			cur := readDescriptor(desc)
			if cur == nil {
				continue
			}
			next := *cur
			next.parentHint = parentHint(b.FileName, b.Parent.FileName)
			if pd, _, f := localPath(b.Parent.FileName); f == nil {
				if p := readDescriptor(pd); p != nil {
					next.parentCID = p.cid
				}
			}
			if !bytes.Equal(cur.render(), next.render()) {
				_ = writeFileAtomic(desc, next.render())
			}
		}
	}
}

// ------------------------------------------------------------------------------- delta disks

// newDelta makes a delta disk whose parent is the disk parent names: "<base>-00000N.vmdk" (the first
// number free in that folder) next to the parent file (ESXi's default since vSphere 5.0: "the redo
// files will stay in the same directory as the snapshotted disk"), holding a copy of the parent's bytes.
// The backing keeps the disk's mode, provisioning flags and uuid; its parent is a copy of parent.
func newDelta(parent *types.VirtualDiskFlatVer2BackingInfo, capacity int64, taken map[string]bool) (*types.VirtualDiskFlatVer2BackingInfo, types.BaseMethodFault) {
	return newDeltaIn(parent, capacity, taken, nil, "")
}

// newDeltaIn is newDelta in folder dir of datastore ds (nil: next to the parent), as RelocateVM's
// createNewChildDiskBacking makes a child "on the destination datastore".
func newDeltaIn(parent *types.VirtualDiskFlatVer2BackingInfo, capacity int64, taken map[string]bool,
	ds *simulator.Datastore, dir string) (*types.VirtualDiskFlatVer2BackingInfo, types.BaseMethodFault) {
	var pp object.DatastorePath
	if !pp.FromString(parent.FileName) {
		return nil, &types.InvalidDatastorePath{DatastorePath: parent.FileName}
	}
	pdesc, pds, f := localPath(parent.FileName)
	if f != nil {
		return nil, f
	}
	if !fileExists(pdesc) {
		return nil, &types.FileNotFound{FileFault: types.FileFault{File: parent.FileName}}
	}
	ldir, cds, cdir := filepath.Dir(pdesc), pp.Datastore, path.Dir(pp.Path)
	if ds == nil {
		ds = pds
	} else {
		ldir, cds, cdir = filepath.Join(dsURL(ds), dir), ds.Name, dir
		if err := os.MkdirAll(ldir, 0o700); err != nil {
			return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: dsPath(cds, dir)}}
		}
	}
	base := deltaBase(path.Base(pp.Path))
	var name string
	for n := 1; ; n++ {
		name = fmt.Sprintf("%s-%06d.vmdk", base, n)
		if !taken[filepath.Join(ldir, name)] && !fileExists(filepath.Join(ldir, name)) &&
			!fileExists(filepath.Join(ldir, deltaExtentName(name))) {
			break
		}
	}
	taken[filepath.Join(ldir, name)] = true
	child := dsPath(cds, path.Join(cdir, name))
	cdesc := filepath.Join(ldir, name)
	d := &descriptor{
		cid: randomHex(4), parentCID: "ffffffff", createType: deltaCreateType,
		sectors: (capacity + sectorSize - 1) / sectorSize, extent: deltaExtentName(name), extentType: deltaExtentType,
		parentHint: parentHint(child, parent.FileName), longContentID: randomHex(16),
	}
	if pd := readDescriptor(pdesc); pd != nil {
		d.cid, d.parentCID, d.uuid = pd.cid, pd.cid, pd.uuid // a fresh redo log reads as its parent
	}
	if u := ddbUUID(parent.Uuid); u != "" {
		d.uuid = u
	}
	cannot := &types.CannotCreateFile{FileFault: types.FileFault{File: child}}
	if err := copySparse(extentOf(pdesc), filepath.Join(ldir, d.extent), capacity); err != nil {
		return nil, cannot
	}
	if err := writeFileAtomic(cdesc, d.render()); err != nil {
		_ = os.Remove(filepath.Join(ldir, d.extent))
		return nil, cannot
	}
	ref := ds.Self
	nb := &types.VirtualDiskFlatVer2BackingInfo{
		VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: child, Datastore: &ref},
		DiskMode:                     parent.DiskMode,
		Split:                        parent.Split,
		WriteThrough:                 parent.WriteThrough,
		ThinProvisioned:              parent.ThinProvisioned,
		EagerlyScrub:                 parent.EagerlyScrub,
		Uuid:                         parent.Uuid,
		DigestEnabled:                parent.DigestEnabled,
		Sharing:                      parent.Sharing,
		DeltaDiskFormat:              redoLogDiskFormat,
		Parent:                       deepCopy(parent).(*types.VirtualDiskFlatVer2BackingInfo),
	}
	return nb, nil
}

// switchToDeltas puts every disk of devices that snapshots see (not independent) on a new delta of
// its current file. On failure nothing is changed and the deltas made so far are deleted.
func switchToDeltas(devices []types.BaseVirtualDevice) types.BaseMethodFault {
	type change struct {
		disk *types.VirtualDisk
		nb   *types.VirtualDiskFlatVer2BackingInfo
	}
	var changes []change
	taken := map[string]bool{}
	for _, dev := range devices {
		d, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		b := flatBacking(d)
		if b == nil || b.FileName == "" || isIndependent(b) {
			continue
		}
		nb, f := newDelta(b, diskCapacity(d), taken)
		if f != nil {
			for _, c := range changes {
				deleteDiskFiles(c.nb.FileName)
			}
			return f
		}
		changes = append(changes, change{d, nb})
	}
	for _, c := range changes {
		c.disk.Backing = c.nb
	}
	return nil
}

// ----------------------------------------------------------------------------- CreateSnapshot

func createSnapshot(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CreateSnapshot_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	res := vm.CreateSnapshotTask(req)
	r, ok := taskResult(res)
	if !ok {
		return res
	}
	snap, ok := simulator.Map.Get(r.(types.ManagedObjectReference)).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return res
	}
	// vcsim copies the config shallowly: later edits of the VM's devices would show in the snapshot.
	snap.Config = *(deepCopy(&snap.Config).(*types.VirtualMachineConfigInfo))
	chainMu.Lock()
	f := switchToDeltas(vm.Config.Hardware.Device)
	chainMu.Unlock()
	if f != nil {
		// the snapshot cannot be taken: undo it and fail its task
		dropSnapshots(ctx, vm, []types.ManagedObjectReference{snap.Self}, snap.Self, false)
		if ref, ok := returnval(res).(types.ManagedObjectReference); ok {
			if task, ok := simulator.Map.Get(ref).(*simulator.Task); ok {
				finishTask(task, nil, f, "")
			}
		}
		return res
	}
	simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: vm.Config.Hardware.Device}})
	syncDisks(vm)
	vm.RefreshStorageInfo(ctx, &types.RefreshStorageInfo{This: vm.Self})
	return res
}

// ----------------------------------------------------------------------------- RemoveSnapshot

func findSnapshotNode(tree []types.VirtualMachineSnapshotTree, ref types.ManagedObjectReference,
	parent *types.ManagedObjectReference) (*types.VirtualMachineSnapshotTree, *types.ManagedObjectReference) {
	for i := range tree {
		if tree[i].Snapshot == ref {
			return &tree[i], parent
		}
		self := tree[i].Snapshot
		if n, p := findSnapshotNode(tree[i].ChildSnapshotList, ref, &self); n != nil {
			return n, p
		}
	}
	return nil, nil
}

// postOrder lists a subtree's snapshots, children before their parent.
func postOrder(n types.VirtualMachineSnapshotTree) []types.ManagedObjectReference {
	var out []types.ManagedObjectReference
	for _, c := range n.ChildSnapshotList {
		out = append(out, postOrder(c)...)
	}
	return append(out, n.Snapshot)
}

// withoutSnapshot removes ref from the tree; its children take its place unless removeChildren.
func withoutSnapshot(tree []types.VirtualMachineSnapshotTree, ref types.ManagedObjectReference, removeChildren bool) []types.VirtualMachineSnapshotTree {
	var out []types.VirtualMachineSnapshotTree
	for _, n := range tree {
		if n.Snapshot == ref {
			if !removeChildren {
				out = append(out, n.ChildSnapshotList...)
			}
			continue
		}
		n.ChildSnapshotList = withoutSnapshot(n.ChildSnapshotList, ref, removeChildren)
		out = append(out, n)
	}
	return out
}

// dropSnapshots takes snapshots out of a VM's tree and the inventory (with their .vmsn files) and
// returns the disk files their configs named, deepest snapshots first. top is the snapshot asked for
// (its children were listed in removed when removeChildren).
func dropSnapshots(ctx *simulator.Context, vm *simulator.VirtualMachine, removed []types.ManagedObjectReference,
	top types.ManagedObjectReference, removeChildren bool) []string {
	gone := map[types.ManagedObjectReference]bool{}
	for _, r := range removed {
		gone[r] = true
	}
	var files []string
	for _, r := range removed {
		if s, ok := simulator.Map.Get(r).(*simulator.VirtualMachineSnapshot); ok {
			for _, b := range diskBackingsOf(s.Config.Hardware.Device) {
				files = append(files, b.FileName)
			}
		}
	}
	_, parent := findSnapshotNode(vm.Snapshot.RootSnapshotList, top, nil)
	roots := withoutSnapshot(vm.Snapshot.RootSnapshotList, top, removeChildren)
	cur := vm.Snapshot.CurrentSnapshot
	if cur != nil && gone[*cur] {
		cur = parent
	}
	if len(roots) == 0 {
		simulator.Map.Update(vm, []types.PropertyChange{{Name: "snapshot", Val: nil}})
	} else {
		// the whole property: vcsim panics applying a nil snapshot.currentSnapshot
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "snapshot", Val: &types.VirtualMachineSnapshotInfo{CurrentSnapshot: cur, RootSnapshotList: roots}},
		})
	}
	// each remaining snapshot's childSnapshot follows the tree (vcsim never updates it on removal)
	var relink func(tree []types.VirtualMachineSnapshotTree)
	relink = func(tree []types.VirtualMachineSnapshotTree) {
		for _, n := range tree {
			if s, ok := simulator.Map.Get(n.Snapshot).(*simulator.VirtualMachineSnapshot); ok {
				var kids []types.ManagedObjectReference
				for _, c := range n.ChildSnapshotList {
					kids = append(kids, c.Snapshot)
				}
				s.ChildSnapshot = kids
			}
			relink(n.ChildSnapshotList)
		}
	}
	relink(roots)
	for _, r := range removed {
		removeSnapshotLayout(vm, r)
		simulator.Map.Remove(r)
	}
	vm.RefreshStorageInfo(ctx, &types.RefreshStorageInfo{This: vm.Self})
	return files
}

// removeSnapshotLayout drops a snapshot's entries from the VM's layouts and deletes its state file
// (.vmsn; .vmem). vcsim's own removeSnapshotFiles deletes the files whose layoutEx key the snapshot
// recorded, but RefreshStorageInfo renumbers those keys: the key may name a disk file by then. The
// snapshot's FileLayout entry keeps names.
func removeSnapshotLayout(vm *simulator.VirtualMachine, ref types.ManagedObjectReference) {
	for i, l := range vm.Layout.Snapshot {
		if l.Key != ref {
			continue
		}
		for _, name := range l.SnapshotFile {
			if strings.HasSuffix(name, ".vmsn") || strings.HasSuffix(name, ".vmem") {
				if local, _, f := localPath(name); f == nil {
					_ = os.Remove(local)
				}
			}
		}
		vm.Layout.Snapshot = append(vm.Layout.Snapshot[:i], vm.Layout.Snapshot[i+1:]...)
		break
	}
	for i, l := range vm.LayoutEx.Snapshot {
		if l.Key == ref {
			vm.LayoutEx.Snapshot = append(vm.LayoutEx.Snapshot[:i], vm.LayoutEx.Snapshot[i+1:]...)
			break
		}
	}
}

// repoint replaces, in every chain of every VM, the backing of file child by its parent (child's data
// was merged into it). A device's own settings (mode, provisioning, sharing) stay as they were.
func repoint(child string) {
	fix := func(b *types.VirtualDiskFlatVer2BackingInfo) {
		for n := b; n != nil && n.Parent != nil; n = n.Parent {
			for n.Parent != nil && n.Parent.FileName == child {
				n.Parent = n.Parent.Parent
			}
		}
	}
	for _, vm := range allVMs() {
		lists := [][]types.BaseVirtualDevice{}
		if vm.Config != nil {
			lists = append(lists, vm.Config.Hardware.Device)
		}
		for _, s := range snapshotsOf(vm) {
			lists = append(lists, s.Config.Hardware.Device)
		}
		for _, devices := range lists {
			for _, dev := range devices {
				d, ok := dev.(*types.VirtualDisk)
				if !ok {
					continue
				}
				b := flatBacking(d)
				if b == nil {
					continue
				}
				if b.FileName == child && b.Parent != nil {
					nb := deepCopy(b.Parent).(*types.VirtualDiskFlatVer2BackingInfo)
					nb.DiskMode, nb.ThinProvisioned, nb.EagerlyScrub = b.DiskMode, b.ThinProvisioned, b.EagerlyScrub
					nb.Sharing, nb.WriteThrough, nb.Uuid = b.Sharing, b.WriteThrough, b.Uuid
					d.Backing = nb
					b = nb
				}
				fix(b)
			}
		}
	}
}

// mergeInto merges delta child into its parent file: the parent takes the child's bytes and content
// id, every reference to the child names the parent, and the child's files are deleted.
func mergeInto(child, parent string) {
	cdesc, _, f := localPath(child)
	if f != nil {
		return
	}
	pdesc, _, f := localPath(parent)
	if f != nil {
		return
	}
	pd := readDescriptor(pdesc)
	size := int64(-1)
	if pd != nil && pd.sectors > 0 {
		size = pd.sectors * sectorSize
	}
	if err := copySparse(extentOf(cdesc), extentOf(pdesc), size); err != nil {
		return
	}
	if cd := readDescriptor(cdesc); cd != nil && pd != nil {
		// the parent now holds what the child held: the child's children keep a valid parentCID
		pd.cid, pd.longContentID = cd.cid, cd.longContentID
		_ = writeFileAtomic(pdesc, pd.render())
	}
	repoint(child)
	deleteDiskFiles(child)
}

// consolidate merges a delta into its parent file as vSphere consolidates on RemoveSnapshot: a file F
// of vm's chains (one a removed snapshot named, deepest first, or any parent left unmerged before) takes
// in its child C when F is neither vm's running disk nor a remaining snapshot's disk, and C is F's only
// child among all chains of all VMs and a snapshot's redo log (vmfsSparse; a linked clone's child disk
// is not merged into the disk it shares). A file a removed snapshot named that nothing refers to any
// more is deleted. A file with several children (a branch after a revert, a linked clone) stays.
// Repeats until nothing changes (after a merge F may take in its new child too).
func consolidate(vm *simulator.VirtualMachine, removed []string) {
	deleted := map[string]bool{}
	for changed := true; changed; {
		changed = false
		all := refsOfAll(nil)
		mine := refsOfVM(vm)
		candidates := append([]string(nil), removed...)
		var parents []string
		for file := range mine.all {
			if len(mine.children[file]) > 0 {
				parents = append(parents, file)
			}
		}
		sort.Strings(parents)
		candidates = append(candidates, parents...)
		for _, file := range candidates {
			if deleted[file] {
				continue
			}
			if !all.all[file] {
				deleteDiskFiles(file)
				deleted[file] = true
				changed = true
				break
			}
			kids := all.children[file]
			if mine.tops[file] || len(kids) != 1 {
				continue // a running disk (independent) or a remaining snapshot's; or a branch point
			}
			for child := range kids {
				desc, _, f := localPath(child)
				if f != nil {
					continue
				}
				if d := readDescriptor(desc); d == nil || !d.isDelta() {
					continue
				}
				mergeInto(child, file)
				deleted[child] = true
				changed = true
			}
			if changed {
				break
			}
		}
	}
	for _, v := range allVMs() {
		syncChainDescriptors(v)
	}
}

func snapshotOf(ref types.ManagedObjectReference) (*simulator.VirtualMachineSnapshot, *simulator.VirtualMachine, types.BaseMethodFault) {
	snap, ok := simulator.Map.Get(ref).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return nil, nil, &types.ManagedObjectNotFound{Obj: ref}
	}
	vm, ok := simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine)
	if !ok {
		return nil, nil, &types.ManagedObjectNotFound{Obj: snap.Vm}
	}
	return snap, vm, nil
}

func removeSnapshot(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RemoveSnapshot_Task)
	snap, vm, f := snapshotOf(req.This)
	if f != nil {
		return &methods.RemoveSnapshot_TaskBody{Fault_: fault("", f)}
	}
	ref := runTask(snap, "removeSnapshot", func() (types.AnyType, types.BaseMethodFault) {
		var f types.BaseMethodFault
		simulator.Map.WithLock(vm, func() {
			if vm.Snapshot == nil {
				f = &types.ManagedObjectNotFound{Obj: req.This}
				return
			}
			node, _ := findSnapshotNode(vm.Snapshot.RootSnapshotList, req.This, nil)
			if node == nil {
				f = &types.ManagedObjectNotFound{Obj: req.This}
				return
			}
			removed := []types.ManagedObjectReference{req.This}
			if req.RemoveChildren {
				removed = postOrder(*node)
			}
			files := dropSnapshots(ctx, vm, removed, req.This, req.RemoveChildren)
			if req.Consolidate == nil || *req.Consolidate {
				chainMu.Lock()
				consolidate(vm, files)
				chainMu.Unlock()
			}
			syncDisks(vm)
			simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: vm.Config.Hardware.Device}})
			vm.RefreshStorageInfo(ctx, &types.RefreshStorageInfo{This: vm.Self})
		})
		return nil, f
	})
	return &methods.RemoveSnapshot_TaskBody{Res: &types.RemoveSnapshot_TaskResponse{Returnval: ref}}
}

func removeAllSnapshots(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RemoveAllSnapshots_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	ref := runTask(vm, "removeAllSnapshots", func() (types.AnyType, types.BaseMethodFault) {
		if vm.Snapshot == nil {
			return nil, nil
		}
		var files []string
		for _, root := range append([]types.VirtualMachineSnapshotTree(nil), vm.Snapshot.RootSnapshotList...) {
			files = append(files, dropSnapshots(ctx, vm, postOrder(root), root.Snapshot, true)...)
		}
		if req.Consolidate == nil || *req.Consolidate {
			chainMu.Lock()
			consolidate(vm, files)
			chainMu.Unlock()
		}
		syncDisks(vm)
		simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: vm.Config.Hardware.Device}})
		vm.RefreshStorageInfo(ctx, &types.RefreshStorageInfo{This: vm.Self})
		return nil, nil
	})
	return &methods.RemoveAllSnapshots_TaskBody{Res: &types.RemoveAllSnapshots_TaskResponse{Returnval: ref}}
}

// ----------------------------------------------------------------------------------- revert

// revertTo puts the VM back on a snapshot: its devices become the snapshot's, each (not independent)
// disk on a fresh delta of the snapshot's file; an independent disk keeps its current file and data.
// The deltas the VM ran on are deleted when nothing refers to them any more.
func revertTo(ctx *simulator.Context, vm *simulator.VirtualMachine, snap *simulator.VirtualMachineSnapshot) types.BaseMethodFault {
	chainMu.Lock()
	var old []string
	for _, b := range diskBackingsOf(vm.Config.Hardware.Device) {
		if b.Parent != nil && !isIndependent(b) {
			old = append(old, b.FileName)
		}
	}
	current := object.VirtualDeviceList(vm.Config.Hardware.Device)
	devices := deepCopy(snap.Config.Hardware.Device).([]types.BaseVirtualDevice)
	for i, dev := range devices {
		d, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if b := flatBacking(d); b != nil && isIndependent(b) {
			if cd, ok := current.FindByKey(d.Key).(*types.VirtualDisk); ok {
				devices[i] = cd // not affected by snapshots
			}
		}
	}
	if f := switchToDeltas(devices); f != nil {
		chainMu.Unlock()
		return f
	}
	disks := 0
	for _, dev := range devices {
		if _, ok := dev.(*types.VirtualDisk); ok {
			disks++
		}
	}
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "config.hardware.device", Val: devices},
		{Name: "summary.config.numVirtualDisks", Val: int32(disks)},
		{Name: "snapshot.currentSnapshot", Val: &snap.Self},
	})
	all := refsOfAll(nil)
	for _, file := range old {
		if !all.all[file] {
			deleteDiskFiles(file)
		}
	}
	chainMu.Unlock()
	syncDisks(vm)
	vm.RefreshStorageInfo(ctx, &types.RefreshStorageInfo{This: vm.Self})
	return nil
}

func revertToSnapshot(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RevertToSnapshot_Task)
	snap, vm, f := snapshotOf(req.This)
	if f != nil {
		return &methods.RevertToSnapshot_TaskBody{Fault_: fault("", f)}
	}
	ref := runTask(snap, "revertToSnapshot", func() (types.AnyType, types.BaseMethodFault) {
		var f types.BaseMethodFault
		simulator.Map.WithLock(vm, func() { f = revertTo(ctx, vm, snap) })
		return nil, f
	})
	return &methods.RevertToSnapshot_TaskBody{Res: &types.RevertToSnapshot_TaskResponse{Returnval: ref}}
}

func revertToCurrentSnapshot(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RevertToCurrentSnapshot_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if vm.Snapshot == nil || vm.Snapshot.CurrentSnapshot == nil {
		return &methods.RevertToCurrentSnapshot_TaskBody{Fault_: fault("snapshot not found", &types.NotFound{})}
	}
	snap, ok := simulator.Map.Get(*vm.Snapshot.CurrentSnapshot).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return &methods.RevertToCurrentSnapshot_TaskBody{Fault_: fault("snapshot not found", &types.NotFound{})}
	}
	ref := runTask(vm, "revertToCurrentSnapshot", func() (types.AnyType, types.BaseMethodFault) {
		return nil, revertTo(ctx, vm, snap)
	})
	return &methods.RevertToCurrentSnapshot_TaskBody{Res: &types.RevertToCurrentSnapshot_TaskResponse{Returnval: ref}}
}

// ----------------------------------------------------------------------------------- destroy

// destroy: vcsim's Destroy_Task, and for a VM every file of its chains that no other VM uses. vcsim
// deletes the VM's disks (each device's top file, as vSphere does, even another VM's disk it holds)
// and then its whole folder; vSphere deletes the VM's own files only — its configuration, logs,
// snapshot files and disk chains — and leaves any other file in the folder, removing the folder only
// when nothing is left (govmomi issue #332: "vm.destroy leaves uploaded data in folder ... this is
// expected"). A file another VM's chain needs (a linked clone's parent) is kept, and the deltas and
// snapshot files elsewhere go too.
func destroy(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	handler := simulator.Map.Get(m.This)
	vm, ok := handler.(*simulator.VirtualMachine)
	if !ok {
		if pod, isPod := handler.(*simulator.StoragePod); isPod {
			return destroyPod(ctx, pod, m)
		}
		return callVcsim(ctx, m, handler)
	}
	chainMu.Lock()
	mine, others := refsOfVM(vm), refsOfAll(vm)
	tops := map[string]bool{}
	for _, b := range diskBackingsOf(vm.Config.Hardware.Device) {
		tops[b.FileName] = true
	}
	var extra []string
	for file := range mine.all {
		if !tops[file] && !others.all[file] {
			extra = append(extra, file)
		}
	}
	chainMu.Unlock()
	sort.Strings(extra)
	snaps := snapshotsOf(vm)
	logDir := vm.Config.Files.LogDirectory
	folder := ""
	if logDir != "" {
		if local, _, f := localPath(logDir); f == nil {
			folder = local
		}
	}
	// vcsim credits every disk device's capacity on destroy; a disk whose file is already gone (another
	// VM's destroy took it) frees nothing on vSphere, so its credit is taken back below
	var gone []*types.VirtualDisk
	for _, dev := range vm.Config.Hardware.Device {
		if d, ok := dev.(*types.VirtualDisk); ok {
			if b := flatBacking(d); b != nil && b.FileName != "" {
				if local, _, f := localPath(b.FileName); f == nil && !fileExists(local) {
					gone = append(gone, d)
				}
			}
		}
	}
	vm.Config.Files.LogDirectory = "" // vcsim would delete the whole folder: we delete the VM's own files
	res := vm.DestroyTask(ctx, m.Body.(*types.Destroy_Task))
	if _, f := outcome(res); f != nil {
		vm.Config.Files.LogDirectory = logDir
		return res
	}
	for _, d := range gone {
		if _, ds, f := localPath(flatBacking(d).FileName); f == nil {
			adjustFree(ds, -diskCapacity(d))
		}
	}
	for _, file := range extra {
		deleteDiskFiles(file)
		if local, ds, f := localPath(file); f == nil && filepath.Dir(local) != filepath.Clean(dsURL(ds)) {
			_ = os.Remove(filepath.Dir(local)) // only if empty now
		}
	}
	if folder != "" {
		entries, _ := ioutil.ReadDir(folder)
		for _, e := range entries {
			if vmOwnFile(e.Name()) {
				_ = os.RemoveAll(filepath.Join(folder, e.Name()))
			}
		}
		_ = os.Remove(folder) // only if empty now
	}
	for _, s := range snaps {
		simulator.Map.Remove(s.Self)
	}
	return res
}

// vmOwnFile: a file a VM's folder holds for the VM itself (configuration, logs, memory, swap,
// snapshot state), which Destroy_Task removes; disks are the VM's when its chains name them.
func vmOwnFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".vmx", ".vmxf", ".vmsd", ".vmsn", ".vmss", ".vmem", ".nvram", ".log", ".vswp", ".hlog", ".vmtx",
		".lck", ".scoreboard":
		return true
	}
	return false
}

// ------------------------------------------------------------------------------------ attach

// attachFromFile fills a disk being added without a file operation (an existing VMDK, as Nova,
// govmomi's VirtualDeviceList.ConfigSpec and terraform-provider-vsphere send it, capacityInKB 0) with
// what the file says: capacity, provisioning, uuid, and its parent chain when it is a delta. vSphere
// reports the disk as it is; vcsim keeps the request's values.
func attachFromFile(d *types.VirtualDisk) {
	b := flatBacking(d)
	if b == nil || b.FileName == "" {
		return
	}
	desc, _, f := localPath(b.FileName)
	if f != nil {
		return
	}
	cur := readDescriptor(desc)
	if cur == nil || cur.sectors == 0 {
		return
	}
	setCapacity(d, cur.sectors*sectorSize)
	if !cur.isDelta() {
		b.ThinProvisioned = types.NewBool(cur.thin)
	}
	if u := backingUUID(cur.uuid); u != "" {
		b.Uuid = u
	}
	if b.Parent == nil && cur.parentHint != "" {
		b.Parent = backingOfFile(resolveHint(b.FileName, cur.parentHint), 16)
		if b.Parent != nil && b.DeltaDiskFormat == "" {
			b.DeltaDiskFormat = redoLogDiskFormat
		}
	}
}

// resolveHint turns a descriptor's parentFileNameHint into a datastore path.
func resolveHint(child, hint string) string {
	if strings.HasPrefix(hint, "/vmfs/volumes/") {
		rest := strings.SplitN(strings.TrimPrefix(hint, "/vmfs/volumes/"), "/", 2)
		if len(rest) == 2 {
			return dsPath(rest[0], rest[1])
		}
		return ""
	}
	var c object.DatastorePath
	c.FromString(child)
	return dsPath(c.Datastore, path.Clean(path.Join(path.Dir(c.Path), hint)))
}

// backingOfFile describes an existing disk file (and its parents) as a backing.
func backingOfFile(file string, depth int) *types.VirtualDiskFlatVer2BackingInfo {
	if file == "" || depth == 0 {
		return nil
	}
	desc, ds, f := localPath(file)
	if f != nil {
		return nil
	}
	cur := readDescriptor(desc)
	if cur == nil {
		return nil
	}
	ref := ds.Self
	b := &types.VirtualDiskFlatVer2BackingInfo{
		VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: file, Datastore: &ref},
		DiskMode:                     string(types.VirtualDiskModePersistent),
		ThinProvisioned:              types.NewBool(cur.thin),
		Uuid:                         backingUUID(cur.uuid),
	}
	if cur.parentHint != "" {
		b.Parent = backingOfFile(resolveHint(file, cur.parentHint), depth-1)
		if b.Parent != nil {
			b.DeltaDiskFormat = redoLogDiskFormat
		}
	}
	return b
}
