package main

// Disk files as on ESXi: "[ds] dir/name.vmdk" is a text descriptor, "dir/name-flat.vmdk" a sparse
// raw extent of the disk's capacity. Helpers to resolve datastore paths, write descriptors, copy
// and convert extents (qemu-img), and keep a VM's disk files in step with its inventory.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/ioutil"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const sectorSize = 512

func datastoreByName(name string) *simulator.Datastore {
	for _, e := range simulator.Map.All("Datastore") {
		if ds := e.(*simulator.Datastore); ds.Name == name {
			return ds
		}
	}
	return nil
}

func dsURL(ds *simulator.Datastore) string { return ds.Info.GetDatastoreInfo().Url }

// localPath turns "[ds] a/b.vmdk" into the file's path on this machine.
func localPath(dsPath string) (string, *simulator.Datastore, types.BaseMethodFault) {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return "", nil, &types.InvalidDatastorePath{DatastorePath: dsPath}
	}
	ds := datastoreByName(p.Datastore)
	if ds == nil {
		return "", nil, &types.InvalidDatastore{Name: p.Datastore}
	}
	return filepath.Join(dsURL(ds), p.Path), ds, nil
}

// flatName: "x.vmdk" -> "x-flat.vmdk" (as vcsim's own disk manager names it).
func flatName(desc string) string {
	return strings.TrimSuffix(desc, ".vmdk") + "-flat.vmdk"
}

func diskCapacity(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes > 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

func setCapacity(d *types.VirtualDisk, bytes int64) {
	d.CapacityInBytes = bytes
	d.CapacityInKB = bytes / 1024
}

// ------------------------------------------------------------------------------------ descriptor

type descriptor struct {
	cid, parentCID string
	createType     string
	sectors        int64
	extent         string // file name of the extent, relative to the descriptor
	extentType     string // VMFS (a flat extent) or VMFSSPARSE (a snapshot's delta); "" reads as VMFS
	parentHint     string
	adapter        string
	thin           bool
	uuid           string // ddb.uuid, "60 00 C2 ..." form
	longContentID  string
	hwVersion      string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newDiskUUID is a VMware-style disk UUID ("6000C29x-...") as vSphere shows it in backing.uuid.
func newDiskUUID() string {
	h := "6000C29" + randomHex(13)[:25]
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// ddbUUID: "6000C29d-aaaa-bbbb-cccc-dddddddddddd" -> "60 00 C2 9d aa aa bb bb-cc cc dd dd dd dd dd dd".
func ddbUUID(u string) string {
	h := strings.NewReplacer("-", "", " ", "").Replace(u)
	if len(h) != 32 || !isHex(h) {
		return ""
	}
	var pairs []string
	for i := 0; i < 32; i += 2 {
		pairs = append(pairs, h[i:i+2])
	}
	return strings.Join(pairs[:8], " ") + "-" + strings.Join(pairs[8:], " ")
}

// backingUUID: the inverse of ddbUUID.
func backingUUID(d string) string {
	h := strings.NewReplacer("-", "", " ", "").Replace(d)
	if len(h) != 32 || !isHex(h) {
		return ""
	}
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func readDescriptor(file string) *descriptor {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, 4)
	if n, _ := io.ReadFull(f, head); n == 4 && string(head) == "KDMV" {
		return nil // a hosted sparse disk, not a descriptor
	}
	_, _ = f.Seek(0, io.SeekStart)
	d := &descriptor{}
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	found := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "RW ") || strings.HasPrefix(line, "RDONLY ") {
			fields := strings.Fields(line)
			if len(fields) >= 4 {
				d.sectors, _ = strconv.ParseInt(fields[1], 10, 64)
				d.extentType = fields[2]
				d.extent = strings.Trim(strings.Join(fields[3:4], " "), `"`)
				found = true
			}
			continue
		}
		kv := strings.SplitN(line, "=", 2)
		if len(kv) != 2 {
			continue
		}
		k, v := strings.TrimSpace(kv[0]), strings.Trim(strings.TrimSpace(kv[1]), `"`)
		switch k {
		case "CID":
			d.cid = v
		case "parentCID":
			d.parentCID = v
		case "createType":
			d.createType = v
			found = true
		case "parentFileNameHint":
			d.parentHint = v
		case "ddb.adapterType":
			d.adapter = v
		case "ddb.thinProvisioned":
			d.thin = v == "1"
		case "ddb.uuid":
			d.uuid = v
		case "ddb.longContentID":
			d.longContentID = v
		case "ddb.virtualHWVersion":
			d.hwVersion = v
		}
	}
	if !found {
		return nil
	}
	return d
}

// isDelta: a snapshot's delta disk (ESXi's vmfsSparse redo log).
func (d *descriptor) isDelta() bool { return d.createType == deltaCreateType }

func (d *descriptor) render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=%s\nparentCID=%s\n", d.cid, d.parentCID)
	if d.isDelta() {
		b.WriteString("isNativeSnapshot=\"no\"\n")
	}
	fmt.Fprintf(&b, "createType=\"%s\"\n", d.createType)
	if d.parentHint != "" {
		fmt.Fprintf(&b, "parentFileNameHint=\"%s\"\n", d.parentHint)
	}
	extentType := d.extentType
	if extentType == "" {
		extentType = "VMFS"
	}
	fmt.Fprintf(&b, "\n# Extent description\nRW %d %s \"%s\"\n\n# The Disk Data Base\n#DDB\n\n", d.sectors, extentType, d.extent)
	if d.isDelta() {
		// A redo log's data base holds its content id (and here the disk's uuid, which the device
		// keeps); the geometry and adapter are the base disk's.
		fmt.Fprintf(&b, "ddb.longContentID = \"%s\"\n", d.longContentID)
		if d.uuid != "" {
			fmt.Fprintf(&b, "ddb.uuid = \"%s\"\n", d.uuid)
		}
		return b.Bytes()
	}
	heads, secs := 255, 63
	if d.adapter == "ide" {
		heads = 16
	}
	cyl := d.sectors / int64(heads*secs)
	if cyl > 65535 {
		cyl = 65535
	}
	fmt.Fprintf(&b, "ddb.adapterType = \"%s\"\n", d.adapter)
	fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\nddb.geometry.heads = \"%d\"\nddb.geometry.sectors = \"%d\"\n", cyl, heads, secs)
	fmt.Fprintf(&b, "ddb.longContentID = \"%s\"\n", d.longContentID)
	if d.thin {
		b.WriteString("ddb.thinProvisioned = \"1\"\n")
	}
	fmt.Fprintf(&b, "ddb.uuid = \"%s\"\nddb.virtualHWVersion = \"%s\"\n", d.uuid, d.hwVersion)
	return b.Bytes()
}

