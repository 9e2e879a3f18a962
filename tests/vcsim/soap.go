package main

// The fidelity layer's front door: an http.Handler in front of vcsim's ServeMux.
//
// vcsim dispatches a SOAP call to a Go method of the registry object it names (reflection on the
// object's type). VirtualMachine and ResourcePool objects are vcsim's own types, so their methods
// cannot be shadowed; instead this handler decodes each /sdk request and, for the methods we
// override (table in installFidelity) or delay (/vmdk-test/delay), checks the caller's session,
// runs our Go function with a simulator.Context and encodes the answer itself. Every other request
// reaches vcsim untouched. Objects that are ours (NFC leases, the VirtualDiskManager, the PBM
// placement solver) sit in the registries and are dispatched by vcsim itself.

import (
	"bytes"
	"context"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"unsafe"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

type overrideFunc func(ctx *simulator.Context, m *simulator.Method) soap.HasFault

// unlockedOverrides run without their object locked: ImportVApp is called on a resource pool and
// creates a VM, which locks the folder and then the pool (as CreateVM does); holding the pool first
// would invert that order and deadlock with a concurrent CreateVM.
var unlockedOverrides = map[string]bool{"ImportVApp": true}

type fidelity struct {
	mux       http.Handler
	overrides map[string]overrideFunc
}

var fid *fidelity

// installFidelity puts the handler in front of the server's mux and our objects in the registries.
func installFidelity(svc *simulator.Service, server *simulator.Server, mux *http.ServeMux) error {
	fid = &fidelity{mux: mux}
	fid.overrides = map[string]overrideFunc{
		"CreateVM_Task":       createVM,
		"CloneVM_Task":        cloneVM,
		"RelocateVM_Task":     relocateVM,
		"ReconfigVM_Task":     reconfigVM,
		"CreateSnapshot_Task": createSnapshot,
		"RenameSnapshot":      renameSnapshot,
		"ImportVApp":          importVApp,
		"ExportVm":            exportVM,
		"CancelTask":          cancelTask,
		// disk chains (chains.go)
		"RemoveSnapshot_Task":          removeSnapshot,
		"RemoveAllSnapshots_Task":      removeAllSnapshots,
		"RevertToSnapshot_Task":        revertToSnapshot,
		"RevertToCurrentSnapshot_Task": revertToCurrentSnapshot,
		"Destroy_Task":                 destroy,
	}
	if esxMode { // what a host agent does not do (esx.go)
		fid.overrides["CloneVM_Task"] = esxCloneVM
		fid.overrides["RelocateVM_Task"] = esxRelocateVM
		fid.overrides["MarkAsTemplate"] = esxMarkAsTemplate
		fid.overrides["MarkAsVirtualMachine"] = esxMarkAsVirtualMachine
	}
	simulator.Map.AddHandler(taskEntities{})
	installDiskManager()
	if !esxMode { // a host has no PBM endpoint, nor datastore clusters
		if err := installPlacementSolver(svc); err != nil {
			return err
		}
		installSDRS()
	}
	syncAllDisks()
	// The server is already listening, but nobody knows its address before we print it.
	server.Config.Handler = fid
	return nil
}

func (f *fidelity) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && (r.URL.Path == vim25.Path || r.URL.Path == vim25.Path+"/vimService"):
		f.serveSDK(w, r)
	case strings.HasPrefix(r.URL.Path, "/nfc/"):
		if !serveNFC(w, r) {
			f.mux.ServeHTTP(w, r)
		}
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/folder/"):
		f.serveUpload(w, r)
	default:
		f.mux.ServeHTTP(w, r)
	}
}

func vimTypeFunc() func(string) (reflect.Type, bool) {
	tf := types.TypeFunc()
	return func(name string) (reflect.Type, bool) {
		if t, ok := tf(name); ok {
			return t, ok
		}
		if i := strings.Index(name, ":"); i >= 0 { // "vim25:VirtualDisk"
			return tf(name[i+1:])
		}
		return nil, false
	}
}

func (f *fidelity) serveSDK(w http.ResponseWriter, r *http.Request) {
	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	pass := func() {
		r.Body = ioutil.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		f.mux.ServeHTTP(w, r)
	}
	if podSummaries {
		beforeRequest()
	}
	name := methodName(body)
	_, override := f.overrides[name]
	delayed := delays.has(name)
	if !override && !delayed {
		pass()
		return
	}
	method, err := simulator.UnmarshalBody(vimTypeFunc(), body)
	if err != nil {
		pass()
		return
	}
	session, ok := f.session(r)
	if !ok {
		writeSOAP(w, &faultBody{Fault_: simulator.Fault("", &types.NotAuthenticated{
			NoPermission: types.NoPermission{Object: method.This, PrivilegeId: "System.View"}})})
		return
	}
	ctx := newContext(session, method)
	if simulator.Map.Get(method.This) == nil {
		writeSOAP(w, &faultBody{Fault_: simulator.Fault(fmt.Sprintf("managed object not found: %s", method.This),
			&types.ManagedObjectNotFound{Obj: method.This})})
		return
	}
	if delayed {
		if d, ok := delays.take(method.Name); ok {
			writeSOAP(w, startDelayed(ctx, method, d))
			return
		}
	}
	writeSOAP(w, dispatch(ctx, method))
}

