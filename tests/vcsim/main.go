// Command vcsim serves the vCenter simulator model used by terraform-provider-vmdk's tests.
//
// Build (GOPATH mode, Debian's govmomi 0.24.2):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o tests/vcsim/bin/vcsim ./tests/vcsim
//
// Model (datacenter DC0):
//
//	hosts     DC0_H0 (standalone), DC0_C0_H0..2 (cluster DC0_C0), DC0_C1_H0..2 (cluster DC0_C1)
//	LocalDS_0 vcsim's own datastore, type OTHER, on all 7 hosts, free space of the real file system
//	ds-big    VMFS, C0+C1 (6 hosts), 4 TiB, 3 TiB free
//	ds-c0     VMFS, C0 (3 hosts),    1 TiB, 300 GiB free
//	ds-c1     VMFS, C1 (3 hosts),    2 TiB, 1.5 TiB free
//	ds-small  VMFS, C0_H0 (1 host),  100 GiB, 20 GiB free
//	ds-maint  VMFS, C0+C1, 8 TiB free, summary.maintenanceMode = inMaintenance
//	ds-gone   VMFS, C1, 8 TiB free, summary.accessible = false (mounts inaccessible)
//
// PBM is served on /pbm with vcsim's built-in profiles plus "vmdk-gold" (created here).
// vcsim's PbmCheckRequirements ignores the policy and returns every datastore.
//
// Test control endpoint (not part of vSphere): POST /vmdk-test/datastore with form values
// name (required), and any of accessible=true|false, maintenance=normal|enteringMaintenance|inMaintenance,
// capacity=<bytes>, free=<bytes>.
//
// POST /vmdk-test/task with seconds=<float> and optional fault=NoDiskSpace|FileAlreadyExists|FileNotFound
// starts a task on the root folder that runs that long, then succeeds (result: the root folder) or fails;
// the answer body is the task's moref value.  vcsim's own tasks finish before the call returns.
//
// Once listening it prints one line to stdout: "VCSIM_URL=https://user:pass@127.0.0.1:PORT/sdk".
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

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

func main() {
	port := flag.Int("port", 0, "port to listen on (0 = pick a free one)")
	user := flag.String("user", "vmdk", "login user")
	pass := flag.String("password", "vmdk-secret", "login password")
	certFile := flag.String("cert", "", "PEM server certificate (empty = plain HTTP)")
	keyFile := flag.String("key", "", "PEM server key")
	urlFile := flag.String("url-file", "", "also write the URL to this file once listening")
	flag.Parse()

	// Catch signals before anything exists to clean up, so an early SIGTERM still runs the defers.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	model := simulator.VPX()
	model.Cluster = 2
	model.ClusterHost = 3
	model.Host = 1
	model.Datastore = 1
	model.Machine = 1
	model.Service = nil
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	defer model.Remove()

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
	defer func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	for _, s := range specs {
		dir, err := ioutil.TempDir("", "vmdk-vcsim-"+s.name+"-")
		if err != nil {
			log.Fatal(err)
		}
		dirs = append(dirs, dir)
		if err := addDatastore(s, dir); err != nil {
			log.Fatalf("datastore %s: %v", s.name, err)
		}
	}
	fixLocalDS()

	if err := addProfile("vmdk-gold", "Test policy of terraform-provider-vmdk (vcsim does not evaluate it)"); err != nil {
		log.Fatalf("pbm profile: %v", err)
	}

	model.Service.RegisterEndpoints = true
	model.Service.Listen = &url.URL{Host: "127.0.0.1:" + strconv.Itoa(*port), User: url.UserPassword(*user, *pass)}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("load certificate: %v", err)
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	model.Service.ServeMux = http.NewServeMux()
	model.Service.ServeMux.HandleFunc("/vmdk-test/datastore", controlDatastore)
	model.Service.ServeMux.HandleFunc("/vmdk-test/task", slowTask(model.ServiceContent.RootFolder))

	server := model.Service.NewServer()
	defer server.Close()

	line := "VCSIM_URL=" + server.URL.String()
	if *urlFile != "" {
		if err := ioutil.WriteFile(*urlFile, []byte(server.URL.String()+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(line)

	<-sig
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

// controlDatastore changes a datastore's state at run time (tests only).
func controlDatastore(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ds *simulator.Datastore
	for _, e := range simulator.Map.All("Datastore") {
		if d := e.(*simulator.Datastore); d.Name == r.Form.Get("name") {
			ds = d
		}
	}
	if ds == nil {
		http.Error(w, "no such datastore", http.StatusNotFound)
		return
	}
	var bad error
	simulator.Map.WithLock(ds, func() {
		if v := r.Form.Get("accessible"); v != "" {
			ok, err := strconv.ParseBool(v)
			if err != nil {
				bad = err
				return
			}
			ds.Summary.Accessible = ok
			for i := range ds.Host {
				ds.Host[i].MountInfo.Accessible = types.NewBool(ok)
			}
		}
		if v := r.Form.Get("maintenance"); v != "" {
			ds.Summary.MaintenanceMode = v
		}
		capacity, free := ds.Summary.Capacity, ds.Summary.FreeSpace
		for key, dst := range map[string]*int64{"capacity": &capacity, "free": &free} {
			if v := r.Form.Get(key); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					bad = err
					return
				}
				*dst = n
			}
		}
		setSpace(ds, capacity, free)
	})
	if bad != nil {
		http.Error(w, bad.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// slowTask starts a task that takes a while (tests of task polling and timeouts).
func slowTask(rootRef types.ManagedObjectReference) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		seconds, err := strconv.ParseFloat(r.FormValue("seconds"), 64)
		if err != nil {
			http.Error(w, "seconds: "+err.Error(), http.StatusBadRequest)
			return
		}
		faults := map[string]types.BaseMethodFault{
			"":                  nil,
			"NoDiskSpace":       &types.NoDiskSpace{Datastore: "ds-small"},
			"FileAlreadyExists": &types.FileAlreadyExists{FileFault: types.FileFault{File: "[ds-small] x.vmdk"}},
			"FileNotFound":      &types.FileNotFound{FileFault: types.FileFault{File: "[ds-small] x.vmdk"}},
		}
		fault, ok := faults[r.FormValue("fault")]
		if !ok {
			http.Error(w, "unknown fault", http.StatusBadRequest)
			return
		}
		root := simulator.Map.Get(rootRef)
		task := simulator.CreateTask(root, "vmdkTestSleep", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			time.Sleep(time.Duration(seconds * float64(time.Second)))
			if fault != nil {
				return nil, fault
			}
			return root.Reference(), nil
		})
		go task.Run()
		_, _ = fmt.Fprint(w, task.Self.Value)
	}
}
