package main

// CreateVM_Task and ReconfigVM_Task: vcsim's, plus the disk files, the disk size rules and the
// extraConfig semantics of vSphere (snapshots: chains.go).

import (
	"fmt"
	"math/rand"
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

// taskResult is the result of the (finished) task a *_Task answer names, if it succeeded.
func taskResult(res soap.HasFault) (types.AnyType, bool) {
	if res.Fault() != nil {
		return nil, false
	}
	ref, ok := returnval(res).(types.ManagedObjectReference)
	if !ok {
		return nil, false
	}
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok || task.Info.Error != nil {
		return nil, false
	}
	return task.Info.Result, true
}

func createVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CreateVM_Task)
	folder, ok := simulator.Map.Get(req.This).(*simulator.Folder)
	if !ok {
		return &methods.CreateVM_TaskBody{Fault_: fault("", &types.NotSupported{})}
	}
	attached := normalizeDisks(&req.Config)
	chooseHost(req)
	res := createVMIn(ctx, folder, req)
	if r, ok := taskResult(res); ok {
		giveBack(attached)
		if vm, ok := simulator.Map.Get(r.(types.ManagedObjectReference)).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() { syncDisks(vm) })
		}
	}
	return res
}

// chooseHost gives a CreateVM without host one as vcsim would choose it: at random among the hosts of the
// pool's compute resource that mount the datastore of the VM's files. vcsim chooses from the compute
// resource's own host list filtered in place (folder.go hostsWithDatastore: attached := hosts[:0]), which
// rewrites a cluster's host list whose hosts do not all mount that datastore ([H0 H1 H2] became
// [H1 H2 H2]); we choose from a copy. Without such a host the request is vcsim's as it was.
func chooseHost(req *types.CreateVM_Task) {
	if req.Host != nil || req.Config.Files == nil {
		return
	}
	ds := dsOfPath(req.Config.Files.VmPathName)
	pool, ok := simulator.Map.Get(req.Pool).(mo.Entity)
	if ds == nil || !ok {
		return
	}
	cr := computeResourceOf(pool)
	if cr == nil {
		return
	}
	var refs []types.ManagedObjectReference
	simulator.Map.WithLock(cr, func() { refs = append(refs, hostsOf(cr)...) })
	var fit []types.ManagedObjectReference
	for _, ref := range refs {
		if h, ok := simulator.Map.Get(ref).(*simulator.HostSystem); ok && mounts(h, ds) {
			fit = append(fit, ref)
		}
	}
	if len(fit) > 0 {
		host := fit[rand.Intn(len(fit))]
		req.Host = &host
	}
}

// normalizeDisks fills both capacity fields of new disks (vcsim keeps whichever was sent), and existing
// disks added as their files say; it returns the latter (vcsim charges their capacity: giveBack).
func normalizeDisks(spec *types.VirtualMachineConfigSpec) []diskEdit {
	var attached []diskEdit
	for _, c := range spec.DeviceChange {
		s := c.GetVirtualDeviceConfigSpec()
		if d, ok := s.Device.(*types.VirtualDisk); ok && s.Operation == types.VirtualDeviceConfigSpecOperationAdd {
			if s.FileOperation == "" {
				attachFromFile(d) // an existing disk: as its file says
				attached = append(attached, diskEdit{disk: d, attach: true})
			}
			if capacity := diskCapacity(d); capacity > 0 {
				setCapacity(d, capacity)
			}
		}
	}
	return attached
}

func hasSnapshots(vm *simulator.VirtualMachine) bool {
	return vm.Snapshot != nil && len(vm.Snapshot.RootSnapshotList) > 0
}

func findDisk(vm *simulator.VirtualMachine, key int32) *types.VirtualDisk {
	for _, d := range vmDisks(vm) {
		if d.Key == key {
			return d
		}
	}
	return nil
}

