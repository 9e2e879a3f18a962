package main

// CloneVM_Task as vSphere does it. vcsim 0.24.2's clone rewrites the SOURCE's disk backings to the
// clone's files, ignores disk locators, transform and createNewChildDiskBacking, and leaves the
// clone's disks empty. Here the source is read only (deep copies), each disk gets its own files on
// the datastore asked, with the provisioning type asked, and the data is copied.

import (
	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	moveChildMost     = string(types.VirtualMachineRelocateDiskMoveOptionsMoveChildMostDiskBacking)
	newChildBacking   = string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
	moveConsolidate   = string(types.VirtualMachineRelocateDiskMoveOptionsMoveAllDiskBackingsAndConsolidate)
	moveAllowSharing  = string(types.VirtualMachineRelocateDiskMoveOptionsMoveAllDiskBackingsAndAllowSharing)
	transformSparse   = string(types.VirtualMachineRelocateTransformationSparse)
	transformFlat     = string(types.VirtualMachineRelocateTransformationFlat)
	redoLogDiskFormat = "redoLogFormat"
)

func boolOf(b *bool) bool { return b != nil && *b }

func datastoreOf(ref *types.ManagedObjectReference) (*simulator.Datastore, types.BaseMethodFault) {
	ds, ok := simulator.Map.Get(*ref).(*simulator.Datastore)
	if !ok {
		return nil, &types.InvalidDatastore{Datastore: ref}
	}
	return ds, nil
}

func locatorFor(locs []types.VirtualMachineRelocateSpecDiskLocator, key int32) *types.VirtualMachineRelocateSpecDiskLocator {
	for i := range locs {
		if locs[i].DiskId == key {
			return &locs[i]
		}
	}
	return nil
}

// provisioning decides a disk's thin/eager flags: the source's, changed by a transform, then by the
// locator's backing (vSphere's diskBackingInfo converts the disk).
func provisioning(b *types.VirtualDiskFlatVer2BackingInfo, transform string,
	loc *types.VirtualMachineRelocateSpecDiskLocator) (thin, eager bool) {
	thin, eager = boolOf(b.ThinProvisioned), boolOf(b.EagerlyScrub)
	switch transform {
	case transformSparse:
		thin, eager = true, false
	case transformFlat:
		thin = false
	}
	if loc != nil {
		if nb, ok := loc.DiskBackingInfo.(*types.VirtualDiskFlatVer2BackingInfo); ok {
			if nb.ThinProvisioned != nil {
				thin = *nb.ThinProvisioned
			}
			if nb.EagerlyScrub != nil {
				eager = *nb.EagerlyScrub
			}
		}
	}
	if thin {
		eager = false
	}
	return thin, eager
}

func cloneVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CloneVM_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	ref := runTask(vm, "cloneVm", func() (types.AnyType, types.BaseMethodFault) { return doClone(ctx, vm, req) })
	return &methods.CloneVM_TaskBody{Res: &types.CloneVM_TaskResponse{Returnval: ref}}
}

type clonePlan struct {
	disk    *types.VirtualDisk // the clone's device (its backing gets the file name on create)
	srcFile string             // the source disk's descriptor, "[ds] dir/name.vmdk"
}

