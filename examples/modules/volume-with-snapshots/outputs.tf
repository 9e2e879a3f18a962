output "volume_id" {
  description = "Id of the volume (the shadow VM's instance UUID)."
  value       = vmdk_volume.this.id
}

output "datastore" {
  description = "Datastore the volume was placed on."
  value       = vmdk_volume.this.datastore
}

output "connection_info" {
  description = "What a consumer needs to attach the volume."
  value       = vmdk_volume.this.connection_info
}

output "snapshot_ids" {
  description = "Snapshot ids by label."
  value       = { for label, s in vmdk_snapshot.this : label => s.id }
}
