# A volume with a set of named snapshots: what a module author typically wraps.
resource "vmdk_volume" "this" {
  name      = var.name
  size_gb   = var.size_gb
  disk_type = var.disk_type
}

resource "vmdk_snapshot" "this" {
  for_each = var.snapshots

  volume_id = vmdk_volume.this.id
  name      = "${var.name}-${each.key}"
  format    = var.snapshot_format
}
