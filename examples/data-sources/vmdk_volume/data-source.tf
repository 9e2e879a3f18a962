# Look a volume up by display name (or by id) and use where it lives.
data "vmdk_volume" "shared" {
  name = "app-data"
}

output "shared_vmdk_path" {
  value = data.vmdk_volume.shared.vmdk_path
}

output "shared_connection_info" {
  value = data.vmdk_volume.shared.connection_info
}