// methodName is the local name of the first element in the SOAP Body (the method), read without
// decoding the request: most requests go to vcsim untouched.
func methodName(body []byte) string {
	d := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			if inBody {
				return se.Name.Local
			}
			inBody = se.Name.Local == "Body"
		}
	}
}

// newContext is what vcsim gives a method: the caller's session (a view of it), the registry and the
// object called (so that ctx.WithLock on it does not lock twice).
func newContext(us types.UserSession, m *simulator.Method) *simulator.Context {
	this := m.This
	return &simulator.Context{
		Context: context.Background(),
		Session: &simulator.Session{UserSession: us, Registry: simulator.NewRegistry()},
		Header:  m.Header,
		Caller:  &this,
		Map:     simulator.Map,
	}
}

// dispatch runs a method as vcsim would (object locked), through our override when there is one.
func dispatch(ctx *simulator.Context, m *simulator.Method) soap.HasFault {
	handler := simulator.Map.Get(m.This)
	if handler == nil {
		return &faultBody{Fault_: simulator.Fault("", &types.ManagedObjectNotFound{Obj: m.This})}
	}
	var res soap.HasFault
	if fn, ok := fid.overrides[m.Name]; ok {
		if unlockedOverrides[m.Name] {
			return fn(ctx, m) // it takes its locks itself
		}
		simulator.Map.WithLock(handler, func() { res = fn(ctx, m) })
		return res
	}
	simulator.Map.WithLock(handler, func() { res = callVcsim(ctx, m, handler) })
	return res
}

// callVcsim runs vcsim's own implementation of a method on handler (the caller holds its lock).
func callVcsim(ctx *simulator.Context, m *simulator.Method, handler mo.Reference) soap.HasFault {
	name := strings.Title(m.Name)
	if strings.HasSuffix(name, "_Task") {
		name = strings.TrimSuffix(name, "_Task") + "Task"
	}
	mv := reflect.ValueOf(handler).MethodByName(name)
	if !mv.IsValid() {
		return &faultBody{Fault_: simulator.Fault(fmt.Sprintf("%s does not implement: %s", m.This, m.Name),
			&types.MethodNotFound{Receiver: m.This, Method: m.Name})}
	}
	var args []reflect.Value
	if mv.Type().NumIn() == 2 {
		args = append(args, reflect.ValueOf(ctx))
	}
	args = append(args, reflect.ValueOf(m.Body))
	return mv.Call(args)[0].Interface().(soap.HasFault)
}

// ------------------------------------------------------------------------------------- sessions

// inproc is an http.RoundTripper that serves requests with vcsim's own mux, with the caller's cookie.
type inproc struct {
	h      http.Handler
	cookie *http.Cookie
}

func (t inproc) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.cookie != nil {
		req.AddCookie(t.cookie)
	}
	req.RemoteAddr = "127.0.0.1:0"
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// session asks vcsim (in process) who the request's session cookie belongs to.
func (f *fidelity) session(r *http.Request) (types.UserSession, bool) {
	cookie, err := r.Cookie(soap.SessionCookieName)
	if err != nil {
		return types.UserSession{}, false
	}
	u, _ := url.Parse("http://127.0.0.1" + vim25.Path)
	c := soap.NewClient(u, true)
	c.Client.Transport = inproc{h: f.mux, cookie: &http.Cookie{Name: cookie.Name, Value: cookie.Value}}
	// the model's own morefs: vCenter's "SessionManager", a host's "ha-sessionmgr"...
	content := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content
	sm := *content.SessionManager
	res, err := methods.RetrievePropertiesEx(context.Background(), c, &types.RetrievePropertiesEx{
		This: content.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{
			PropSet:   []types.PropertySpec{{Type: "SessionManager", PathSet: []string{"currentSession"}}},
			ObjectSet: []types.ObjectSpec{{Obj: sm}},
		}},
	})
	if err != nil || res.Returnval == nil {
		return types.UserSession{}, false
	}
	for _, oc := range res.Returnval.Objects {
		for _, p := range oc.PropSet {
			if us, ok := p.Val.(types.UserSession); ok && us.Key != "" {
				return us, true
			}
		}
	}
	return types.UserSession{}, false
}

