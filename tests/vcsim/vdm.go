package main

// VirtualDiskManager over the disk file layout of disks.go. vcsim 0.24.2 creates empty files, copies
// and moves "x.vmdk"/"x-flat.vmdk" pairs byte for byte, has no ExtendVirtualDisk_Task, answers a
// uuid made from the path and ignores SetVirtualDiskUuid.
//
// What vCenter refuses, this refuses as stock vcsim does in vCenter mode: a datastore path without its
// datacenter (InvalidArgument "dc": "If not specified on a call to VirtualCenter, name must be a URL"),
// and CopyVirtualDisk's destSpec (NotImplemented). An ESX model (-esx) takes both: "Not needed when
// invoked directly on ESX", and the copy is made in the spec's disk type and adapter. Without a destSpec,
// "a preallocated format and busLogic adapter type is assumed" (vSphere API reference). CopyVirtualDisk
// ignores force: "The FileAlreadyExists fault is thrown if the destination file already exists."

import (
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type diskManager struct {
	simulator.VirtualDiskManager
}

// installDiskManager replaces vcsim's VirtualDiskManager object (vcsim itself calls it through the
// registry when a VM's disks are destroyed).
func installDiskManager() {
	old := simulator.Map.VirtualDiskManager().(*simulator.VirtualDiskManager)
	simulator.Map.Put(&diskManager{*old})
}

// diskPath is localPath for a VirtualDiskManager call: on vCenter a datastore path needs its datacenter
// (vcsim's FileManager.resolve answers InvalidArgument "dc" likewise), on an ESX host it does not.
func diskPath(name string, dc *types.ManagedObjectReference) (string, *simulator.Datastore, types.BaseMethodFault) {
	if dc == nil && !esxMode {
		return "", nil, &types.InvalidArgument{InvalidProperty: "dc"}
	}
	return localPath(name)
}

// vdmTask runs fn as a disk manager task (no entity: the manager is none, see taskEntities).
func (m *diskManager) vdmTask(name string, dc *types.ManagedObjectReference, fn func() (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	return runTask(m, name, fn)
}

// VirtualDiskType values that make a VMFS disk of ours (descriptor + "-flat.vmdk" extent); only thin is
// visible in the descriptor (ddb.thinProvisioned), eager zeroing lives in VMFS metadata. The other types
// (hosted sparse2Gb/thick2Gb/flatMonolithic/sparseMonolithic and delta, "only applicable as a destination
// format in a clone operation, and not usable for disk creation"; rdm, rdmp, raw, seSparse) are not
// modelled: CreateVirtualDisk refuses the clone-only ones as the API reference says, and both refuse the
// rest as not implemented here rather than make a disk of another kind.
var vmfsDiskTypes = map[string]bool{"": true, "thin": true, "preallocated": true, "thick": true, "eagerZeroedThick": true}
var cloneOnlyDiskTypes = map[string]bool{"sparse2Gb": true, "thick2Gb": true, "flatMonolithic": true,
	"sparseMonolithic": true, "delta": true}

// unmodelledDiskType is the fault for a disk type we do not make (nil for the VMFS types).
func unmodelledDiskType(spec types.BaseVirtualDiskSpec, create bool) types.BaseMethodFault {
	if spec == nil {
		return nil
	}
	t := spec.GetVirtualDiskSpec().DiskType
	switch {
	case vmfsDiskTypes[t]:
		return nil
	case create && cloneOnlyDiskTypes[t]:
		return &types.InvalidArgument{InvalidProperty: "spec.diskType"}
	}
	f := new(types.NotImplemented)
	f.FaultMessage = []types.LocalizableMessage{{Key: "vmdk.vcsim.diskType",
		Message: "disk type " + t + " is not modelled by the simulator"}}
	return f
}

func diskSpecOf(spec types.BaseVirtualDiskSpec) (capacity int64, adapter string, thin bool, ok bool) {
	adapter = "lsilogic"
	if spec == nil {
		return 0, adapter, false, false
	}
	s := spec.GetVirtualDiskSpec()
	switch strings.ToLower(s.AdapterType) {
	case "buslogic":
		adapter = "buslogic"
	case "ide":
		adapter = "ide"
	case "paravirtual", "pvscsi":
		adapter = "pvscsi"
	}
	thin = s.DiskType == string(types.VirtualDiskTypeThin)
	if fb, isFile := spec.(*types.FileBackedVirtualDiskSpec); isFile {
		capacity = fb.CapacityKb * 1024
	}
	return capacity, adapter, thin, true
}

// writeDisk makes desc (a descriptor) and its flat extent of capacity bytes; the extent's data, if
// any, is already in place.
func writeDisk(desc string, capacity int64, adapter string, thin bool) error {
	if err := growFile(flatName(desc), capacity); err != nil {
		return err
	}
	return writeFileAtomic(desc, newDescriptor(desc, capacity, adapter, thin).render())
}

func (m *diskManager) CreateVirtualDiskTask(ctx *simulator.Context, req *types.CreateVirtualDisk_Task) soap.HasFault {
	ref := m.vdmTask("createVirtualDisk", req.Datacenter, func() (types.AnyType, types.BaseMethodFault) {
		desc, _, f := diskPath(req.Name, req.Datacenter)
		if f != nil {
			return nil, f
		}
		if fileExists(desc) || fileExists(flatName(desc)) {
			return nil, &types.FileAlreadyExists{FileFault: types.FileFault{File: req.Name}}
		}
		if !fileExists(filepath.Dir(desc)) {
			return nil, &types.FileNotFound{FileFault: types.FileFault{File: req.Name}}
		}
		if f := unmodelledDiskType(req.Spec, true); f != nil {
			return nil, f
		}
		capacity, adapter, thin, _ := diskSpecOf(req.Spec)
		if err := writeDisk(desc, capacity, adapter, thin); err != nil {
			return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: req.Name}}
		}
		_, ds, _ := localPath(req.Name)
		adjustFree(ds, -capacity) // as vcsim charges a disk a VM creates
		return req.Name, nil
	})
	return &methods.CreateVirtualDisk_TaskBody{Res: &types.CreateVirtualDisk_TaskResponse{Returnval: ref}}
}

