# A 10 GiB thin volume; the provider picks a datastore the way Cinder's VMDK driver does.
resource "vmdk_volume" "data" {
  name         = "app-data"
  description  = "Data disk of the app servers"
  size_gb      = 10
  disk_type    = "thin"
  adapter_type = "paraVirtual"

  timeouts {
    create = "15m"
  }
}

# A full copy of it, bigger than the source (the copy is extended after the clone).
resource "vmdk_volume" "copy" {
  name             = "app-data-copy"
  size_gb          = 20
  source_volume_id = vmdk_volume.data.id
  clone_type       = "full"
}

# A thick volume on a named datastore, compliant with a storage policy.
resource "vmdk_volume" "logs" {
  name           = "app-logs"
  size_gb        = 50
  disk_type      = "eagerZeroedThick"
  datastore      = "ds-big"
  storage_policy = "vmdk-gold"
}

output "data_vmdk_path" {
  value = vmdk_volume.data.vmdk_path
}

output "data_connection_info" {
  value = vmdk_volume.data.connection_info
}

# A volume seeded from an image file (what Glance holds for Cinder): a streamOptimized VMDK from a web
# server, checked against its SHA-256 before anything is created, grown to size_gb.
resource "vmdk_volume" "from_image" {
  name      = "ubuntu-root"
  size_gb   = 20
  disk_type = "thin"

  image {
    source    = "https://images.example.com/ubuntu-22.04.vmdk"
    disk_type = "streamOptimized"
    sha256    = "0f3a6c1e8d2b4a5f9e7c1d3b5a7f9e1c3d5b7a9f1e3c5d7b9a1f3e5c7d9b1a3f"
  }
}

# A volume made from a backup that vmdk_volume_backup wrote.
resource "vmdk_volume" "restored" {
  name    = "app-data-restored"
  size_gb = 10

  backup {
    path = "/var/backups/vmdk/app-data-2026-11-01"
  }
}

# Adopt an existing VMDK (Cinder's manage_existing): detached from its VM, moved into a shadow VM of its
# own. disk_type must be the VMDK's own type (change it afterwards, in place, if another is wanted).
resource "vmdk_volume" "adopted" {
  name      = "legacy-db"
  size_gb   = 40
  disk_type = "thin"

  adopt {
    vmdk_path = "[datastore1] legacy-db/legacy-db_1.vmdk"
    vm        = "DC0/vm/legacy-db"
  }
}

# In a datastore cluster: Storage DRS recommends the member, the provider's placement rules veto, and the
# volume is kept in the cluster (datastore reports the member that holds it).
resource "vmdk_volume" "in_cluster" {
  name              = "balanced"
  size_gb           = 50
  datastore_cluster = "pod-gold"
}
