package main

// RelocateVM_Task as vSphere does it: the VM's folder and disks move to the datastores asked
// (files really move), backings follow (file name, datastore, thin/eager as the locators ask),
// vm.datastore and the host/pool/folder change. vcsim 0.24.2 only changes vm.datastore.

import (
	"io/ioutil"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func relocateVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RelocateVM_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	ref := runTask(vm, "relocateVm", func() (types.AnyType, types.BaseMethodFault) {
		return nil, doRelocate(ctx, vm, &req.Spec)
	})
	return &methods.RelocateVM_TaskBody{Res: &types.RelocateVM_TaskResponse{Returnval: ref}}
}

type diskMove struct {
	disk        *types.VirtualDisk
	from, to    *simulator.Datastore
	thin, eager bool
	moveType    string // the locator's diskMoveType, else the spec's
}

// moveTypeOf: "This property applies to all the disks which the virtual machine has, but can be overridden
// on a per-disk basis" (RelocateSpec.diskMoveType); unset is moveAllDiskBackingsAndDisallowSharing.
func moveTypeOf(spec string, dl *types.VirtualMachineRelocateSpecDiskLocator) string {
	if dl != nil && dl.DiskMoveType != "" {
		return dl.DiskMoveType
	}
	return spec
}

// dsPath builds "[ds] p".
func dsPath(ds string, p string) string {
	return (&object.DatastorePath{Datastore: ds, Path: p}).String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func doRelocate(ctx *simulator.Context, vm *simulator.VirtualMachine, spec *types.VirtualMachineRelocateSpec) types.BaseMethodFault {
	dir := vmDir(vm)
	oldVMX := datastoreByName(dir.Datastore)
	if oldVMX == nil {
		return &types.InvalidDatastore{Name: dir.Datastore}
	}
	newVMX := oldVMX
	if spec.Datastore != nil {
		ds, f := datastoreOf(spec.Datastore)
		if f != nil {
			return f
		}
		newVMX = ds
	}
	need := []*simulator.Datastore{newVMX}

	var moves []diskMove
	for _, d := range vmDisks(vm) {
		b := flatBacking(d)
		desc, from, f := localPath(b.FileName)
		if f != nil {
			return f
		}
		if !fileExists(desc) {
			// e.g. another VM's storage vMotion moved a VMDK this VM also held (Nova's
			// _consolidate_vmdk_volume relies on this FileNotFound, commit 24488387a1)
			return &types.FileNotFound{FileFault: types.FileFault{File: b.FileName}}
		}
		to := from
		dl := locatorFor(spec.Disk, d.Key)
		switch {
		case dl != nil && dl.Datastore.Value != "":
			if to, f = datastoreOf(&dl.Datastore); f != nil {
				return f
			}
		case spec.Datastore != nil:
			to = newVMX
		}
		thin, eager := provisioning(b, string(spec.Transform), dl)
		mt := moveTypeOf(spec.DiskMoveType, dl)
		moves = append(moves, diskMove{disk: d, from: from, to: to, thin: thin, eager: eager, moveType: mt})
		need = append(need, to)
		if mt == moveChildMost || mt == newChildBacking || to == from {
			for p := b.Parent; p != nil; p = p.Parent {
				if _, pds, f := localPath(p.FileName); f == nil {
					need = append(need, pds)
				}
			}
		}
	}

	var pool mo.Entity
	if spec.Pool != nil {
		p, ok := simulator.Map.Get(*spec.Pool).(mo.Entity)
		if !ok {
			return &types.ManagedObjectNotFound{Obj: *spec.Pool}
		}
		pool = p
	} else if vm.ResourcePool != nil {
		pool, _ = simulator.Map.Get(*vm.ResourcePool).(mo.Entity)
	} else if h, ok := simulator.Map.Get(*vm.Runtime.Host).(*simulator.HostSystem); ok {
		pool = h // a template: the host's compute resource
	}
	host, f := pickHost(spec.Host, pool, spec.Pool != nil, vm.Runtime.Host, need)
	if f != nil {
		return f
	}

	// Plan every file move and refuse before touching anything if a target exists.
	type fileMove struct{ from, to string }
	var files []fileMove
	diskFiles := map[string]bool{} // local paths of disk files (they move with their disk, or stay)
	chainMu.Lock()
	mine, others := refsOfVM(vm), refsOfAll(vm)
	chainMu.Unlock()
	locked := lockedFiles(vm)
	for file := range mine.all {
		if desc, _, f := localPath(file); f == nil {
			for _, name := range diskFileSet(desc) {
				diskFiles[name] = true
			}
		}
	}
	// The VM's folder on a new datastore is named as vCenter names one (name, name_1... if taken);
	// disks moving alone go to a folder of the VM's name on their datastore.
	newDirPath := dir.Path
	if newVMX != oldVMX {
		newDirPath = freeName(func(n string) bool { return fileExists(filepath.Join(dsURL(newVMX), n)) }, dir.Path, "")
	}
	folderOn := func(ds *simulator.Datastore) string {
		if ds == newVMX {
			return newDirPath
		}
		return dir.Path
	}
	oldLocal := filepath.Join(dsURL(oldVMX), dir.Path)
	newLocal := filepath.Join(dsURL(newVMX), newDirPath)
	if newVMX != oldVMX {
		entries, _ := ioutil.ReadDir(oldLocal)
		for _, e := range entries {
			from := filepath.Join(oldLocal, e.Name())
			if diskFiles[from] || e.IsDir() {
				continue
			}
			files = append(files, fileMove{from, filepath.Join(newLocal, e.Name())})
		}
	}
	// A disk moves with the files of its chains that no other VM uses (its snapshots' deltas and base,
	// vSphere's moveAllDiskBackings*; not for moveChildMostDiskBacking); a parent another VM uses (a
	// linked clone's) is left to relocateParents.
	renames := map[string]string{} // datastore path -> new datastore path
	renamedTo := map[string]*simulator.Datastore{}
	var descMoves []fileMove // descriptors whose extent name follows the new name
	taken := map[string]bool{}
	for _, mv := range moves {
		if mv.to == mv.from || mv.moveType == newChildBacking { // a new child is made below; no file moves
			continue
		}
		b := flatBacking(mv.disk)
		chain := []string{b.FileName}
		if mv.moveType != moveChildMost {
			for p := b.Parent; p != nil; p = p.Parent {
				chain = append(chain, p.FileName)
			}
			for _, top := range chainTops(vm) {
				for p := top; p != nil; p = p.Parent {
					if sameDisk(vm, top, mv.disk.Key) {
						chain = append(chain, p.FileName)
					}
				}
			}
		}
		for i, old := range chain {
			if _, done := renames[old]; done || (i > 0 && others.all[old]) {
				continue
			}
			var p object.DatastorePath
			p.FromString(old)
			if p.Datastore == mv.to.Name {
				continue
			}
			if locked[old] {
				// a running VM holds the file open (ESXi's lock): it cannot be read, moved or deleted
				return &types.FileLocked{FileFault: types.FileFault{File: old}}
			}
			folder := folderOn(mv.to)
			local := filepath.Join(dsURL(mv.to), folder)
			file := freeName(func(n string) bool {
				return taken[filepath.Join(local, n)] || fileExists(filepath.Join(local, n)) ||
					fileExists(filepath.Join(local, flatName(n))) || fileExists(filepath.Join(local, deltaExtentName(n)))
			}, strings.TrimSuffix(path.Base(p.Path), ".vmdk"), ".vmdk")
			taken[filepath.Join(local, file)] = true
			name := dsPath(mv.to.Name, path.Join(folder, file))
			renames[old], renamedTo[name] = name, mv.to
			desc, _, _ := localPath(old)
			ndesc, _, _ := localPath(name)
			ext, next := flatName(desc), flatName(ndesc)
			if d := readDescriptor(desc); d != nil && d.extent != "" {
				ext = filepath.Join(filepath.Dir(desc), d.extent)
				if d.isDelta() {
					next = deltaExtentName(ndesc)
				}
			}
			files = append(files, fileMove{desc, ndesc}, fileMove{ext, next})
			descMoves = append(descMoves, fileMove{ndesc, next})
		}
	}
	for _, fm := range files {
		if fileExists(fm.to) {
			return &types.FileAlreadyExists{FileFault: types.FileFault{File: fm.to}}
		}
	}

	// Move.
	for _, fm := range files {
		if err := os.MkdirAll(filepath.Dir(fm.to), 0o700); err != nil {
			return &types.CannotCreateFile{FileFault: types.FileFault{File: fm.to}}
		}
		if err := moveFile(fm.from, fm.to); err != nil {
			return &types.CannotAccessFile{FileFault: types.FileFault{File: fm.from}}
		}
	}
	for _, dm := range descMoves { // a moved descriptor names its moved extent
		if d := readDescriptor(dm.from); d != nil {
			d.extent = filepath.Base(dm.to)
			_ = writeFileAtomic(dm.from, d.render())
		}
	}
	if newVMX != oldVMX {
		_ = os.Remove(oldLocal) // only if empty: disks that stay keep the folder
	}

	// Inventory: backings (devices' and snapshots', at any depth), files, datastores, host, pool, folder.
	for _, top := range chainTops(vm) {
		for b := top; b != nil; b = b.Parent {
			if name, ok := renames[b.FileName]; ok {
				ref := renamedTo[name].Self
				b.FileName, b.Datastore = name, &ref
			}
		}
	}
	childTaken := map[string]bool{}
	for _, mv := range moves {
		b := flatBacking(mv.disk)
		if mv.moveType == newChildBacking && mv.to != mv.from {
			// "Create a new child disk backing on the destination datastore. None of the virtual disk's
			// existing files should be moved from their current locations."
			child, f := newDeltaIn(b, diskCapacity(mv.disk), childTaken, mv.to, folderOn(mv.to))
			if f != nil {
				return f
			}
			mv.disk.Backing = child
			continue
		}
		b.ThinProvisioned, b.EagerlyScrub = types.NewBool(mv.thin), types.NewBool(mv.eager)
		if mv.to == mv.from {
			continue
		}
		capacity := diskCapacity(mv.disk)
		adjustFree(mv.from, capacity)
		adjustFree(mv.to, -capacity)
		switch mv.moveType {
		case moveChildMost:
			// the child moves; its parents stay where they are
		default:
			// moveAllDiskBackingsAndDisallowSharing (unset), ...AndAllowSharing, ...AndConsolidate (which
			// consolidates only "during a clone operation or a MigrateVM_Task", not on relocate)
			relocateParents(b, mv.to, folderOn(mv.to), mv.moveType == moveAllowSharing, renamedTo)
		}
	}
	files2 := vm.Config.Files
	if newVMX != oldVMX {
		from, to := dsPath(oldVMX.Name, dir.Path), dsPath(newVMX.Name, newDirPath)
		swap := func(s string) string {
			if s == from || strings.HasPrefix(s, from+"/") {
				return to + strings.TrimPrefix(s, from)
			}
			return s
		}
		files2.VmPathName = swap(files2.VmPathName)
		files2.SnapshotDirectory = swap(files2.SnapshotDirectory)
		files2.SuspendDirectory = swap(files2.SuspendDirectory)
		files2.LogDirectory = swap(files2.LogDirectory)
		vm.Summary.Config.VmPathName = files2.VmPathName
		setVMLog(vm, filepath.Join(newLocal, "vmware.log"))
	}

	oldHost := *vm.Runtime.Host
	if host.Self != oldHost {
		if h, ok := simulator.Map.Get(oldHost).(*simulator.HostSystem); ok {
			removeRef(h, &h.Vm, vm.Self)
		}
		addRef(host, &host.Vm, vm.Self)
		ref := host.Self
		vm.Runtime.Host = &ref
		vm.Summary.Runtime.Host = &ref
		if cr := computeResourceOf(host); cr != nil {
			if c, ok := cr.(*simulator.ClusterComputeResource); ok && c.EnvironmentBrowser != nil {
				vm.EnvironmentBrowser = *c.EnvironmentBrowser
			} else if c, ok := cr.(*mo.ComputeResource); ok && c.EnvironmentBrowser != nil {
				vm.EnvironmentBrowser = *c.EnvironmentBrowser
			}
		}
	}
	if spec.Pool != nil && (vm.ResourcePool == nil || *vm.ResourcePool != *spec.Pool) && !vm.Config.Template {
		if vm.ResourcePool != nil {
			if list, obj := poolVMs(simulator.Map.Get(*vm.ResourcePool)); list != nil {
				removeRef(obj, list, vm.Self)
			}
		}
		if list, obj := poolVMs(simulator.Map.Get(*spec.Pool)); list != nil {
			addRef(obj, list, vm.Self)
		}
		ref := *spec.Pool
		vm.ResourcePool = &ref
	}

	// vm.datastore: where the VM's files and disks (and their parents) are now.
	used := []*simulator.Datastore{newVMX}
	for _, d := range vmDisks(vm) {
		for b := flatBacking(d); b != nil; b = b.Parent {
			if _, ds, f := localPath(b.FileName); f == nil {
				used = append(used, ds)
			}
		}
	}
	var refs []types.ManagedObjectReference
	seen := map[types.ManagedObjectReference]bool{}
	for _, ds := range used {
		if !seen[ds.Self] {
			seen[ds.Self] = true
			refs = append(refs, ds.Self)
		}
	}
	for _, r := range vm.Datastore {
		if !seen[r] {
			if ds, ok := simulator.Map.Get(r).(*simulator.Datastore); ok {
				removeRef(ds, &ds.Vm, vm.Self)
			}
		}
	}
	for _, r := range refs {
		if ds, ok := simulator.Map.Get(r).(*simulator.Datastore); ok {
			addRef(ds, &ds.Vm, vm.Self)
		}
	}
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "datastore", Val: refs},
		{Name: "config.files", Val: files2},
		{Name: "runtime.host", Val: vm.Runtime.Host},
		{Name: "summary.runtime.host", Val: vm.Runtime.Host},
	})
	if vm.ResourcePool != nil {
		simulator.Map.Update(vm, []types.PropertyChange{{Name: "resourcePool", Val: vm.ResourcePool}})
	}

	vm.RefreshStorageInfo(ctx, &types.RefreshStorageInfo{This: vm.Self})
	syncDisks(vm)
	syncChainDescriptors(vm)

	if spec.Folder != nil {
		if folder, ok := simulator.Map.Get(*spec.Folder).(*simulator.Folder); ok {
			res := folder.MoveIntoFolderTask(ctx, &types.MoveIntoFolder_Task{This: folder.Self, List: []types.ManagedObjectReference{vm.Self}})
			if _, f := outcome(res); f != nil {
				return f
			}
		}
	}
	return nil
}

