# Constants; needs no vSphere connection.
data "vmdk_disk_types" "all" {}

output "volume_disk_types" {
  value = data.vmdk_disk_types.all.volume_disk_types # ["thin", "thick", "eagerZeroedThick"]
}

output "adapter_types" {
  value = data.vmdk_disk_types.all.adapter_types
}
