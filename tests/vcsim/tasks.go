package main

// Tasks that run in the background, as on a real vCenter: a delayed method answers its Task at once,
// in state running, and does its work after the delay; CancelTask ends such a task in error
// RequestCanceled without doing the work. vcsim 0.24.2 runs every task inside the SOAP call and has
// no CancelTask.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ---------------------------------------------------------------------------------------- delays

type delayRule struct {
	Seconds float64 `json:"seconds"`
	Count   int     `json:"count"` // calls left; -1 = every call
}

type delayTable struct {
	mu    sync.Mutex
	rules map[string]*delayRule
}

var delays = &delayTable{rules: map[string]*delayRule{}}

func (t *delayTable) set(method string, seconds float64, count int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seconds <= 0 || count == 0 {
		delete(t.rules, method)
		return
	}
	t.rules[method] = &delayRule{Seconds: seconds, Count: count}
}

func (t *delayTable) has(method string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.rules[method]
	return ok
}

// take consumes one delayed call of method.
func (t *delayTable) take(method string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rules[method]
	if !ok {
		return 0, false
	}
	if r.Count > 0 {
		r.Count--
		if r.Count == 0 {
			delete(t.rules, method)
		}
	}
	return time.Duration(r.Seconds * float64(time.Second)), true
}

func (t *delayTable) snapshot() map[string]delayRule {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]delayRule{}
	for k, v := range t.rules {
		out[k] = *v
	}
	return out
}

// controlDelay: POST method=<Name_Task> seconds=<float> [count=<n>]; GET lists the delays.
func controlDelay(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(delays.snapshot())
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	method := r.FormValue("method")
	if !strings.HasSuffix(method, "_Task") {
		http.Error(w, "method: a *_Task method name, e.g. CreateVM_Task", http.StatusBadRequest)
		return
	}
	seconds, err := strconv.ParseFloat(r.FormValue("seconds"), 64)
	if err != nil || seconds < 0 {
		http.Error(w, "seconds: a number >= 0", http.StatusBadRequest)
		return
	}
	count := -1
	if v := r.FormValue("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 {
			http.Error(w, "count: an integer >= 1", http.StatusBadRequest)
			return
		}
	}
	delays.set(method, seconds, count)
	w.WriteHeader(http.StatusNoContent)
}

// ----------------------------------------------------------------------------------- async tasks

type asyncTask struct {
	task   *simulator.Task
	cancel chan struct{}
	mu     sync.Mutex
	state  string // running, cancelling, done
}

var asyncTasks sync.Map // types.ManagedObjectReference -> *asyncTask

// newAsyncTask creates a task on obj, already running and cancelable (name as simulator.CreateTask).
func newAsyncTask(obj mo.Reference, name string) *asyncTask {
	task := simulator.CreateTask(obj, name, nil)
	at := &asyncTask{task: task, cancel: make(chan struct{}), state: "running"}
	asyncTasks.Store(task.Self, at)
	changes := []types.PropertyChange{
		{Name: "info.state", Val: types.TaskInfoStateRunning},
		{Name: "info.startTime", Val: time.Now()},
		{Name: "info.cancelable", Val: true},
	}
	if name := entityName(obj); name != "" {
		changes = append(changes, types.PropertyChange{Name: "info.entityName", Val: name})
	}
	simulator.Map.Update(task, changes)
	return at
}

// wait sleeps d, or less if the task is cancelled; it reports whether the work should go on.
func (at *asyncTask) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-at.cancel:
	}
	at.mu.Lock()
	if at.state != "running" {
		at.mu.Unlock()
		at.finish(nil, &types.RequestCanceled{})
		return false
	}
	at.state = "working" // too late to cancel
	at.mu.Unlock()
	return true
}

func (at *asyncTask) finish(result types.AnyType, f types.BaseMethodFault) {
	at.mu.Lock()
	if at.state == "done" {
		at.mu.Unlock()
		return
	}
	at.state = "done"
	at.mu.Unlock()
	finishTask(at.task, result, f, "")
}

// finishTask completes a task the way vSphere reports it (state, result or error with its message).
func finishTask(task *simulator.Task, result types.AnyType, f types.BaseMethodFault, msg string) {
	state := types.TaskInfoStateSuccess
	var lf interface{}
	if f != nil {
		state = types.TaskInfoStateError
		if msg == "" {
			msg = faultMessage(f)
		}
		lf = types.LocalizedMethodFault{Fault: f, LocalizedMessage: msg}
		result = nil
	}
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.completeTime", Val: time.Now()},
		{Name: "info.state", Val: state},
		{Name: "info.result", Val: result},
		{Name: "info.error", Val: lf},
	})
}

// faultMessage is vSphere's localized message for the faults we send, else the fault's type name.
func faultMessage(f types.BaseMethodFault) string {
	for _, m := range f.GetMethodFault().FaultMessage {
		if m.Message != "" {
			return m.Message
		}
	}
	switch x := f.(type) {
	case *types.RequestCanceled:
		return "The task was canceled by a user."
	case *types.SystemError:
		return "A general system error occured: " + x.Reason // sic, as vSphere spells it
	case *types.NotSupported:
		return "The operation is not supported on the object."
	case *types.FileLocked:
		return fmt.Sprintf("Unable to access file %s since it is locked", x.File)
	case *types.InvalidDeviceOperation:
		return fmt.Sprintf("Invalid operation for device '%d'.", x.DeviceIndex)
	case *types.FileNotFound:
		return fmt.Sprintf("File %s was not found", x.File)
	case *types.FileAlreadyExists:
		return fmt.Sprintf("Cannot complete the operation because the file or folder %s already exists", x.File)
	}
	return reflect.TypeOf(f).Elem().Name()
}

