package main

// ImportVApp and ExportVm with HttpNfcLeases whose device URLs carry disk data. vcsim 0.24.2 discards
// uploads and has no ExportVm. Uploads may be streamOptimized (or any hosted) VMDKs, which qemu-img
// decodes into the disk's flat extent, or raw bytes; downloads are streamOptimized VMDKs made by
// qemu-img from the flat extent.

import (
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const nfcPrefix = "/nfc/"

// nfcOrigin is the scheme and host of the device URLs of leases made from now on: "https" and "*" (the
// server the client talks to), as stock vcsim hands them out and as an ESXi host does ("In the case of an
// ESX host, the netloc is set to '*'", oslo.vmware rw_handles._fix_esx_url), unless /vmdk-test/nfc names
// others (a plain-http URL, an ESXi host's name as vCenter gives it). The disk is served by this simulator
// whatever the URL says.
var nfcOrigin = struct {
	sync.Mutex
	scheme, host string
}{scheme: "https", host: "*"}

// controlNFC sets nfcOrigin (tests only): form values scheme and host, empty for the defaults.
func controlNFC(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	scheme, host := r.FormValue("scheme"), r.FormValue("host")
	if scheme == "" {
		scheme = "https"
	}
	if host == "" {
		host = "*"
	}
	nfcOrigin.Lock()
	nfcOrigin.scheme, nfcOrigin.host = scheme, host
	nfcOrigin.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

type leaseDisk struct {
	disk *types.VirtualDisk
	file string // "[ds] dir/name.vmdk"
}

// nfcLease is an HttpNfcLease in the global registry; vcsim dispatches its methods.
type nfcLease struct {
	mo.HttpNfcLease
	mu     sync.Mutex
	export bool
	vm     *simulator.VirtualMachine
	disks  map[string]leaseDisk // device URL name -> disk
}

func newLease(vm *simulator.VirtualMachine, export bool) *nfcLease {
	l := &nfcLease{export: export, vm: vm, disks: map[string]leaseDisk{}}
	l.Self.Type = "HttpNfcLease" // Put names the object after this type, not ours
	l.State = types.HttpNfcLeaseStateReady
	l.InitializeProgress = 100
	simulator.Map.Put(l)
	info := &types.HttpNfcLeaseInfo{Lease: l.Self, Entity: vm.Self, LeaseTimeout: 300}
	nfcOrigin.Lock()
	scheme, host := nfcOrigin.scheme, nfcOrigin.host
	nfcOrigin.Unlock()
	kinds := map[string]int{}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for i, d := range vmDisks(vm) {
		b := flatBacking(d)
		var p object.DatastorePath
		p.FromString(b.FileName)
		name := path.Base(p.Path)
		key := ""
		if export {
			name = fmt.Sprintf("disk-%d.vmdk", i)
			if c := devices.FindByKey(d.ControllerKey); c != nil {
				key = fmt.Sprintf("/%s/%s%d:%d", vm.Self.Value, reflectName(c), busNumber(c), unit(d))
			}
		}
		kind := devices.Type(d)
		n := kinds[kind]
		kinds[kind]++
		if key == "" {
			key = fmt.Sprintf("/%s/%s:%d", vm.Self.Value, kind, n)
		}
		l.disks[name] = leaseDisk{disk: d, file: b.FileName}
		info.DeviceUrl = append(info.DeviceUrl, types.HttpNfcLeaseDeviceUrl{
			Key:       key,
			ImportKey: fmt.Sprintf("/%s/%s:%d", vm.Name, kind, n),
			Url:       (&url.URL{Scheme: scheme, Host: host, Path: nfcPrefix + path.Join(l.Self.Value, name)}).String(),
			Disk:      types.NewBool(true),
			TargetId:  name,
		})
		info.TotalDiskCapacityInKB += diskCapacity(d) / 1024
	}
	l.Info = info
	return l
}

func reflectName(d types.BaseVirtualDevice) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", d), "*types.")
}

func busNumber(d types.BaseVirtualDevice) int32 {
	if c, ok := d.(types.BaseVirtualController); ok {
		return c.GetVirtualController().BusNumber
	}
	return 0
}

func unit(d *types.VirtualDisk) int32 {
	if d.UnitNumber != nil {
		return *d.UnitNumber
	}
	return 0
}

func (l *nfcLease) HttpNfcLeaseComplete(ctx *simulator.Context, req *types.HttpNfcLeaseComplete) soap.HasFault {
	body := new(methods.HttpNfcLeaseCompleteBody)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.State != types.HttpNfcLeaseStateReady {
		body.Fault_ = fault("The operation is not allowed in the current state.", &types.InvalidState{})
		return body
	}
	l.setState(types.HttpNfcLeaseStateDone, nil)
	body.Res = new(types.HttpNfcLeaseCompleteResponse)
	return body
}

// HttpNfcLeaseAbort: "If the import process fails, is aborted, or times out, all created inventory
// objects are removed, including all virtual disks" (vSphere API, ImportVApp).
func (l *nfcLease) HttpNfcLeaseAbort(ctx *simulator.Context, req *types.HttpNfcLeaseAbort) soap.HasFault {
	body := new(methods.HttpNfcLeaseAbortBody)
	l.mu.Lock()
	if l.State == types.HttpNfcLeaseStateError || l.State == types.HttpNfcLeaseStateDone {
		l.mu.Unlock()
		body.Fault_ = fault("The operation is not allowed in the current state.", &types.InvalidState{})
		return body
	}
	var lf *types.LocalizedMethodFault
	if req.Fault != nil {
		lf = req.Fault
	} else {
		lf = &types.LocalizedMethodFault{Fault: &types.RequestCanceled{}, LocalizedMessage: faultMessage(&types.RequestCanceled{})}
	}
	l.setState(types.HttpNfcLeaseStateError, lf)
	l.mu.Unlock()
	if !l.export {
		vm := l.vm
		if simulator.Map.Get(vm.Self) != nil {
			dctx := *ctx
			self := vm.Self
			dctx.Caller = &self
			simulator.Map.WithLock(vm, func() { vm.DestroyTask(&dctx, &types.Destroy_Task{This: vm.Self}) })
		}
	}
	body.Res = new(types.HttpNfcLeaseAbortResponse)
	return body
}

func (l *nfcLease) HttpNfcLeaseProgress(req *types.HttpNfcLeaseProgress) soap.HasFault {
	body := new(methods.HttpNfcLeaseProgressBody)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.State != types.HttpNfcLeaseStateReady {
		body.Fault_ = fault("The operation is not allowed in the current state.", &types.InvalidState{})
		return body
	}
	simulator.Map.Update(l, []types.PropertyChange{{Name: "transferProgress", Val: req.Percent}})
	body.Res = new(types.HttpNfcLeaseProgressResponse)
	return body
}

func (l *nfcLease) HttpNfcLeaseGetManifest(req *types.HttpNfcLeaseGetManifest) soap.HasFault {
	body := new(methods.HttpNfcLeaseGetManifestBody)
	body.Res = new(types.HttpNfcLeaseGetManifestResponse)
	return body
}

func (l *nfcLease) setState(state types.HttpNfcLeaseState, err *types.LocalizedMethodFault) {
	changes := []types.PropertyChange{{Name: "state", Val: state}}
	if err != nil {
		changes = append(changes, types.PropertyChange{Name: "error", Val: err})
	}
	if state == types.HttpNfcLeaseStateDone {
		changes = append(changes, types.PropertyChange{Name: "transferProgress", Val: int32(100)})
	}
	simulator.Map.Update(l, changes)
}

// ------------------------------------------------------------------------------------ SOAP calls

func importVApp(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ImportVApp)
	body := new(methods.ImportVAppBody)
	spec, ok := req.Spec.(*types.VirtualMachineImportSpec)
	if !ok {
		body.Fault_ = fault(fmt.Sprintf("%T: type not supported", req.Spec), &types.InvalidArgument{InvalidProperty: "spec"})
		return body
	}
	pool := simulator.Map.Get(req.This).(mo.Entity)
	dc := datacenterOf(pool)
	if dc == nil {
		body.Fault_ = fault("", &types.InvalidArgument{InvalidProperty: "pool"})
		return body
	}
	folderRef := dc.VmFolder
	if req.Folder != nil {
		folderRef = *req.Folder
	}
	folder, ok := simulator.Map.Get(folderRef).(*simulator.Folder)
	if !ok {
		body.Fault_ = fault("", &types.InvalidArgument{InvalidProperty: "folder"})
		return body
	}
	attached := normalizeDisks(&spec.ConfigSpec)
	// Lock as CreateVM_Task does: the folder (the method's object), then the pool inside createVM.
	ctx.Caller = &folder.Self
	var res soap.HasFault
	simulator.Map.WithLock(folder, func() {
		res = createVMIn(ctx, folder, &types.CreateVM_Task{This: folder.Self, Config: spec.ConfigSpec, Pool: pool.Reference(), Host: req.Host})
	})
	r, f := outcome(res)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	giveBack(attached)
	vm := simulator.Map.Get(r.(types.ManagedObjectReference)).(*simulator.VirtualMachine)
	simulator.Map.WithLock(vm, func() { syncDisks(vm) })
	lease := newLease(vm, false)
	body.Res = &types.ImportVAppResponse{Returnval: lease.Self}
	return body
}

