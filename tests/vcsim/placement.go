package main

// Host, pool and datastore bookkeeping shared by clone and relocate.

import (
	"reflect"
	"unsafe"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func computeResourceOf(e mo.Entity) mo.Entity {
	for e != nil {
		switch e.Reference().Type {
		case "ComputeResource", "ClusterComputeResource":
			return e
		}
		p := e.Entity().Parent
		if p == nil {
			return nil
		}
		e, _ = simulator.Map.Get(*p).(mo.Entity)
	}
	return nil
}

func hostsOf(cr mo.Entity) []types.ManagedObjectReference {
	switch x := cr.(type) {
	case *mo.ComputeResource:
		return x.Host
	case *simulator.ClusterComputeResource:
		return x.Host
	}
	return nil
}

func mounts(h *simulator.HostSystem, ds *simulator.Datastore) bool {
	for _, r := range h.Datastore {
		if r == ds.Self {
			return true
		}
	}
	return false
}

func notWritable(h *simulator.HostSystem, ds *simulator.Datastore) types.BaseMethodFault {
	return &types.DatastoreNotWritableOnHost{
		InvalidDatastore: types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name},
		Host:             h.Self,
	}
}

// pickHost chooses the host a VM runs on, as RelocateSpec.host says: the one asked for (which must mount
// every datastore needed); without one and without a pool in the spec (poolGiven false), the current host
// ("if resource pool is not specified, current host is used"), which must mount them; with a pool, the
// current host if it is in the pool's compute resource and mounts them, else another host of it that
// does ("a host selected by DRS"; vcsim's clusters have DRS enabled).
func pickHost(asked *types.ManagedObjectReference, pool mo.Entity, poolGiven bool, current *types.ManagedObjectReference,
	need []*simulator.Datastore) (*simulator.HostSystem, types.BaseMethodFault) {
	fits := func(h *simulator.HostSystem) *simulator.Datastore {
		for _, ds := range need {
			if !mounts(h, ds) {
				return ds
			}
		}
		return nil
	}
	if asked != nil {
		h, ok := simulator.Map.Get(*asked).(*simulator.HostSystem)
		if !ok {
			return nil, &types.ManagedObjectNotFound{Obj: *asked}
		}
		if ds := fits(h); ds != nil {
			return nil, notWritable(h, ds)
		}
		return h, nil
	}
	if !poolGiven && current != nil {
		h, ok := simulator.Map.Get(*current).(*simulator.HostSystem)
		if !ok {
			return nil, &types.ManagedObjectNotFound{Obj: *current}
		}
		if ds := fits(h); ds != nil {
			return nil, notWritable(h, ds)
		}
		return h, nil
	}
	var candidates []types.ManagedObjectReference
	if pool != nil {
		if cr := computeResourceOf(pool); cr != nil {
			candidates = hostsOf(cr)
		}
	}
	if current != nil {
		if h, ok := simulator.Map.Get(*current).(*simulator.HostSystem); ok && fits(h) == nil {
			for _, c := range candidates {
				if c == h.Self {
					return h, nil
				}
			}
			if len(candidates) == 0 {
				return h, nil
			}
		}
	}
	var first *simulator.HostSystem
	for _, ref := range candidates {
		h, ok := simulator.Map.Get(ref).(*simulator.HostSystem)
		if !ok {
			continue
		}
		if first == nil {
			first = h
		}
		if fits(h) == nil {
			return h, nil
		}
	}
	if first == nil && current != nil {
		first, _ = simulator.Map.Get(*current).(*simulator.HostSystem)
	}
	if first == nil {
		return nil, &types.InvalidArgument{InvalidProperty: "host"}
	}
	return nil, notWritable(first, fits(first))
}

// poolVMs is the Vm list of a resource pool or vApp.
func poolVMs(pool mo.Reference) (*[]types.ManagedObjectReference, mo.Reference) {
	switch p := pool.(type) {
	case *simulator.ResourcePool:
		return &p.Vm, p
	case *simulator.VirtualApp:
		return &p.Vm, p
	}
	return nil, nil
}

func addRef(obj mo.Reference, list *[]types.ManagedObjectReference, ref types.ManagedObjectReference) {
	simulator.Map.AddReference(obj, list, ref)
}

func removeRef(obj mo.Reference, list *[]types.ManagedObjectReference, ref types.ManagedObjectReference) {
	simulator.Map.RemoveReference(obj, list, ref)
}

func adjustFree(ds *simulator.Datastore, delta int64) {
	simulator.Map.WithLock(ds, func() {
		ds.Summary.FreeSpace += delta
		ds.Info.GetDatastoreInfo().FreeSpace = ds.Summary.FreeSpace
	})
}

// setVMLog points vcsim's private per-VM log file at the VM's new folder.
func setVMLog(vm *simulator.VirtualMachine, file string) {
	f := reflect.ValueOf(vm).Elem().FieldByName("log")
	if f.IsValid() && f.Kind() == reflect.String {
		reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetString(file)
	}
}