func entityName(obj mo.Reference) string {
	if e, ok := obj.(mo.Entity); ok {
		return e.Entity().Name
	}
	return ""
}

// startDelayed answers a *_Task call with a running task and does the call's work after d.
func startDelayed(ctx *simulator.Context, m *simulator.Method, d time.Duration) soap.HasFault {
	// CreateTask turns "XTask" into the method name "X_Task"
	at := newAsyncTask(simulator.Map.Get(m.This), strings.TrimSuffix(m.Name, "_Task")+"Task")
	go func() {
		if !at.wait(d) {
			return
		}
		at.finish(outcome(dispatch(ctx, m)))
	}()
	return taskResponse(m.Name, at.task.Self)
}

// outcome is what a *_Task method answer came to: the method's own fault, or its (finished) task's.
func outcome(res soap.HasFault) (types.AnyType, types.BaseMethodFault) {
	if f := res.Fault(); f != nil {
		if mf, ok := f.VimFault().(types.BaseMethodFault); ok {
			return nil, mf
		}
		return nil, &types.SystemError{Reason: f.String}
	}
	ref, ok := returnval(res).(types.ManagedObjectReference)
	if !ok {
		return nil, &types.SystemError{Reason: fmt.Sprintf("%T: no task", res)}
	}
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil, &types.SystemError{Reason: "task not found: " + ref.Value}
	}
	if task.Info.Error != nil {
		return nil, task.Info.Error.Fault
	}
	return task.Info.Result, nil
}

// returnval digs Res.Returnval out of a methods.*Body.
func returnval(res soap.HasFault) interface{} {
	v := reflect.ValueOf(res)
	if v.Kind() != reflect.Ptr || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	r := v.Elem().FieldByName("Res")
	if !r.IsValid() || r.IsNil() {
		return nil
	}
	rv := r.Elem().FieldByName("Returnval")
	if !rv.IsValid() {
		return nil
	}
	return rv.Interface()
}

// runTask is a synchronous task (as vcsim's own) whose work is fn; it returns the task's ref.
func runTask(obj mo.Reference, name string, fn func() (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	task := simulator.CreateTask(obj, name, nil)
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.state", Val: types.TaskInfoStateRunning},
		{Name: "info.startTime", Val: time.Now()},
	})
	if n := entityName(obj); n != "" {
		simulator.Map.Update(task, []types.PropertyChange{{Name: "info.entityName", Val: n}})
	}
	result, f := fn()
	finishTask(task, result, f, "")
	return task.Self
}

// cancelTask: vSphere's CancelTask. Our background tasks stop; finished ones answer InvalidState.
func cancelTask(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CancelTask)
	body := &methods.CancelTaskBody{}
	v, ok := asyncTasks.Load(req.This)
	if !ok {
		if t, isTask := simulator.Map.Get(req.This).(*simulator.Task); isTask &&
			(t.Info.State == types.TaskInfoStateRunning || t.Info.State == types.TaskInfoStateQueued) {
			body.Fault_ = fault("The operation is not supported on the object.", &types.NotSupported{})
			return body
		}
		body.Fault_ = fault("The operation is not allowed in the current state.", &types.InvalidState{})
		return body
	}
	at := v.(*asyncTask)
	at.mu.Lock()
	state := at.state
	if state == "running" {
		at.state = "cancelling"
	}
	at.mu.Unlock()
	switch state {
	case "running":
		simulator.Map.Update(at.task, []types.PropertyChange{{Name: "info.cancelled", Val: true}})
		close(at.cancel)
	case "cancelling":
	case "working":
		simulator.Map.Update(at.task, []types.PropertyChange{{Name: "info.cancelled", Val: true}})
	default:
		body.Fault_ = fault("The operation is not allowed in the current state.", &types.InvalidState{})
		return body
	}
	body.Res = &types.CancelTaskResponse{}
	return body
}

// sortedKeys is for stable listings.
func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ------------------------------------------------------------------------------- task entities

// taskEntities fixes TaskInfo.entity of vcsim's tasks as they are registered: vcsim names the object
// called (a snapshot, the file or disk manager), which is no ManagedEntity and breaks clients
// (pyVmomi cannot read such a TaskInfo). vSphere names the snapshot's VM, or no entity.
type taskEntities struct{}

var managedEntityTypes = map[string]bool{
	"Folder": true, "Datacenter": true, "VirtualMachine": true, "HostSystem": true, "ComputeResource": true,
	"ClusterComputeResource": true, "ResourcePool": true, "VirtualApp": true, "Datastore": true, "StoragePod": true,
	"Network": true, "OpaqueNetwork": true, "DistributedVirtualPortgroup": true, "DistributedVirtualSwitch": true,
	"VmwareDistributedVirtualSwitch": true,
}

func (taskEntities) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VmdkTaskEntities", Value: "taskEntities"}
}

func (taskEntities) PutObject(obj mo.Reference) {
	task, ok := obj.(*simulator.Task)
	if !ok || task.Info.Entity == nil || managedEntityTypes[task.Info.Entity.Type] {
		return
	}
	if snap, ok := simulator.Map.Get(*task.Info.Entity).(*simulator.VirtualMachineSnapshot); ok {
		vm := snap.Vm
		task.Info.Entity = &vm
		if e, ok := simulator.Map.Get(vm).(mo.Entity); ok {
			task.Info.EntityName = e.Entity().Name
		}
		return
	}
	task.Info.Entity = nil
	task.Info.EntityName = ""
}

func (taskEntities) UpdateObject(mo.Reference, []types.PropertyChange) {}
func (taskEntities) RemoveObject(types.ManagedObjectReference)         {}
