package main

// Test control endpoints (not part of vSphere), under /vmdk-test/.

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

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

// slowTask starts a task that takes a while (tests of task polling, timeouts and CancelTask).
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
		at := newAsyncTask(root, "vmdkTestSleep")
		go func() {
			if !at.wait(time.Duration(seconds * float64(time.Second))) {
				return
			}
			if fault != nil {
				at.finish(nil, fault)
				return
			}
			at.finish(root.Reference(), nil)
		}()
		_, _ = fmt.Fprint(w, at.task.Self.Value)
	}
}
