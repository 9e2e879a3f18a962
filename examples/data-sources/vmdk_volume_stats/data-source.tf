# Capacity of the backend as Cinder's get_volume_stats reports it.
data "vmdk_volume_stats" "backend" {
  storage_policies = ["vmdk-gold"]
}

output "free_capacity_gb" {
  value = data.vmdk_volume_stats.backend.free_capacity_gb
}

output "volume_count" {
  value = data.vmdk_volume_stats.backend.volume_count
}