func exportVM(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ExportVm)
	body := new(methods.ExportVmBody)
	vm := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		body.Fault_ = fault("", &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff, ExistingState: vm.Runtime.PowerState})
		return body
	}
	lease := newLease(vm, true)
	body.Res = &types.ExportVmResponse{Returnval: lease.Self}
	return body
}

// ------------------------------------------------------------------------------------------ HTTP

// serveNFC handles /nfc/<lease>/<name> for our leases (false: not ours, vcsim's handler serves it).
// Like vSphere's, the URLs are the credentials: no session cookie is needed.
func serveNFC(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, nfcPrefix), "/")
	if len(parts) != 2 {
		return false
	}
	l, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "HttpNfcLease", Value: parts[0]}).(*nfcLease)
	if !ok {
		return false
	}
	l.mu.Lock()
	ready := l.State == types.HttpNfcLeaseStateReady
	d, found := l.disks[parts[1]]
	l.mu.Unlock()
	if !ready || !found {
		http.NotFound(w, r)
		return true
	}
	switch {
	case l.export && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		serveExport(w, r, d)
	case !l.export && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		if err := receiveImport(r, l, d); err != nil {
			log.Printf("nfc upload %s: %v", d.file, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return true
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
	return true
}

// receiveImport writes an upload into the disk's flat extent.
func receiveImport(r *http.Request, l *nfcLease, d leaseDisk) error {
	desc, _, f := localPath(d.file)
	if f != nil {
		return fmt.Errorf("%s", faultMessage(f))
	}
	tmp, err := ioutil.TempFile(filepath.Dir(desc), ".upload-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r.Body)
	_ = tmp.Close()
	if err != nil {
		return err
	}
	raw := tmp.Name()
	if isHostedVMDK(raw) {
		raw = tmp.Name() + ".raw"
		defer os.Remove(raw)
		if err := qemuImg("convert", "-f", "vmdk", "-O", "raw", tmp.Name(), raw); err != nil {
			return err
		}
	}
	st, err := os.Stat(raw)
	if err != nil {
		return err
	}
	capacity := diskCapacity(d.disk)
	if st.Size() > capacity {
		return fmt.Errorf("image of %d bytes does not fit the %d-byte disk", st.Size(), capacity)
	}
	if err := copySparse(raw, extentOf(desc), capacity); err != nil {
		return err
	}
	simulator.Map.WithLock(l.vm, func() { syncDisk(l.vm, d.disk) })
	return nil
}

// serveExport streams the disk as a streamOptimized VMDK.
func serveExport(w http.ResponseWriter, r *http.Request, d leaseDisk) {
	desc, _, f := localPath(d.file)
	if f != nil {
		http.NotFound(w, r)
		return
	}
	out, err := ioutil.TempFile("", "vmdk-export-")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = out.Close()
	defer os.Remove(out.Name())
	// the disk's current bytes: its top file's extent (a snapshot's delta holds them all, materialised)
	if err := qemuImg("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", extentOf(desc), out.Name()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	file, err := os.Open(out.Name())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer file.Close()
	st, _ := file.Stat()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, path.Base(desc), st.ModTime(), file)
}