// diskFileSet is the files of a disk: its descriptor and the extent it names (or "-flat"), or a
// single hosted sparse file.
func diskFileSet(desc string) []string {
	files := []string{desc}
	if d := readDescriptor(desc); d != nil && d.extent != "" {
		files = append(files, filepath.Join(filepath.Dir(desc), d.extent))
	} else if fileExists(flatName(desc)) {
		files = append(files, flatName(desc))
	}
	return files
}

func (m *diskManager) DeleteVirtualDiskTask(ctx *simulator.Context, req *types.DeleteVirtualDisk_Task) soap.HasFault {
	ref := m.vdmTask("deleteVirtualDisk", req.Datacenter, func() (types.AnyType, types.BaseMethodFault) {
		desc, _, f := diskPath(req.Name, req.Datacenter)
		if f != nil {
			return nil, f
		}
		if !fileExists(desc) {
			return nil, &types.FileNotFound{FileFault: types.FileFault{File: req.Name}}
		}
		if ctx.Caller != nil { // a client's call; vcsim's own (destroying a VM's disk) already credited it
			_, ds, _ := localPath(req.Name)
			defer adjustFree(ds, diskBytes(desc))
		}
		for _, file := range diskFileSet(desc) {
			if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
				return nil, &types.CannotDeleteFile{FileFault: types.FileFault{File: req.Name}}
			}
		}
		return nil, nil
	})
	return &methods.DeleteVirtualDisk_TaskBody{Res: &types.DeleteVirtualDisk_TaskResponse{Returnval: ref}}
}