// newDescriptor for a flat disk of capacity bytes whose extent sits next to desc.
func newDescriptor(desc string, capacity int64, adapter string, thin bool) *descriptor {
	return &descriptor{
		cid: randomHex(4), parentCID: "ffffffff", createType: "vmfs",
		sectors: (capacity + sectorSize - 1) / sectorSize, extent: filepath.Base(flatName(desc)),
		adapter: adapter, thin: thin, uuid: ddbUUID(newDiskUUID()), longContentID: randomHex(16), hwVersion: "13",
	}
}

func writeFileAtomic(file string, data []byte) error {
	tmp := file + ".tmp-vmdk"
	if err := ioutil.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// ---------------------------------------------------------------------------------------- extents

// growFile makes file exist with at least size bytes (sparse), never shrinking it.
func growFile(file string, size int64) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < size {
		return f.Truncate(size)
	}
	return nil
}

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

// copySparse copies src to dst (created or truncated) keeping holes, then sizes dst to size
// (size < 0: src's size).
func copySparse(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	end := st.Size()
	fd := int(in.Fd())
	for off := int64(0); off < end; {
		data, err := syscall.Seek(fd, off, seekData)
		if err != nil { // ENXIO: no data after off (or no SEEK_DATA support: copy the rest)
			if err == syscall.ENXIO {
				break
			}
			data = off
		}
		hole, err := syscall.Seek(fd, data, seekHole)
		if err != nil || hole > end {
			hole = end
		}
		if err := copyRange(in, out, data, hole); err != nil {
			return err
		}
		off = hole
	}
	if size < 0 {
		size = end
	}
	return out.Truncate(size)
}

func copyRange(in, out *os.File, from, to int64) error {
	buf := make([]byte, 1<<20)
	for off := from; off < to; {
		n := int64(len(buf))
		if to-off < n {
			n = to - off
		}
		got, err := in.ReadAt(buf[:n], off)
		if got > 0 {
			if _, werr := out.WriteAt(buf[:got], off); werr != nil {
				return werr
			}
			off += int64(got)
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
	return nil
}

// moveFile renames, or copies and removes across file systems.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if err := copySparse(src, dst, -1); err != nil {
		return err
	}
	return os.Remove(src)
}

// qemuImg runs qemu-img and returns its error output on failure.
func qemuImg(args ...string) error {
	cmd := exec.Command("qemu-img", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// isHostedVMDK: a sparse VMDK (monolithicSparse, streamOptimized) starts with "KDMV".
func isHostedVMDK(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	return n == 4 && string(head) == "KDMV"
}

// ----------------------------------------------------------------------------------- VM disks

// adapterOf names the descriptor adapter type of the controller a disk hangs on.
func adapterOf(devices []types.BaseVirtualDevice, d *types.VirtualDisk) string {
	for _, dev := range devices {
		if dev.GetVirtualDevice().Key != d.ControllerKey {
			continue
		}
		switch dev.(type) {
		case *types.VirtualBusLogicController:
			return "buslogic"
		case *types.ParaVirtualSCSIController:
			return "pvscsi"
		case *types.VirtualLsiLogicSASController:
			return "lsilogic"
		case *types.VirtualIDEController:
			return "ide"
		}
	}
	return "lsilogic"
}

func vmDisks(vm *simulator.VirtualMachine) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	if vm.Config == nil {
		return nil
	}
	for _, dev := range vm.Config.Hardware.Device {
		if d, ok := dev.(*types.VirtualDisk); ok {
			if _, flat := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); flat {
				out = append(out, d)
			}
		}
	}
	return out
}