// requestedCapacity: the size an edit asks for. Clients copy the device and change one of the two
// fields; the one that differs from the current disk wins (bytes first).
func requestedCapacity(cur, edit *types.VirtualDisk) int64 {
	old := diskCapacity(cur)
	if edit.CapacityInBytes > 0 && edit.CapacityInBytes != old {
		return edit.CapacityInBytes
	}
	if edit.CapacityInKB > 0 && edit.CapacityInKB*1024 != old {
		return edit.CapacityInKB * 1024
	}
	return old
}

func badDiskOp(index int, why string) *types.InvalidDeviceOperation {
	f := &types.InvalidDeviceOperation{
		InvalidDeviceSpec: types.InvalidDeviceSpec{
			InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device"},
			DeviceIndex:     int32(index),
		},
		BadOp: types.VirtualDeviceConfigSpecOperationEdit,
	}
	// vSphere's task error reads "Invalid operation for device 'N'." (a shrink: no fault message, as
	// cluster-api-provider-vsphere #1030 shows vCenter's answer); growing a disk with a parent adds the
	// reason, "Invalid operation for device '0'. Disks with parents cannot be expanded." (CAPV #1189). The
	// message key is ours.
	if why != "" {
		f.FaultMessage = []types.LocalizableMessage{{Key: "vmdk.vcsim.disk." + strings.ReplaceAll(why, " ", "_"),
			Message: fmt.Sprintf("Invalid operation for device '%d'. %s", index, why)}}
	}
	return f
}

// checkDiskEdits applies vSphere's rules to disk edits: a disk never shrinks, and a disk with a
// parent (a linked clone's child, or any disk of a VM with snapshots, which runs on a delta disk)
// cannot grow. It normalises the capacity fields of edits it accepts.
func checkDiskEdits(vm *simulator.VirtualMachine, spec *types.VirtualMachineConfigSpec) (types.BaseMethodFault, []diskEdit) {
	var edits []diskEdit
	for i, c := range spec.DeviceChange {
		s := c.GetVirtualDeviceConfigSpec()
		d, ok := s.Device.(*types.VirtualDisk)
		if !ok {
			continue
		}
		switch s.Operation {
		case types.VirtualDeviceConfigSpecOperationAdd:
			if s.FileOperation == "" {
				attachFromFile(d) // an existing disk: as its file says, whatever capacity was sent
			}
			if capacity := diskCapacity(d); capacity > 0 {
				setCapacity(d, capacity)
			}
			if s.FileOperation == "" {
				edits = append(edits, diskEdit{disk: d, attach: true})
			}
		case types.VirtualDeviceConfigSpecOperationEdit:
			cur := findDisk(vm, d.Key)
			if cur == nil {
				continue // vcsim answers InvalidDeviceSpec
			}
			want, have := requestedCapacity(cur, d), diskCapacity(cur)
			if want < have {
				return badDiskOp(i, ""), nil
			}
			if want > have {
				if b := flatBacking(cur); b != nil && b.Parent != nil {
					return badDiskOp(i, "Disks with parents cannot be expanded."), nil
				}
				if hasSnapshots(vm) {
					return badDiskOp(i, "Disks with parents cannot be expanded."), nil // the VM runs on delta disks
				}
			}
			setCapacity(d, want)
			if d.DeviceInfo == nil {
				d.DeviceInfo = &types.Description{}
			}
			if s.FileOperation == "" {
				edits = append(edits, diskEdit{disk: d, old: cur, oldCapacity: have})
			}
		}
	}
	return nil, edits
}

type diskEdit struct {
	disk        *types.VirtualDisk
	old         *types.VirtualDisk
	oldCapacity int64
	attach      bool
}