// ------------------------------------------------------------------------------------- encoding

// faultBody answers a method with a fault only.
type faultBody struct {
	Fault_ *soap.Fault
}

func (b *faultBody) Fault() *soap.Fault { return b.Fault_ }

// rawBody answers a method with an already encoded response element.
type rawBody struct{ xml string }

func (b *rawBody) Fault() *soap.Fault { return nil }

type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type soapFaultXML struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

type faultDetail struct{ fault types.AnyType }

// MarshalXML writes <NameFault xmlns="urn:vim25" xsi:type="Name">, as vSphere does.
func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.fault, start)
}

// resBody writes the Res field of a methods.*Body as <NameResponse xmlns="urn:vim25">.
type resBody struct{ body soap.HasFault }

func (r *resBody) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	val := reflect.ValueOf(r.body).Elem().FieldByName("Res")
	if !val.IsValid() || val.IsNil() {
		return fmt.Errorf("%T: no response", r.body)
	}
	res := xml.StartElement{Name: xml.Name{Space: "urn:" + vim25.Namespace, Local: val.Elem().Type().Name()}}
	if err := e.EncodeElement(val.Interface(), res); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

const envelopeOpen = xml.Header +
	`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" ` +
	`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ` +
	`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`
const envelopeClose = `</soapenv:Body></soapenv:Envelope>`

func writeSOAP(w http.ResponseWriter, res soap.HasFault) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	if raw, ok := res.(*rawBody); ok {
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprint(w, envelopeOpen+raw.xml+envelopeClose)
		return
	}
	var body interface{}
	status := http.StatusOK
	if f := res.Fault(); f != nil {
		status = http.StatusInternalServerError
		sf := &soapFaultXML{Code: f.Code, String: f.String}
		if sf.Code == "" {
			sf.Code = "ServerFaultCode"
		}
		sf.Detail.Fault = &faultDetail{f.Detail.Fault}
		body = struct{ Fault *soapFaultXML }{sf}
	} else {
		body = &resBody{res}
	}
	var out bytes.Buffer
	out.WriteString(xml.Header)
	e := xml.NewEncoder(&out)
	err := e.Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		log.Printf("encoding response: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}

// taskResponse is "<NameResponse><returnval type="Task">task-N</returnval>" for a *_Task method.
func taskResponse(method string, task types.ManagedObjectReference) soap.HasFault {
	return &rawBody{xml: fmt.Sprintf(`<%sResponse xmlns="urn:%s"><returnval type="Task">%s</returnval></%sResponse>`,
		method, vim25.Namespace, task.Value, method)}
}

// fault wraps a vSphere fault with its message for a method answer.
func fault(msg string, f types.BaseMethodFault) *soap.Fault {
	return simulator.Fault(msg, f)
}

// ---------------------------------------------------------------------------------------- misc

// registryOf returns the registry vcsim serves on path (e.g. /pbm): Service keeps them in an
// unexported map, read here once after NewServer registered every endpoint.
func registryOf(svc *simulator.Service, path string) *simulator.Registry {
	sdk := reflect.ValueOf(svc).Elem().FieldByName("sdk")
	if !sdk.IsValid() {
		return nil
	}
	v := sdk.MapIndex(reflect.ValueOf(path))
	if !v.IsValid() || v.IsNil() {
		return nil
	}
	return (*simulator.Registry)(unsafe.Pointer(v.Pointer()))
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// serveUpload is vcsim's datastore file upload, charging the bytes written to the datastore's free space
// (vSphere's free space reflects every file; vcsim's counts only disks it creates, and credits every disk
// destroyed, uploaded or not).
func (f *fidelity) serveUpload(w http.ResponseWriter, r *http.Request) {
	ds := datastoreByName(r.URL.Query().Get("dsName"))
	var file string
	var before int64
	existed := false
	if ds != nil {
		file = filepath.Join(dsURL(ds), strings.TrimPrefix(r.URL.Path, "/folder/"))
		if st, err := os.Stat(file); err == nil {
			before, existed = st.Size(), true
		}
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	f.mux.ServeHTTP(rec, r)
	if ds == nil || rec.status >= 300 {
		return
	}
	if existed && strings.HasSuffix(file, ".vmdk") {
		// a disk's files are charged by its capacity (created) and credited by it (deleted):
		// rewriting one in place must not move free space, or a later delete credits it twice
		return
	}
	if st, err := os.Stat(file); err == nil {
		adjustFree(ds, before-st.Size())
	}
}