func flatBacking(d *types.VirtualDisk) *types.VirtualDiskFlatVer2BackingInfo {
	b, _ := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	return b
}

// parentHint is how ESXi names a parent in a child's descriptor: relative on the same datastore.
func parentHint(child, parent string) string {
	var c, p object.DatastorePath
	c.FromString(child)
	p.FromString(parent)
	if c.Datastore == p.Datastore {
		if rel, err := filepath.Rel(path.Dir(c.Path), p.Path); err == nil {
			return rel
		}
	}
	return "/vmfs/volumes/" + p.Datastore + "/" + p.Path
}

// syncDisk brings one disk's files in step with its inventory entry: the extent exists and is at
// least the capacity, the descriptor describes it (size, provisioning, parent, uuid); backing.uuid is
// set. A descriptor that already describes a disk keeps what the inventory does not own (adapter,
// type, extent, ids) and only grows: an attached disk (capacityInKB 0 in the request, filled from the
// file by attachFromFile) leaves its descriptor byte for byte as it was.
func syncDisk(vm *simulator.VirtualMachine, d *types.VirtualDisk) {
	b := flatBacking(d)
	if b == nil || b.FileName == "" {
		return
	}
	desc, _, f := localPath(b.FileName)
	if f != nil {
		return
	}
	if _, err := os.Stat(desc); err != nil {
		return // not ours to create (vcsim refused the device, or it is gone)
	}
	capacity := diskCapacity(d)
	thin := b.ThinProvisioned != nil && *b.ThinProvisioned
	cur := readDescriptor(desc)
	var next descriptor
	if cur != nil && (cur.sectors > 0 || cur.isDelta()) {
		next = *cur
		if s := (capacity + sectorSize - 1) / sectorSize; s > next.sectors {
			next.sectors = s
		}
		if !next.isDelta() {
			next.thin = thin
		}
	} else {
		next = *newDescriptor(desc, capacity, adapterOf(vm.Config.Hardware.Device, d), thin)
		if cur != nil {
			next.cid, next.longContentID, next.uuid = cur.cid, cur.longContentID, cur.uuid
			if cur.hwVersion != "" {
				next.hwVersion = cur.hwVersion
			}
		}
	}
	if err := growFile(filepath.Join(filepath.Dir(desc), next.extent), next.sectors*sectorSize); err != nil {
		return
	}
	switch {
	case b.Uuid != "" && ddbUUID(b.Uuid) != "":
		next.uuid = ddbUUID(b.Uuid)
	case next.uuid != "":
		b.Uuid = backingUUID(next.uuid)
	}
	if b.Parent != nil {
		next.parentHint = parentHint(b.FileName, b.Parent.FileName)
		if next.parentCID == "" || next.parentCID == "ffffffff" {
			next.parentCID = "fffffffe"
		}
		if pd, _, f := localPath(b.Parent.FileName); f == nil {
			if p := readDescriptor(pd); p != nil {
				next.parentCID = p.cid
			}
		}
	}
	if cur == nil || !bytes.Equal(cur.render(), next.render()) {
		_ = writeFileAtomic(desc, next.render())
	}
}

// extentOf is the local path of the file holding a disk's bytes: the extent its descriptor names
// (a "-flat.vmdk", or a snapshot's "-delta.vmdk"), else the "-flat.vmdk" next to it.
func extentOf(desc string) string {
	if d := readDescriptor(desc); d != nil && d.extent != "" {
		return filepath.Join(filepath.Dir(desc), d.extent)
	}
	return flatName(desc)
}

func syncDisks(vm *simulator.VirtualMachine) {
	for _, d := range vmDisks(vm) {
		syncDisk(vm, d)
	}
}

// syncAllDisks gives the VMs vcsim made at start-up their disk files.
func syncAllDisks() {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		simulator.Map.WithLock(vm, func() { syncDisks(vm) })
	}
}

// vmDir is the VM's folder as a datastore path ("[ds] name").
func vmDir(vm *simulator.VirtualMachine) object.DatastorePath {
	var p object.DatastorePath
	p.FromString(vm.Config.Files.VmPathName)
	if path.Ext(p.Path) == ".vmx" {
		p.Path = path.Dir(p.Path)
	}
	return p
}

// datacenterOf finds the datacenter above an entity.
func datacenterOf(e mo.Entity) *simulator.Datacenter {
	for e != nil {
		if dc, ok := e.(*simulator.Datacenter); ok {
			return dc
		}
		p := e.Entity().Parent
		if p == nil {
			return nil
		}
		e, _ = simulator.Map.Get(*p).(mo.Entity)
	}
	return nil
}
