package main

// -stock: govmomi's default VPX model (or, with -esx, its ESX model), set up the way govmomi's own vcsim
// command does it; -untagged: the same model as a Go program embedding the simulator gets it
// (simulator.VPX() or simulator.ESX() and model.Service.NewServer(), as Go test suites use it).

import (
	"runtime"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/types"
)

// stockModel is simulator.VPX() (1 datacenter, 1 cluster of 3 hosts, 1 standalone host, 1 datastore,
// 2 VMs per resource pool) or, with esxHost, simulator.ESX() (ha-datacenter, one host, 1 datastore,
// 2 VMs), unchanged. tagged: as the vcsim command serves it, with the " (govmomi simulator)" tags on
// About.fullName and the host vendor, About.osType of this build, and hosts reporting the listen address
// as their management address (vcsim's updateHostTemplate). Untagged it is the model as the simulator
// package makes it. Only the listen address, TLS certificate and credentials differ (flags).
func stockModel(port int, esxHost, tagged bool) *simulator.Model {
	model := simulator.VPX()
	if esxHost {
		model = simulator.ESX()
	}
	if !tagged {
		return model
	}

	tag := " (govmomi simulator)"
	model.ServiceContent.About.FullName += tag
	model.ServiceContent.About.OsType = runtime.GOOS + "-" + runtime.GOARCH
	esx.HostSystem.Summary.Hardware.Vendor += tag

	// vcsim's updateHostTemplate: hosts report the listen address as their management address.
	addr := "127.0.0.1"
	esx.HostSystem.Summary.ManagementServerIp = addr
	if port != 0 {
		esx.HostSystem.Summary.Config.Port = int32(port)
	}
	info := &esx.HostConfigInfo
	nics := [][]types.HostVirtualNic{info.Network.Vnic}
	if info.Vmotion != nil && info.Vmotion.NetConfig != nil {
		nics = append(nics, info.Vmotion.NetConfig.CandidateVnic)
	}
	if info.VirtualNicManagerInfo != nil {
		for _, nc := range info.VirtualNicManagerInfo.NetConfig {
			nics = append(nics, nc.CandidateVnic)
		}
	}
	for _, nic := range nics {
		for i := range nic {
			if nic[i].Spec.Ip != nil {
				nic[i].Spec.Ip.IpAddress = addr
			}
		}
	}
	return model
}