func doClone(ctx *simulator.Context, vm *simulator.VirtualMachine, req *types.CloneVM_Task) (types.AnyType, types.BaseMethodFault) {
	spec := req.Spec
	loc := spec.Location
	folder, ok := simulator.Map.Get(req.Folder).(*simulator.Folder)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: req.Folder}
	}
	pool := loc.Pool
	if pool == nil && !vm.Config.Template {
		pool = vm.ResourcePool
	}
	if pool == nil {
		return nil, &types.InvalidArgument{InvalidProperty: "spec.location.pool"}
	}
	poolObj, ok := simulator.Map.Get(*pool).(mo.Entity)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: *pool}
	}

	src := vm.Config
	if spec.Snapshot != nil {
		snap, ok := simulator.Map.Get(*spec.Snapshot).(*simulator.VirtualMachineSnapshot)
		if !ok || snap.Vm != vm.Self {
			return nil, &types.InvalidArgument{InvalidProperty: "spec.snapshot"}
		}
		src = &snap.Config
	}
	// createNewChildDiskBacking for the clone as a whole or for one disk (a locator's diskMoveType
	// overrides the spec's per disk)
	linkedDisk := func(key int32) bool {
		return moveTypeOf(loc.DiskMoveType, locatorFor(loc.Disk, key)) == newChildBacking
	}
	linked := loc.DiskMoveType == newChildBacking
	for _, dl := range loc.Disk {
		linked = linked || dl.DiskMoveType == newChildBacking
	}
	if linked && spec.Snapshot == nil {
		// vSphere: "for a clone this option is only valid when cloning from a snapshot" (the fault
		// type is our best reading of that rule).
		return nil, &types.InvalidArgument{InvalidProperty: "spec.location.diskMoveType"}
	}

	srcDir := vmDir(vm)
	vmxDS := datastoreByName(srcDir.Datastore)
	if loc.Datastore != nil {
		ds, f := datastoreOf(loc.Datastore)
		if f != nil {
			return nil, f
		}
		vmxDS = ds
	}
	if vmxDS == nil {
		return nil, &types.InvalidDatastore{Name: srcDir.Datastore}
	}
	need := []*simulator.Datastore{vmxDS}

	devices := deepCopy(src.Hardware.Device).([]types.BaseVirtualDevice)
	defaults := object.VirtualDeviceList(esx.VirtualDevice)
	var changes []types.BaseVirtualDeviceConfigSpec
	var plans []clonePlan
	for _, dev := range devices {
		if defaults.Find(object.VirtualDeviceList(devices).Name(dev)) != nil {
			continue // CreateVM adds the default devices
		}
		dspec := &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: dev}
		disk, isDisk := dev.(*types.VirtualDisk)
		b := (*types.VirtualDiskFlatVer2BackingInfo)(nil)
		if isDisk {
			b = flatBacking(disk)
		}
		if b == nil {
			changes = append(changes, dspec)
			continue
		}
		dl := locatorFor(loc.Disk, disk.Key)
		_, srcDS, f := localPath(b.FileName)
		if f != nil {
			return nil, f
		}
		target := srcDS
		switch {
		case dl != nil && dl.Datastore.Value != "":
			if target, f = datastoreOf(&dl.Datastore); f != nil {
				return nil, f
			}
		case loc.Datastore != nil || linkedDisk(disk.Key):
			target = vmxDS
		}
		need = append(need, target)
		thin, eager := provisioning(b, string(loc.Transform), dl)
		nb := &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[" + target.Name + "]"},
			DiskMode:                     b.DiskMode,
			Split:                        b.Split,
			WriteThrough:                 b.WriteThrough,
			ThinProvisioned:              types.NewBool(thin),
			EagerlyScrub:                 types.NewBool(eager),
			DigestEnabled:                b.DigestEnabled,
			Sharing:                      b.Sharing,
		}
		if nb.DiskMode == "" {
			nb.DiskMode = string(types.VirtualDiskModePersistent)
		}
		if linkedDisk(disk.Key) {
			// The child's parent is the source disk as of the snapshot (the snapshot's own chain).
			nb.Parent = b
			nb.DeltaDiskFormat = redoLogDiskFormat
			for p := b; p != nil; p = p.Parent {
				if _, pds, f := localPath(p.FileName); f == nil {
					need = append(need, pds)
				}
			}
		}
		disk.Backing = nb
		dspec.FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
		changes = append(changes, dspec)
		plans = append(plans, clonePlan{disk: disk, srcFile: b.FileName})
	}

	host, f := pickHost(loc.Host, poolObj, loc.Pool != nil, vm.Runtime.Host, need)
	if f != nil {
		return nil, f
	}

	config := cloneConfig(req, src, vmxDS)
	config.DeviceChange = changes
	res := createVMIn(ctx, folder, &types.CreateVM_Task{This: folder.Self, Config: config, Pool: *pool, Host: &host.Self})
	result, f := outcome(res)
	if f != nil {
		return nil, f
	}
	cloneRef := result.(types.ManagedObjectReference)
	clone := simulator.Map.Get(cloneRef).(*simulator.VirtualMachine)
	destroy := func() {
		clone.DestroyTask(ctx, &types.Destroy_Task{This: clone.Self})
	}

	var copyFault types.BaseMethodFault
	simulator.Map.WithLock(clone, func() {
		for _, p := range plans {
			from, _, f := localPath(p.srcFile)
			if f != nil {
				copyFault = f
				return
			}
			to, _, f := localPath(flatBacking(p.disk).FileName)
			if f != nil {
				copyFault = f
				return
			}
			// the source disk's bytes as of the clone point: its top file's extent (a delta holds them all)
			if err := copySparse(extentOf(from), flatName(to), diskCapacity(p.disk)); err != nil {
				copyFault = &types.FileNotFound{FileFault: types.FileFault{File: p.srcFile}}
				return
			}
		}
		syncDisks(clone)
	})
	if copyFault != nil {
		destroy()
		return nil, copyFault
	}

	var deviceChange []types.BaseVirtualDeviceConfigSpec
	deviceChange = append(deviceChange, loc.DeviceChange...)
	if spec.Config != nil {
		deviceChange = append(deviceChange, spec.Config.DeviceChange...)
	}
	if len(deviceChange) > 0 {
		rm := &simulator.Method{Name: "ReconfigVM_Task", This: clone.Self,
			Body: &types.ReconfigVM_Task{This: clone.Self, Spec: types.VirtualMachineConfigSpec{DeviceChange: deviceChange}}}
		var rres soap.HasFault
		simulator.Map.WithLock(clone, func() { rres = reconfigVM(ctx, rm) })
		if _, f := outcome(rres); f != nil {
			destroy()
			return nil, f
		}
	}
	if spec.Template {
		_ = clone.MarkAsTemplate(&types.MarkAsTemplate{This: clone.Self})
	}
	if spec.PowerOn {
		clone.PowerOnVMTask(ctx, &types.PowerOnVM_Task{This: clone.Self})
	}
	return cloneRef, nil
}

