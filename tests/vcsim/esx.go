package main

// -esx: a standalone ESXi host. govmomi's ESX model (simulator.ESX(): datacenter ha-datacenter, one host,
// about.apiType HostAgent, vcsim's LocalDS_0) with two VMFS datastores of ours on the host and our fidelity
// layer, less what a host agent does not do (evidence in FIDELITY.md, section "ESX mode"):
//
//   - CloneVM_Task and RelocateVM_Task: the task fails with NotSupported ("The operation is not supported
//     on the object."); vcsim's ESX model clones and relocates.
//   - MarkAsTemplate / MarkAsVirtualMachine: NotSupported (templates are a vCenter feature); vcsim's ESX
//     model marks.
//   - no PBM endpoint and no StoragePod, no folders below the root folders: vcsim's ESX model already
//     refuses these (the pbm simulator registers on VPX only; the ESX datacenter's folders have one child
//     type each, so CreateFolder / CreateStoragePod answer NotSupported "... supports types: ...").
//
// What the host does do goes through the fidelity layer as on vCenter (CreateVM, ReconfigVM, snapshots,
// ImportVApp/ExportVm, the VirtualDiskManager, where CopyVirtualDisk takes a destSpec and datastore paths
// need no datacenter).

import (
	"fmt"
	"io/ioutil"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// esxMode: the model is a standalone host (-esx); set before the model is created.
var esxMode bool

// esxModel is govmomi's ESX model with 1 VM (as our vCenter model has 1 VM per pool).
func esxModel() *simulator.Model {
	model := simulator.ESX()
	model.Datastore = 1
	model.Machine = 1
	return model
}

// esxHost is the one HostSystem of the ESX model.
func esxHost() *simulator.HostSystem {
	for _, e := range simulator.Map.All("HostSystem") {
		return e.(*simulator.HostSystem)
	}
	return nil
}

// addESXDatastores adds datastore1 and datastore2 (VMFS, local to the host, as an installer names
// them); it returns their folders (removed at exit).
func addESXDatastores() ([]string, error) {
	h := esxHost()
	if h == nil {
		return nil, fmt.Errorf("no host in the ESX model")
	}
	normal := string(types.DatastoreSummaryMaintenanceModeStateNormal)
	specs := []dsSpec{
		{"datastore1", []string{h.Name}, 1 * tib, 800 * gib, true, normal},
		{"datastore2", []string{h.Name}, 500 * gib, 200 * gib, true, normal},
	}
	pruneDatacenterDatastores()
	var dirs []string
	for _, s := range specs {
		dir, err := ioutil.TempDir("", "vmdk-vcsim-"+s.name+"-")
		if err != nil {
			return dirs, err
		}
		dirs = append(dirs, dir)
		if err := addDatastore(s, dir); err != nil {
			return dirs, fmt.Errorf("datastore %s: %v", s.name, err)
		}
	}
	return dirs, nil
}

// pruneDatacenterDatastores drops what vcsim's ESX datacenter template lists in its datastore property but
// never creates ("57089c25-85e3ccd4-17b6-000c29d0beb3", captured from a real host): a client reading
// datacenter.datastore would get ManagedObjectNotFound for it. Datacenter.datastore is "a collection of
// references to the datastore objects available in this datacenter" (vSphere API reference).
func pruneDatacenterDatastores() {
	for _, e := range simulator.Map.All("Datacenter") {
		dc := e.(*simulator.Datacenter)
		var keep []types.ManagedObjectReference
		for _, r := range dc.Datastore {
			if simulator.Map.Get(r) != nil {
				keep = append(keep, r)
			}
		}
		dc.Datastore = keep
	}
}

// notSupported is a host agent's answer to a vCenter-only method.
func notSupported() *types.NotSupported {
	return &types.NotSupported{}
}

// esxCloneVM: CloneVM_Task on a host agent answers a task that fails with NotSupported.
func esxCloneVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CloneVM_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	ref := runTask(vm, "cloneVm", func() (types.AnyType, types.BaseMethodFault) { return nil, notSupported() })
	return &methods.CloneVM_TaskBody{Res: &types.CloneVM_TaskResponse{Returnval: ref}}
}

// esxRelocateVM: RelocateVM_Task on a host agent answers a task that fails with NotSupported.
func esxRelocateVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RelocateVM_Task)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	ref := runTask(vm, "relocateVm", func() (types.AnyType, types.BaseMethodFault) { return nil, notSupported() })
	return &methods.RelocateVM_TaskBody{Res: &types.RelocateVM_TaskResponse{Returnval: ref}}
}

// esxMarkAsTemplate / esxMarkAsVirtualMachine: templates are a vCenter feature.
func esxMarkAsTemplate(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	return &methods.MarkAsTemplateBody{Fault_: fault(faultMessage(notSupported()), notSupported())}
}

func esxMarkAsVirtualMachine(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	return &methods.MarkAsVirtualMachineBody{Fault_: fault(faultMessage(notSupported()), notSupported())}
}