// relocateDisk moves or copies a disk (descriptor + extent) to dest; the new descriptor names the
// new extent. Hosted sparse sources are converted to descriptor + flat (qemu-img).
func relocateDisk(srcName, destName string, force, keep bool, spec types.BaseVirtualDiskSpec) types.BaseMethodFault {
	src, _, f := localPath(srcName)
	if f != nil {
		return f
	}
	dst, _, f := localPath(destName)
	if f != nil {
		return f
	}
	if !fileExists(src) {
		return &types.FileNotFound{FileFault: types.FileFault{File: srcName}}
	}
	if !force && (fileExists(dst) || fileExists(flatName(dst))) {
		return &types.FileAlreadyExists{FileFault: types.FileFault{File: destName}}
	}
	if !fileExists(filepath.Dir(dst)) {
		return &types.FileNotFound{FileFault: types.FileFault{File: destName}}
	}
	cur := readDescriptor(src)
	adapter, thin := "lsilogic", false
	if cur != nil && cur.adapter != "" { // a delta's descriptor names no adapter
		adapter, thin = cur.adapter, cur.thin
	}
	if _, a, t, ok := diskSpecOf(spec); ok {
		adapter, thin = a, t
	}
	cannot := &types.CannotCreateFile{FileFault: types.FileFault{File: destName}}
	switch {
	case cur == nil && isHostedVMDK(src):
		if err := qemuImg("convert", "-f", "vmdk", "-O", "raw", src, flatName(dst)); err != nil {
			return cannot
		}
		if !keep {
			_ = os.Remove(src)
		}
	case cur != nil:
		extent := filepath.Join(filepath.Dir(src), cur.extent)
		var err error
		if keep {
			err = copySparse(extent, flatName(dst), cur.sectors*sectorSize)
		} else {
			err = moveFile(extent, flatName(dst))
		}
		if err != nil {
			return cannot
		}
		if !keep {
			_ = os.Remove(src)
		}
	default: // an empty or unknown descriptor: vcsim's own pairs of empty files
		if fileExists(flatName(src)) {
			var err error
			if keep {
				err = copySparse(flatName(src), flatName(dst), -1)
			} else {
				err = moveFile(flatName(src), flatName(dst))
			}
			if err != nil {
				return cannot
			}
		} else if err := growFile(flatName(dst), 0); err != nil {
			return cannot
		}
		if !keep {
			_ = os.Remove(src)
		}
	}
	st, err := os.Stat(flatName(dst))
	if err != nil {
		return cannot
	}
	next := newDescriptor(dst, st.Size(), adapter, thin)
	if cur != nil && !(keep && cur.isDelta()) { // a copy of a snapshot's delta stands alone: its extent holds all
		next.parentHint, next.parentCID = cur.parentHint, cur.parentCID
		if !keep { // a move keeps the disk's identity
			next.uuid, next.cid, next.longContentID = cur.uuid, cur.cid, cur.longContentID
		}
		if cur.sectors*sectorSize > st.Size() {
			_ = growFile(flatName(dst), cur.sectors*sectorSize)
			next.sectors = cur.sectors
		}
	}
	if err := writeFileAtomic(dst, next.render()); err != nil {
		return cannot
	}
	// Free space: a copy is charged to its datastore; a move takes its charge along.
	_, srcDS, _ := localPath(srcName)
	_, dstDS, _ := localPath(destName)
	size := next.sectors * sectorSize
	if keep {
		adjustFree(dstDS, -size)
	} else if srcDS != dstDS {
		adjustFree(srcDS, size)
		adjustFree(dstDS, -size)
	}
	return nil
}

// diskBytes is a disk's capacity, from its descriptor (or its flat file).
func diskBytes(desc string) int64 {
	if d := readDescriptor(desc); d != nil && d.sectors > 0 {
		return d.sectors * sectorSize
	}
	if st, err := os.Stat(flatName(desc)); err == nil {
		return st.Size()
	}
	return 0
}

func (m *diskManager) MoveVirtualDiskTask(ctx *simulator.Context, req *types.MoveVirtualDisk_Task) soap.HasFault {
	ref := m.vdmTask("moveVirtualDisk", req.SourceDatacenter, func() (types.AnyType, types.BaseMethodFault) {
		if _, _, f := diskPath(req.SourceName, req.SourceDatacenter); f != nil {
			return nil, f
		}
		// "If not specified on a call to VirtualCenter, it is assumed that the destination path belongs
		// to the source datacenter."
		return nil, relocateDisk(req.SourceName, req.DestName, boolOf(req.Force), false, nil)
	})
	return &methods.MoveVirtualDisk_TaskBody{Res: &types.MoveVirtualDisk_TaskResponse{Returnval: ref}}
}

func (m *diskManager) CopyVirtualDiskTask(ctx *simulator.Context, req *types.CopyVirtualDisk_Task) soap.HasFault {
	ref := m.vdmTask("copyVirtualDisk", req.SourceDatacenter, func() (types.AnyType, types.BaseMethodFault) {
		if req.DestSpec != nil && !esxMode {
			return nil, new(types.NotImplemented) // as stock vcsim in vCenter mode: vCenter does not implement it
		}
		if _, _, f := diskPath(req.SourceName, req.SourceDatacenter); f != nil {
			return nil, f
		}
		if f := unmodelledDiskType(req.DestSpec, false); f != nil {
			return nil, f
		}
		spec := req.DestSpec
		if spec == nil {
			// "If not specified, a preallocated format and busLogic adapter type is assumed."
			spec = &types.VirtualDiskSpec{DiskType: string(types.VirtualDiskTypePreallocated),
				AdapterType: string(types.VirtualDiskAdapterTypeBusLogic)}
		}
		// "The force flag is currently ignored. The FileAlreadyExists fault is thrown if the destination
		// file already exists."
		return nil, relocateDisk(req.SourceName, req.DestName, false, true, spec)
	})
	return &methods.CopyVirtualDisk_TaskBody{Res: &types.CopyVirtualDisk_TaskResponse{Returnval: ref}}
}