// giveBack corrects vcsim's free space accounting after a reconfigure: it charges a disk's whole
// capacity to its datastore on every edit or attach; vSphere charges only the growth (nothing for
// attaching an existing disk).
func giveBack(edits []diskEdit) {
	for _, e := range edits {
		b := flatBacking(e.disk)
		if b == nil {
			continue
		}
		_, ds, f := localPath(b.FileName)
		if f != nil {
			continue
		}
		refund := diskCapacity(e.disk)
		if !e.attach {
			if ob := flatBacking(e.old); ob == nil || ob.FileName == b.FileName {
				refund = e.oldCapacity
			}
		}
		simulator.Map.WithLock(ds, func() {
			ds.Summary.FreeSpace += refund
			ds.Info.GetDatastoreInfo().FreeSpace = ds.Summary.FreeSpace
		})
	}
}

// extraConfigEdits splits spec.ExtraConfig: keys the VM already has are updated in place (an empty
// value removes the key), as vSphere does; new keys (and vcsim's "SET." keys) go to vcsim.
func extraConfigEdits(vm *simulator.VirtualMachine, spec *types.VirtualMachineConfigSpec) func() {
	var pass, later []types.BaseOptionValue
	for _, o := range spec.ExtraConfig {
		ov := o.GetOptionValue()
		if strings.HasPrefix(ov.Key, "SET.") || ov.Key == "ip0" {
			pass = append(pass, o)
			continue
		}
		if indexOption(vm.Config.ExtraConfig, ov.Key) >= 0 || isEmptyOption(ov) {
			later = append(later, o)
			continue
		}
		pass = append(pass, o)
	}
	spec.ExtraConfig = pass
	return func() {
		for _, o := range later {
			ov := o.GetOptionValue()
			list := vm.Config.ExtraConfig
			i := indexOption(list, ov.Key)
			switch {
			case isEmptyOption(ov) && i >= 0:
				vm.Config.ExtraConfig = append(list[:i:i], list[i+1:]...)
			case i >= 0:
				list[i] = &types.OptionValue{Key: ov.Key, Value: ov.Value}
			case !isEmptyOption(ov):
				vm.Config.ExtraConfig = append(list, &types.OptionValue{Key: ov.Key, Value: ov.Value})
			}
		}
	}
}

func indexOption(list []types.BaseOptionValue, key string) int {
	for i, o := range list {
		if o.GetOptionValue().Key == key {
			return i
		}
	}
	return -1
}

func isEmptyOption(ov *types.OptionValue) bool {
	if ov.Value == nil {
		return true
	}
	s, ok := ov.Value.(string)
	return ok && s == ""
}

func reconfigVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ReconfigVM_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if vm.Config.Template {
		return vm.ReconfigVMTask(ctx, req) // vcsim refuses all but name/annotation, as vSphere
	}
	if f, _ := checkDiskEdits(vm, &req.Spec); f != nil {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{
			Returnval: runTask(vm, "reconfigVm", func() (types.AnyType, types.BaseMethodFault) { return nil, f })}}
	}
	_, edits := checkDiskEdits(vm, &req.Spec)
	applyExtra := extraConfigEdits(vm, &req.Spec)
	res := vm.ReconfigVMTask(ctx, req)
	if _, ok := taskResult(res); ok {
		applyExtra()
		giveBack(edits)
		syncDisks(vm)
	}
	return res
}

// createVMIn is Folder.CreateVMTask after placeNewVM, removing the folders it made if CreateVM fails.
func createVMIn(ctx *simulator.Context, folder *simulator.Folder, req *types.CreateVM_Task) soap.HasFault {
	made := placeNewVM(&req.Config)
	res := folder.CreateVMTask(ctx, req)
	if _, ok := taskResult(res); !ok {
		for _, dir := range made {
			_ = os.Remove(dir) // only if still empty
		}
	}
	return res
}