// lockedFiles: the disk files (datastore paths) that powered-on VMs other than vm have open: every file of
// their disks' chains. ESXi locks them ("Unable to access file ... since it is locked").
func lockedFiles(vm *simulator.VirtualMachine) map[string]bool {
	out := map[string]bool{}
	for _, other := range allVMs() {
		if other == vm || other.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			continue
		}
		for _, d := range vmDisks(other) {
			for b := flatBacking(d); b != nil; b = b.Parent {
				out[b.FileName] = true
			}
		}
	}
	return out
}

// relocateParents copies a moved child's parent chain next to it on the target datastore (vSphere's
// moveAllDiskBackings*), reusing a parent already on that datastore when sharing is allowed.
func relocateParents(b *types.VirtualDiskFlatVer2BackingInfo, to *simulator.Datastore, dir string, share bool,
	moved map[string]*simulator.Datastore) {
	for child := b; child.Parent != nil; child = child.Parent {
		p := child.Parent
		if moved[p.FileName] != nil {
			continue // the VM's own file, moved with its disk
		}
		_, pds, f := localPath(p.FileName)
		if f != nil {
			return
		}
		if pds == to && share {
			return
		}
		var pp object.DatastorePath
		pp.FromString(p.FileName)
		name := dsPath(to.Name, path.Join(dir, path.Base(pp.Path)))
		if name == p.FileName {
			return
		}
		src, _, _ := localPath(p.FileName)
		dst, _, _ := localPath(name)
		if !fileExists(dst) {
			_ = os.MkdirAll(filepath.Dir(dst), 0o700)
			if err := copySparse(flatName(src), flatName(dst), -1); err != nil {
				return
			}
			if data, err := ioutil.ReadFile(src); err == nil {
				_ = ioutil.WriteFile(dst, data, 0o600)
			}
		}
		np := *p
		np.FileName = name
		np.Datastore = &to.Self
		child.Parent = &np
	}
}

// sameDisk: top is the backing of the disk with that key, in the VM's devices or a snapshot's config.
func sameDisk(vm *simulator.VirtualMachine, top *types.VirtualDiskFlatVer2BackingInfo, key int32) bool {
	lists := [][]types.BaseVirtualDevice{vm.Config.Hardware.Device}
	for _, s := range snapshotsOf(vm) {
		lists = append(lists, s.Config.Hardware.Device)
	}
	for _, devices := range lists {
		for _, dev := range devices {
			if d, ok := dev.(*types.VirtualDisk); ok && d.Key == key && flatBacking(d) == top {
				return true
			}
		}
	}
	return false
}
