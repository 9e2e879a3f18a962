terraform {
  required_providers {
    vmdk = {
      source = "pyvmdk/vmdk"
    }
  }
}

# Connection settings may come from the environment instead (VSPHERE_SERVER, VSPHERE_USER,
# VSPHERE_PASSWORD, VSPHERE_CA_FILE, VSPHERE_ALLOW_UNVERIFIED_SSL), as with terraform-provider-vsphere.
provider "vmdk" {
  vsphere_server = "vcenter.example.com"
  user           = "terraform@vsphere.local"
  password       = var.vsphere_password
  ca_file        = "/etc/ssl/certs/vcenter-ca.pem"

  datacenter      = "DC0"
  cluster_names   = ["DC0_C0"] # place volumes only on datastores of this cluster's hosts
  volume_folder   = "Volumes"  # VM folder holding the shadow VMs
  datastore_regex = "^ds-"     # only these datastores hold volumes
  snapshot_format = "template" # vmdk_snapshot default: a full copy that outlives its volume

  # Datastore types placement may use (default: vmfs, nfs, nfs41, vsan, vvol, as Cinder).
  # A vCenter simulator (vcsim) reports every datastore as OTHER: add "OTHER" to test against one.
  datastore_types = ["vmfs", "nfs", "nfs41", "vsan", "vvol"]

  api_timeout = 300 # seconds to wait for one vSphere answer before it counts as lost
}

variable "vsphere_password" {
  type      = string
  sensitive = true
}
