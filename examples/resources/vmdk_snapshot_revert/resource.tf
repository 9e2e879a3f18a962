resource "vmdk_volume" "data" {
  name    = "app-data"
  size_gb = 10
}

resource "vmdk_snapshot" "before_upgrade" {
  volume_id = vmdk_volume.data.id
  name      = "before-upgrade"
  format    = "COW" # a point in the volume's history (a template snapshot is a separate copy)
}

# Revert the volume to the snapshot (COW snapshots only). Changing a trigger reverts again.
resource "vmdk_snapshot_revert" "rollback" {
  snapshot_id = vmdk_snapshot.before_upgrade.id

  triggers = {
    attempt = "1"
  }
}
