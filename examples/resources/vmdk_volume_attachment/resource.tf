resource "vmdk_volume" "data" {
  name    = "app-data"
  size_gb = 20
}

# By inventory path; or virtual_machine_id = vsphere_virtual_machine.app.id (its UUID).
resource "vmdk_volume_attachment" "data" {
  volume_id       = vmdk_volume.data.id
  virtual_machine = "DC0/vm/app-1"
}

output "device" {
  value = vmdk_volume_attachment.data.device_address # e.g. scsi:0:1
}
