package main

// The default model: datastores of several sizes and host sets, a storage policy, a tag table.

import (
	"fmt"
	"io/ioutil"
	"os"

	pbmsim "github.com/vmware/govmomi/pbm/simulator"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	gib = int64(1) << 30
	tib = int64(1) << 40
)

type dsSpec struct {
	name            string
	hosts           []string // host names
	capacity, free  int64
	accessible      bool
	maintenanceMode string
}

// ourModel is the VPX model of the header: 2 clusters of 3 hosts, 1 standalone host, 1 VM per pool.
func ourModel() *simulator.Model {
	model := simulator.VPX()
	model.Cluster = 2
	model.ClusterHost = 3
	model.Host = 1
	model.Datastore = 1
	model.Machine = 1
	return model
}

// addOurDatastores adds the datastores of the header; it returns their folders (removed at exit).
func addOurDatastores() ([]string, error) {
	c0 := []string{"DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"}
	c1 := []string{"DC0_C1_H0", "DC0_C1_H1", "DC0_C1_H2"}
	both := append(append([]string{}, c0...), c1...)
	normal := string(types.DatastoreSummaryMaintenanceModeStateNormal)
	specs := []dsSpec{
		{"ds-big", both, 4 * tib, 3 * tib, true, normal},
		{"ds-c0", c0, 1 * tib, 300 * gib, true, normal},
		{"ds-c1", c1, 2 * tib, 1536 * gib, true, normal},
		{"ds-small", c0[:1], 100 * gib, 20 * gib, true, normal},
		{"ds-maint", both, 8 * tib, 8 * tib, true, string(types.DatastoreSummaryMaintenanceModeStateInMaintenance)},
		{"ds-gone", c1, 8 * tib, 8 * tib, false, normal},
	}
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
	fixLocalDS()
	return dirs, nil
}

func removeAll(dirs []string) {
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

func hostByName(name string) *simulator.HostSystem {
	for _, e := range simulator.Map.All("HostSystem") {
		if h := e.(*simulator.HostSystem); h.Name == name {
			return h
		}
	}
	return nil
}

// addDatastore creates a local datastore on the first host, mounts it on the others and sets its
// type, size and state.
func addDatastore(s dsSpec, dir string) error {
	first := hostByName(s.hosts[0])
	if first == nil {
		return fmt.Errorf("no host %s", s.hosts[0])
	}
	dss := simulator.Map.Get(*first.ConfigManager.DatastoreSystem).(*simulator.HostDatastoreSystem)
	ctx := &simulator.Context{Map: simulator.Map, Session: &simulator.Session{}}
	res := dss.CreateLocalDatastore(ctx, &types.CreateLocalDatastore{Name: s.name, Path: dir})
	if f := res.Fault(); f != nil {
		return fmt.Errorf("%s", f.String)
	}
	ds := simulator.Map.Get(res.(*methods.CreateLocalDatastoreBody).Res.Returnval).(*simulator.Datastore)
	for _, name := range s.hosts[1:] {
		h := hostByName(name)
		if h == nil {
			return fmt.Errorf("no host %s", name)
		}
		mount(ds, h)
	}
	ds.Summary.Type = string(types.HostFileSystemVolumeFileSystemTypeVMFS)
	ds.Summary.Accessible = s.accessible
	ds.Summary.MaintenanceMode = s.maintenanceMode
	for i := range ds.Host {
		ds.Host[i].MountInfo.Accessible = types.NewBool(s.accessible)
	}
	setSpace(ds, s.capacity, s.free)
	return nil
}

// mount adds host h to ds's mounts and ds to the host, its datastore system and its compute resource.
func mount(ds *simulator.Datastore, h *simulator.HostSystem) {
	ds.Host = append(ds.Host, types.DatastoreHostMount{
		Key: h.Self,
		MountInfo: types.HostMountInfo{
			Path:       ds.Info.GetDatastoreInfo().Url,
			AccessMode: string(types.HostMountModeReadWrite),
			Mounted:    types.NewBool(true),
			Accessible: types.NewBool(true),
		},
	})
	h.Datastore = append(h.Datastore, ds.Self)
	dss := simulator.Map.Get(*h.ConfigManager.DatastoreSystem).(*simulator.HostDatastoreSystem)
	dss.Datastore = append(dss.Datastore, ds.Self)
	var cr *mo.ComputeResource
	switch p := simulator.Map.Get(*h.Parent).(type) {
	case *mo.ComputeResource:
		cr = p
	case *simulator.ClusterComputeResource:
		cr = &p.ComputeResource
	}
	if cr != nil {
		for _, r := range cr.Datastore {
			if r == ds.Self {
				return
			}
		}
		cr.Datastore = append(cr.Datastore, ds.Self)
	}
}

func setSpace(ds *simulator.Datastore, capacity, free int64) {
	ds.Summary.Capacity = capacity
	ds.Summary.FreeSpace = free
	info := ds.Info.GetDatastoreInfo()
	info.FreeSpace = free
	info.MaxFileSize = free
	info.MaxMemoryFileSize = free
}

// fixLocalDS gives vcsim's own LocalDS_0 one mount per host that lists it (vcsim keeps only the last).
func fixLocalDS() {
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		mounted := map[types.ManagedObjectReference]bool{}
		for _, m := range ds.Host {
			mounted[m.Key] = true
		}
		for _, he := range simulator.Map.All("HostSystem") {
			h := he.(*simulator.HostSystem)
			for _, r := range h.Datastore {
				if r == ds.Self && !mounted[h.Self] {
					mounted[h.Self] = true
					ds.Host = append(ds.Host, types.DatastoreHostMount{
						Key: h.Self,
						MountInfo: types.HostMountInfo{
							Path:       ds.Info.GetDatastoreInfo().Url,
							AccessMode: string(types.HostMountModeReadWrite),
							Mounted:    types.NewBool(true),
							Accessible: types.NewBool(true),
						},
					})
				}
			}
		}
	}
}

// addProfile creates a storage policy through the PBM simulator's own PbmCreate.
func addProfile(name, description string) error {
	ctx := &simulator.Context{Map: simulator.Map, Session: &simulator.Session{
		UserSession: types.UserSession{UserName: "vcsim"}}}
	res := new(pbmsim.ProfileManager).PbmCreate(ctx, &pbmtypes.PbmCreate{
		CreateSpec: pbmtypes.PbmCapabilityProfileCreateSpec{
			Name:         name,
			Description:  description,
			Category:     "REQUIREMENT",
			ResourceType: pbmtypes.PbmProfileResourceType{ResourceType: "STORAGE"},
			Constraints: &pbmtypes.PbmCapabilitySubProfileConstraints{
				SubProfiles: []pbmtypes.PbmCapabilitySubProfile{{
					Name: "gold",
					Capability: []pbmtypes.PbmCapabilityInstance{{
						Id: pbmtypes.PbmCapabilityMetadataUniqueId{Namespace: "http://www.vmware.com/storage/tag", Id: "tier"},
						Constraint: []pbmtypes.PbmCapabilityConstraintInstance{{
							PropertyInstance: []pbmtypes.PbmCapabilityPropertyInstance{{
								Id:    "com.vmware.storage.tag.tier.property",
								Value: "gold",
							}},
						}},
					}},
				}},
			},
		},
	})
	if f := res.Fault(); f != nil {
		return fmt.Errorf("%s", f.String)
	}
	return nil
}