// cloneConfig is the clone's CreateVM config: the source's settings (hardware, guest, annotation,
// extraConfig) with spec.config applied on top, as vSphere clones a VM's configuration.
func cloneConfig(req *types.CloneVM_Task, src *types.VirtualMachineConfigInfo, vmxDS *simulator.Datastore) types.VirtualMachineConfigSpec {
	var config types.VirtualMachineConfigSpec
	if req.Spec.Config != nil {
		config = *(deepCopy(req.Spec.Config).(*types.VirtualMachineConfigSpec))
		config.DeviceChange = nil
	}
	config.Name = req.Name
	config.Files = &types.VirtualMachineFileInfo{VmPathName: "[" + vmxDS.Name + "] " + req.Name}
	if config.GuestId == "" {
		config.GuestId = src.GuestId
	}
	if config.Annotation == "" {
		config.Annotation = src.Annotation
	}
	if config.Version == "" {
		config.Version = src.Version
	}
	if config.NumCPUs == 0 {
		config.NumCPUs = src.Hardware.NumCPU
	}
	if config.NumCoresPerSocket == 0 {
		config.NumCoresPerSocket = src.Hardware.NumCoresPerSocket
	}
	if config.MemoryMB == 0 {
		config.MemoryMB = int64(src.Hardware.MemoryMB)
	}
	if config.VirtualICH7MPresent == nil {
		config.VirtualICH7MPresent = src.Hardware.VirtualICH7MPresent
	}
	if config.VirtualSMCPresent == nil {
		config.VirtualSMCPresent = src.Hardware.VirtualSMCPresent
	}
	// A new VM: a new BIOS uuid and a new instanceUuid unless the spec gives them (vcsim would derive
	// both from the clone's path, so a clone made where a destroyed VM was would get that VM's ids).
	if config.Uuid == "" {
		config.Uuid = uuid.New().String()
	}
	if config.InstanceUuid == "" {
		config.InstanceUuid = uuid.New().String()
	}
	// extraConfig: the source's keys (but vcsim's own marker, which CreateVM adds), then the spec's
	// by key; an empty value removes a key.
	var extra []types.BaseOptionValue
	for _, o := range src.ExtraConfig {
		ov := o.GetOptionValue()
		if ov.Key == "govcsim" {
			continue
		}
		extra = append(extra, &types.OptionValue{Key: ov.Key, Value: ov.Value})
	}
	for _, o := range config.ExtraConfig {
		ov := o.GetOptionValue()
		i := indexOption(extra, ov.Key)
		switch {
		case isEmptyOption(ov) && i >= 0:
			extra = append(extra[:i:i], extra[i+1:]...)
		case isEmptyOption(ov):
		case i >= 0:
			extra[i] = &types.OptionValue{Key: ov.Key, Value: ov.Value}
		default:
			extra = append(extra, &types.OptionValue{Key: ov.Key, Value: ov.Value})
		}
	}
	config.ExtraConfig = extra
	return config
}
