// Command vcsim serves the vCenter simulator model used by terraform-provider-vmdk's tests.
//
// Build (GOPATH mode, Debian's govmomi 0.24.2):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o tests/vcsim/bin/vcsim ./tests/vcsim
//
// Once listening it prints one line to stdout: "VCSIM_URL=https://user:pass@127.0.0.1:PORT/sdk".
//
// Modes (every difference from stock vcsim, with its evidence, is in FIDELITY.md):
//
//	(default)        our vCenter model (below) with the fidelity layer and the /vmdk-test endpoints.
//	-esx             a standalone ESXi host: govmomi's ESX model (simulator.ESX(): datacenter ha-datacenter,
//	                 host localhost.localdomain, about.apiType HostAgent, vcsim's LocalDS_0, 1 VM ha-host_VM0)
//	                 plus the VMFS datastores datastore1 (1 TiB, 800 GiB free) and datastore2 (500 GiB, 200 GiB
//	                 free) on the host, with the fidelity layer less what a host agent does not do (esx.go):
//	                 CloneVM_Task/RelocateVM_Task fail with NotSupported, MarkAsTemplate/MarkAsVirtualMachine
//	                 answer NotSupported, no PBM endpoint (no placement solver, no /vmdk-test/tag), no folders
//	                 below the root folders and no StoragePod (vcsim's ESX model refuses those itself);
//	                 CopyVirtualDisk takes a destSpec and datastore paths need no datacenter.
//	-stock           govmomi's default VPX model exactly as a stock `vcsim` does (datacenter DC0, cluster
//	                 DC0_C0 of 3 hosts, standalone host DC0_H0, datastore LocalDS_0 of type OTHER, VMs
//	                 DC0_H0_VM0/1 and DC0_C0_RP0_VM0/1, vcsim's PBM profiles), with none of what follows: no
//	                 extra datastores, no profile, no tag table, no fidelity layer, no /vmdk-test endpoints.
//	                 With -esx: govmomi's ESX model as `vcsim -esx` serves it.
//	-untagged        as -stock (implied), but the model as a Go program embedding the simulator gets it
//	                 (simulator.VPX() or, with -esx, simulator.ESX(), and model.Service.NewServer()): no
//	                 "(govmomi simulator)" tag in About.fullName and the host vendor, About.osType and the hosts'
//	                 management address as the model has them.
//
// With -stock/-untagged only -port, -user, -password, -cert, -key and -url-file apply.
//
// Default model (datacenter DC0):
//
//	hosts     DC0_H0 (standalone), DC0_C0_H0..2 (cluster DC0_C0), DC0_C1_H0..2 (cluster DC0_C1)
//	LocalDS_0 vcsim's own datastore, type OTHER, on all 7 hosts, free space of the real file system
//	ds-big    VMFS, C0+C1 (6 hosts), 4 TiB, 3 TiB free        tag tier=gold
//	ds-c0     VMFS, C0 (3 hosts),    1 TiB, 300 GiB free
//	ds-c1     VMFS, C1 (3 hosts),    2 TiB, 1.5 TiB free      tag tier=gold
//	ds-small  VMFS, C0_H0 (1 host),  100 GiB, 20 GiB free
//	ds-maint  VMFS, C0+C1, 8 TiB free, summary.maintenanceMode = inMaintenance
//	ds-gone   VMFS, C1, 8 TiB free, summary.accessible = false (mounts inaccessible)
//
// Datastore clusters (StoragePods) in DC0's datastore folder, with member datastores of their own (VMFS;
// every member on DC0_C0_H1 and DC0_C0_H2 except gold-3, on DC0_C0_H2 only; sizes in GiB, capacity/free):
//
//	pod-gold    Storage DRS on, automated   gold-1 1000/400, gold-2 900/280, gold-3 500/180
//	pod-silver  Storage DRS on, manual      silver-1 1200/600, silver-2 600/160
//	pod-off     Storage DRS off (manual)    off-1 700/256, off-2 800/200
//
// Every pod has defaultIntraVmAffinity true, loadBalanceInterval 480, space threshold 80 % (utilization).
// A datastore listing of DC0 (a recursive container view) includes the members, as vCenter's does.
//
// PBM is served on /pbm with vcsim's built-in profiles plus "vmdk-gold" (created here: one rule set,
// tag rule category "tier" = "gold"). The placement solver (pbm.go) evaluates policies against the
// datastores instead of answering "every datastore":
//
//	namespace http://www.vmware.com/storage/tag   the datastore carries a tag of that category with a
//	                                              requested value (table above; /vmdk-test/tag edits it)
//	namespace VSAN                                datastore type vsan (none here)
//	namespace PMem                                datastore type PMEM (none here)
//	namespace com.vmware.storageprofile.dataservice  any datastore (host-based data services)
//	other namespaces                              no datastore
//	policy without rules                          any datastore
//
// A policy is met by a datastore that meets all rules of any one of its rule sets. PbmCheckRequirements
// and PbmCheckCompatibility answer one result per hub asked (all datastores when none are given), with
// a PbmPropertyMismatchFault in "error" for a hub that does not comply; PbmQueryMatchingHub answers the
// complying hubs.
//
// Fidelity layer (soap.go and the files it names) over vcsim 0.24.2, so that it does what vSphere does
// (our vCenter model and -esx):
//
//   - Disk files are laid out as on ESXi: "[ds] dir/name.vmdk" is a text descriptor, "dir/name-flat.vmdk"
//     a sparse raw extent of the disk's capacity holding its bytes (datastore HTTP GET of it gives them).
//     Thin, lazy and eager-zeroed disks all have sparse extents (the type lives in the backing and in the
//     descriptor's ddb.thinProvisioned); a linked clone's child disk has a descriptor naming its parent
//     (parentFileNameHint) and a materialised extent (the parent's bytes at clone time).
//     backing.uuid is set (ddb.uuid in the descriptor follows it).
//   - Disk chains (chains.go; evidence per behaviour in FIDELITY.md): CreateSnapshot puts every disk that
//     is not independent on a new delta "<disk>-00000N.vmdk" (vmfsSparse descriptor, "-delta.vmdk" extent
//     holding the disk's current bytes) next to the disk it grows from, backing.parent = the previous
//     backing (chains nest); the snapshot's config keeps the old devices. RemoveSnapshot (consolidate
//     unset or true; removeChildren) and RemoveAllSnapshots merge a delta into its parent when that file
//     has no other child in any VM's chains and is nobody's running or snapshot disk, re-pointing every
//     reference; RevertToSnapshot/RevertToCurrentSnapshot give each disk a fresh delta of the snapshot's
//     file and delete the old one; Destroy deletes every chain file no other VM uses and keeps a linked
//     clone's parent even inside the destroyed VM's folder.
//   - CloneVM_Task leaves the source alone, copies each disk into the clone's own files, honours disk
//     locators (datastore, diskBackingInfo thin/eager), spec.location.transform, spec.snapshot, and
//     createNewChildDiskBacking (child disk, backing.parent = the snapshot's disk and its chain); a full
//     clone of a snapshotted VM is one flat disk of the current (or spec.snapshot's) state; the clone
//     inherits the source's extraConfig/annotation with spec.config applied on top, and gets a new uuid
//     and instanceUuid unless spec.config gives them (vcsim derives both from the clone's path).
//   - RelocateVM_Task moves the VM's folder and disks to the target datastores (files move, backings and
//     vm.datastore follow; a snapshotted VM's own chain files move along, snapshot configs follow) and
//     converts disks as the locators ask; diskMoveType per disk (a locator's overrides the spec's):
//     moveChildMostDiskBacking moves the top file only, createNewChildDiskBacking leaves every file and
//     puts a new child disk on the target, the moveAll* types move the whole chain (Consolidate does not
//     consolidate on relocate). A disk file that a powered-on other VM holds is locked (FileLocked, nothing
//     moves); one that a powered-off other VM holds moves and leaves that VM's device on a missing file,
//     whose own relocate then fails with FileNotFound.
//   - ReconfigVM_Task refuses to shrink a disk, and to grow a disk that has a parent or whose VM has
//     snapshots (InvalidDeviceOperation, as vSphere: "Invalid operation for device 'N'."); extraConfig
//     keys are updated in place (an empty value removes the key) instead of appended. Adding an existing
//     VMDK (no fileOperation, capacityInKB 0, as Nova/govmomi/terraform-provider-vsphere attach) takes
//     capacity, thin flag, uuid and parent chain from the file and leaves its descriptor untouched.
//   - New VMs (CreateVM, clone, import) get their folder as vCenter names it (name, name_1... when taken)
//     and their new disks inside it; RelocateVM does the same on the target datastore.
//   - CreateSnapshot keeps a deep copy of the config (vcsim shares device objects with the VM);
//     RenameSnapshot (absent in vcsim) renames a snapshot; removing a snapshot keeps currentSnapshot and
//     childSnapshot in step with the tree and deletes its .vmsn by name.
//   - TaskInfo.entity is a managed entity (a snapshot's VM, or none for the file and disk managers).
//   - ImportVApp leases take uploads (streamOptimized VMDK or raw) into the disks; aborting an import
//     removes the VM. ExportVm leases serve each disk (its current data, also on a delta) as a
//     streamOptimized VMDK. qemu-img does the conversions.
//   - VirtualDiskManager: Create/Copy/Move/Delete/Extend/QueryVirtualDiskUuid/SetVirtualDiskUuid follow
//     the layout; CopyVirtualDisk of a hosted sparse VMDK (e.g. uploaded over HTTP) makes a descriptor and
//     a flat extent of its data; a copy of a snapshot's delta is a standalone flat disk. On vCenter a
//     datastore path needs its datacenter (InvalidArgument "dc", as stock) and CopyVirtualDisk's destSpec
//     is NotImplemented (as stock); without a destSpec the copy is preallocated (not thin) with a busLogic
//     descriptor ("If not specified, a preallocated format and busLogic adapter type is assumed"), and
//     force is ignored (FileAlreadyExists). On -esx the destSpec's disk type and adapter are honoured.
//     Disk types other than thin/preallocated/thick/eagerZeroedThick are not modelled (NotImplemented;
//     CreateVirtualDisk refuses the clone-only hosted types with InvalidArgument).
//   - Methods delayed with /vmdk-test/delay run their task in the background, as a real vCenter does;
//     CancelTask ends such a running task in error RequestCanceled without doing its work (CreateVM/CloneVM
//     make no VM), and answers InvalidState for a finished task.
//   - Datastore free space: growing a disk charges the growth, attaching an existing disk nothing (vcsim
//     charged the whole capacity each time); creating a disk still charges its capacity, thin or not.
//   - CreateVM_Task without a host picks one that mounts the VM's datastore from a copy of the compute
//     resource's host list (vcsim filtered the cluster's own list in place, losing and duplicating hosts).
//   - Datastore clusters (sdrs.go; vCenter model only): MoveIntoFolder puts datastores into a pod once each
//     and takes them out again; container views list pod members (once each, parent = the pod); a pod's
//     summary is the sums of its members; Destroy_Task removes an empty pod. RecommendDatastores (create,
//     clone, relocate, reconfigure) needs a pod with Storage DRS enabled (else InvalidArgument
//     podSelectionSpec.storagePod) and takes the members that are accessible, not in maintenance, mounted
//     by a usable host of spec.host, else the pool's compute resource, else the VM's host, comply with the
//     locators' policies and have room (free space less leased space >= the disks' capacity); it ranks them
//     by space utilisation after placement (then free space, then name), ratings 5 down to 1, keys unique
//     across calls; with none left: no recommendation and drsFault (InsufficientStorageSpace, or
//     NoCompatibleDatastore). storagePod alone places the VM's files and the disks without a locator;
//     intra-VM affinity keeps a reconfigure's new disks with the VM; a linked clone stays with its base disk.
//     ApplyStorageDrsRecommendation(ToPod)_Task runs CreateVM/CloneVM/RelocateVM/ReconfigVM onto the chosen
//     member in a task on the pod, whose result is an ApplyStorageRecommendationResult (vm set for create
//     and clone); an unknown or applied key (or another of the same call, once one is applied) is
//     InvalidArgument. CancelStorageDrsRecommendation drops keys; RefreshStorageDrsRecommendation makes no
//     migration recommendation. Storage DRS moves nothing by itself: /vmdk-test/svmotion does.
//
// Test control endpoints (not part of vSphere), all POST with form values:
//
//	/vmdk-test/datastore  name (required), and any of accessible=true|false,
//	                      maintenance=normal|enteringMaintenance|inMaintenance, capacity=<bytes>, free=<bytes>.
//	/vmdk-test/task       seconds=<float>, optional fault=NoDiskSpace|FileAlreadyExists|FileNotFound: starts a
//	                      task on the root folder that runs that long, then succeeds (result: the root folder)
//	                      or fails; the answer body is the task's moref value. It can be cancelled.
//	/vmdk-test/delay      method=<Name_Task>, seconds=<float> (0 clears), optional count=<n>: the next n (default:
//	                      all) calls of that method return their task at once, running; the work happens after
//	                      the delay. GET lists the delays as JSON.
//	/vmdk-test/tag        datastore=<name>, category=<name>, tag=<name> (empty: remove the category's tags);
//	                      not in -esx (a host has no PBM).
//	/vmdk-test/pod        name=<pod> (required), and any of sdrs=on|off, behavior=manual|automated,
//	                      add=<ds>,<ds>... (moved into the pod), remove=<ds>,... (moved out to the datastore
//	                      folder); GET lists the pods as JSON [{name, sdrs, behavior, datastores}]. Not in -esx.
//	/vmdk-test/svmotion   vm=<name or moref value>, datastore=<name>, optional disk=<device key>: moves the VM's
//	                      files and disks (or that disk only) as a storage vMotion by Storage DRS or an
//	                      administrator would (RelocateVM's work; only this VM's backings follow). 204, or 409
//	                      "<Fault>: <message>" (e.g. DatastoreNotWritableOnHost), 404 for an unknown VM or
//	                      datastore. Not in -esx.
//	/vmdk-test/nfc        scheme=<http|https>, host=<host[:port]> (empty: https and "*", the defaults, as stock vcsim
//	                      gives them; "*" is what an ESXi host answers, vCenter names a host): the device URLs of
//	                      leases made from now on name them (the simulator serves the disk whatever they say).
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

	"github.com/vmware/govmomi/simulator"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (0 = pick a free one)")
	user := flag.String("user", "vmdk", "login user")
	pass := flag.String("password", "vmdk-secret", "login password")
	certFile := flag.String("cert", "", "PEM server certificate (empty = plain HTTP)")
	keyFile := flag.String("key", "", "PEM server key")
	urlFile := flag.String("url-file", "", "also write the URL to this file once listening")
	stockFlag := flag.Bool("stock", false, "serve govmomi's default VPX model as a stock vcsim does (none of our changes)")
	untagged := flag.Bool("untagged", false, "serve govmomi's model as a Go program embedding the simulator gets "+
		"it: no vcsim command tags (implies -stock)")
	esxFlag := flag.Bool("esx", false, "a standalone ESXi host (govmomi's ESX model, ha-datacenter) instead of vCenter")
	flag.Parse()
	stock := *stockFlag || *untagged
	esxMode = *esxFlag

	// Catch signals before anything exists to clean up, so an early SIGTERM still runs the defers.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	var model *simulator.Model
	switch {
	case stock:
		model = stockModel(*port, esxMode, !*untagged)
	case esxMode:
		model = esxModel()
	default:
		model = ourModel()
	}
	model.Service = nil
	if err := model.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	defer model.Remove()

	switch {
	case stock:
	case esxMode:
		dirs, err := addESXDatastores()
		defer removeAll(dirs)
		if err != nil {
			log.Fatal(err)
		}
	default:
		dirs, err := addOurDatastores()
		defer removeAll(dirs)
		if err != nil {
			log.Fatal(err)
		}
		podDirs, err := addOurPods()
		defer removeAll(podDirs)
		if err != nil {
			log.Fatal(err)
		}
		if err := addProfile("vmdk-gold", "Test policy of terraform-provider-vmdk: tag tier=gold"); err != nil {
			log.Fatalf("pbm profile: %v", err)
		}
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
	mux := http.NewServeMux()
	model.Service.ServeMux = mux
	if !stock {
		mux.HandleFunc("/vmdk-test/datastore", controlDatastore)
		mux.HandleFunc("/vmdk-test/task", slowTask(model.ServiceContent.RootFolder))
		mux.HandleFunc("/vmdk-test/delay", controlDelay)
		if !esxMode { // tags feed the PBM placement solver, which a host does not have; nor has it pods
			mux.HandleFunc("/vmdk-test/tag", controlTag)
			mux.HandleFunc("/vmdk-test/pod", controlPod)
			mux.HandleFunc("/vmdk-test/svmotion", controlSvmotion)
		}
		mux.HandleFunc("/vmdk-test/nfc", controlNFC)
	}

	server := model.Service.NewServer()
	defer server.Close()

	if !stock {
		if err := installFidelity(model.Service, server, mux); err != nil {
			log.Fatalf("fidelity layer: %v", err)
		}
	}

	line := "VCSIM_URL=" + server.URL.String()
	if *urlFile != "" {
		if err := ioutil.WriteFile(*urlFile, []byte(server.URL.String()+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(line)

	<-sig
}
