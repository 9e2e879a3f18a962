output "volume_id" {
  description = "The volume's id."
  value       = vmdk_volume.this.id
}

output "device_address" {
  description = "Where the VM sees the disk, e.g. scsi:0:1."
  value       = vmdk_volume_attachment.this.device_address
}

output "vmdk_path" {
  description = "The VMDK as the VM sees it."
  value       = vmdk_volume_attachment.this.vmdk_path
}
