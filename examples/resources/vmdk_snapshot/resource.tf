resource "vmdk_volume" "db" {
  name    = "db-data"
  size_gb = 20
}

# A template snapshot: a full copy in its own shadow VM, which outlives the volume.
resource "vmdk_snapshot" "before_upgrade" {
  volume_id   = vmdk_volume.db.id
  name        = "before-upgrade"
  description = "Taken before the schema migration"
  format      = "template"
}

# A COW snapshot: a vSphere VM snapshot of the volume's shadow VM (cheap, but the volume
# cannot be extended while it exists).
resource "vmdk_snapshot" "quick" {
  volume_id = vmdk_volume.db.id
  name      = "quick"
  format    = "COW"
}

# A new volume restored from the snapshot.
resource "vmdk_volume" "db_restored" {
  name               = "db-data-restored"
  size_gb            = 20
  source_snapshot_id = vmdk_snapshot.before_upgrade.id
}
