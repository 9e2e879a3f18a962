# A 10 GiB thin volume; the provider picks a datastore the way Cinder's VMDK driver does.
resource "vmdk_volume" "data" {
  name         = "app-data"
  description  = "Data disk of the app servers"
  size_gb      = 10
  disk_type    = "thin"
  adapter_type = "paraVirtual"

  timeouts {
    create = "15m"
  }
}

# A full copy of it, bigger than the source (the copy is extended after the clone).
resource "vmdk_volume" "copy" {
  name             = "app-data-copy"
  size_gb          = 20
  source_volume_id = vmdk_volume.data.id
  clone_type       = "full"
}

# A thick volume on a named datastore, compliant with a storage policy.
resource "vmdk_volume" "logs" {
  name           = "app-logs"
  size_gb        = 50
  disk_type      = "eagerZeroedThick"
  datastore      = "ds-big"
  storage_policy = "vmdk-gold"
}

output "data_vmdk_path" {
  value = vmdk_volume.data.vmdk_path
}

output "data_connection_info" {
  value = vmdk_volume.data.connection_info
}
