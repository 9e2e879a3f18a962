# A data volume that outlives its VM: the volume is a vmdk_volume (a shadow VM holds it when detached), the
# attachment puts its VMDK on the VM the way Nova does. Destroying the module detaches first (the
# attachment depends on the volume), so the volume's file is never destroyed with the VM.
resource "vmdk_volume" "this" {
  name    = var.name
  size_gb = var.size_gb
}

resource "vmdk_volume_attachment" "this" {
  volume_id       = vmdk_volume.this.id
  virtual_machine = var.vm_path
  disk_mode       = var.disk_mode
}