// forDisksOf calls fn for every VM disk backed by the datastore file name.
func forDisksOf(name string, fn func(vm *simulator.VirtualMachine, d *types.VirtualDisk)) {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		for _, d := range vmDisks(vm) {
			if flatBacking(d).FileName == name {
				fn(vm, d)
			}
		}
	}
}

func (m *diskManager) ExtendVirtualDiskTask(ctx *simulator.Context, req *types.ExtendVirtualDisk_Task) soap.HasFault {
	ref := m.vdmTask("extendVirtualDisk", req.Datacenter, func() (types.AnyType, types.BaseMethodFault) {
		desc, ds, f := diskPath(req.Name, req.Datacenter)
		if f != nil {
			return nil, f
		}
		cur := readDescriptor(desc)
		if cur == nil {
			return nil, &types.FileNotFound{FileFault: types.FileFault{File: req.Name}}
		}
		if cur.parentHint != "" {
			// what ESXi's DiskLib answers for a child disk (kubernetes-sigs/vsphere-csi-driver #2311)
			var p object.DatastorePath
			p.FromString(req.Name)
			return nil, &types.SystemError{Reason: "The called function cannot be performed on partial chains. " +
				"Open the parent virtual disk: api = DiskLib_Grow, diskPath->CValue() = /vmfs/volumes/" +
				p.Datastore + "/" + p.Path}
		}
		want, have := req.NewCapacityKb*1024, cur.sectors*sectorSize
		if want < have {
			return nil, &types.InvalidArgument{InvalidProperty: "newCapacityKb"}
		}
		if err := growFile(filepath.Join(filepath.Dir(desc), cur.extent), want); err != nil {
			return nil, &types.CannotAccessFile{FileFault: types.FileFault{File: req.Name}}
		}
		cur.sectors = (want + sectorSize - 1) / sectorSize
		if err := writeFileAtomic(desc, cur.render()); err != nil {
			return nil, &types.CannotAccessFile{FileFault: types.FileFault{File: req.Name}}
		}
		if !cur.thin {
			adjustFree(ds, have-want)
		}
		forDisksOf(req.Name, func(vm *simulator.VirtualMachine, d *types.VirtualDisk) { setCapacity(d, want) })
		return nil, nil
	})
	return &methods.ExtendVirtualDisk_TaskBody{Res: &types.ExtendVirtualDisk_TaskResponse{Returnval: ref}}
}

func (m *diskManager) QueryVirtualDiskUuid(ctx *simulator.Context, req *types.QueryVirtualDiskUuid) soap.HasFault {
	body := new(methods.QueryVirtualDiskUuidBody)
	desc, _, f := diskPath(req.Name, req.Datacenter)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	d := readDescriptor(desc)
	if d == nil || d.uuid == "" {
		if !fileExists(desc) {
			body.Fault_ = fault("File "+req.Name+" was not found",
				&types.FileNotFound{FileFault: types.FileFault{File: req.Name}})
			return body
		}
		return m.VirtualDiskManager.QueryVirtualDiskUuid(ctx, req)
	}
	body.Res = &types.QueryVirtualDiskUuidResponse{Returnval: d.uuid}
	return body
}

func (m *diskManager) SetVirtualDiskUuid(ctx *simulator.Context, req *types.SetVirtualDiskUuid) soap.HasFault {
	body := new(methods.SetVirtualDiskUuidBody)
	desc, _, f := diskPath(req.Name, req.Datacenter)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	u := ddbUUID(req.Uuid)
	if u == "" {
		body.Fault_ = fault("", &types.InvalidArgument{InvalidProperty: "uuid"})
		return body
	}
	d := readDescriptor(desc)
	if d == nil {
		body.Fault_ = fault("File "+req.Name+" was not found", &types.FileNotFound{FileFault: types.FileFault{File: req.Name}})
		return body
	}
	d.uuid = u
	if err := ioutil.WriteFile(desc, d.render(), 0o600); err != nil {
		body.Fault_ = fault("", &types.CannotAccessFile{FileFault: types.FileFault{File: req.Name}})
		return body
	}
	forDisksOf(req.Name, func(vm *simulator.VirtualMachine, disk *types.VirtualDisk) { flatBacking(disk).Uuid = backingUUID(u) })
	body.Res = new(types.SetVirtualDiskUuidResponse)
	return body
}
