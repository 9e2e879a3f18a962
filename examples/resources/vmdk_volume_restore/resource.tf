resource "vmdk_volume" "data" {
  name    = "app-data"
  size_gb = 10
}

# Put a backup back onto the existing volume (it keeps its id). Refused while the volume has snapshots or
# is attached to a VM. Changing a trigger (or backup_path) restores again.
resource "vmdk_volume_restore" "data" {
  volume_id   = vmdk_volume.data.id
  backup_path = "/var/backups/vmdk/app-data-2026-11-01"

  triggers = {
    ticket = "OPS-1234"
  }
}