// placeNewVM names a new VM's folder and disk files as vCenter does, before vcsim creates them: the
// folder is the VM's name, or name_1, name_2... when that is taken on the datastore, and new disks
// (fileName "" or "[ds]") are dir/name.vmdk, name_1.vmdk... in that folder on their datastore.
// (vcsim names a taken folder "name (0)" but still puts the disks in "name/", another VM's folder.)
// It returns the folders it created for disks on other datastores.
func placeNewVM(config *types.VirtualMachineConfigSpec) []string {
	var p object.DatastorePath
	if config.Files == nil || !p.FromString(config.Files.VmPathName) || config.Name == "" {
		return nil
	}
	dir := path.Dir(p.Path)
	if path.Ext(p.Path) != ".vmx" {
		ds := datastoreByName(p.Datastore)
		if ds == nil {
			return nil
		}
		base := p.Path
		if base == "" {
			base = config.Name
		}
		dir = freeName(func(n string) bool { return fileExists(filepath.Join(dsURL(ds), n)) }, base, "")
		config.Files.VmPathName = dsPath(p.Datastore, path.Join(dir, config.Name+".vmx"))
	}
	var made []string
	taken := map[string]bool{}
	for _, c := range config.DeviceChange {
		s := c.GetVirtualDeviceConfigSpec()
		d, ok := s.Device.(*types.VirtualDisk)
		if !ok || s.Operation != types.VirtualDeviceConfigSpecOperationAdd ||
			s.FileOperation != types.VirtualDeviceConfigSpecFileOperationCreate {
			continue
		}
		b := flatBacking(d)
		if b == nil {
			continue
		}
		var dp object.DatastorePath
		if !dp.FromString(b.FileName) {
			dp.Datastore = p.Datastore
		}
		if dp.Path != "" {
			continue
		}
		ds := datastoreByName(dp.Datastore)
		if ds == nil {
			continue
		}
		local := filepath.Join(dsURL(ds), dir)
		name := freeName(func(n string) bool {
			return taken[dp.Datastore+"/"+n] || fileExists(filepath.Join(local, n)) || fileExists(filepath.Join(local, flatName(n)))
		}, config.Name, ".vmdk")
		taken[dp.Datastore+"/"+name] = true
		b.FileName = dsPath(dp.Datastore, path.Join(dir, name))
		if dp.Datastore != p.Datastore && !fileExists(local) {
			if os.MkdirAll(local, 0o700) == nil {
				made = append(made, local)
			}
		}
	}
	return made
}

// freeName: base+ext, base_1+ext, base_2+ext... the first one not taken.
func freeName(taken func(string) bool, base, ext string) string {
	for i := 0; ; i++ {
		n := base + ext
		if i > 0 {
			n = fmt.Sprintf("%s_%d%s", base, i, ext)
		}
		if !taken(n) {
			return n
		}
	}
}

// renameSnapshot: vSphere's RenameSnapshot (absent in vcsim 0.24.2). An unset name or description
// is left as it is.
func renameSnapshot(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RenameSnapshot)
	body := new(methods.RenameSnapshotBody)
	snap, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachineSnapshot)
	if !ok {
		body.Fault_ = fault("", &types.ManagedObjectNotFound{Obj: req.This})
		return body
	}
	vm, ok := simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine)
	if !ok {
		body.Fault_ = fault("", &types.ManagedObjectNotFound{Obj: snap.Vm})
		return body
	}
	found := false
	simulator.Map.WithLock(vm, func() {
		if vm.Snapshot == nil {
			return
		}
		var walk func(tree []types.VirtualMachineSnapshotTree)
		walk = func(tree []types.VirtualMachineSnapshotTree) {
			for i := range tree {
				if tree[i].Snapshot == req.This {
					if req.Name != "" {
						tree[i].Name = req.Name
					}
					if req.Description != "" {
						tree[i].Description = req.Description
					}
					found = true
				}
				walk(tree[i].ChildSnapshotList)
			}
		}
		walk(vm.Snapshot.RootSnapshotList)
		if found {
			simulator.Map.Update(vm, []types.PropertyChange{{Name: "snapshot.rootSnapshotList", Val: vm.Snapshot.RootSnapshotList}})
		}
	})
	if !found {
		body.Fault_ = fault("", &types.ManagedObjectNotFound{Obj: req.This})
		return body
	}
	body.Res = new(types.RenameSnapshotResponse)
	return body
}
