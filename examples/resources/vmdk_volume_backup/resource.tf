resource "vmdk_volume" "data" {
  name    = "app-data"
  size_gb = 10
}

# A backup directory: disk.vmdk (streamOptimized) and manifest.json. Each backup has its own directory.
resource "vmdk_volume_backup" "nightly" {
  volume_id = vmdk_volume.data.id
  path      = "/var/backups/vmdk/app-data-2026-11-29"
}

# A new volume from that backup.
resource "vmdk_volume" "copy" {
  name    = "app-data-from-backup"
  size_gb = vmdk_volume_backup.nightly.size_gb

  backup {
    path = vmdk_volume_backup.nightly.path
  }
}
