# `terraform test` (Terraform >= 1.6) against a vCenter simulator (vcsim) or a lab vCenter.
# Connection settings come from the environment: VSPHERE_SERVER, VSPHERE_USER, VSPHERE_PASSWORD and
# VSPHERE_CA_FILE (or VSPHERE_ALLOW_UNVERIFIED_SSL=true). datastore_types says which datastores placement
# may use; a stock vcsim reports its datastores as type OTHER:
#   terraform test -var 'datastore_types=["OTHER"]'                              # a vcsim
#   terraform test -var 'datastore_types=["vmfs", "nfs", "nfs41", "vsan", "vvol"]' # a vCenter

variables {
  name      = "tftest"
  snapshots = ["first"]
}

provider "vmdk" {
  datastore_types = var.datastore_types
}

run "create" {
  command = apply

  assert {
    condition     = length(output.volume_id) == 36
    error_message = "the volume has an id"
  }
  assert {
    condition     = output.connection_info["driver_volume_type"] == "vmdk"
    error_message = "connection_info says how to attach the volume"
  }
  assert {
    condition     = length(output.snapshot_ids) == 1
    error_message = "one snapshot per label"
  }
}

run "grow_and_add_a_snapshot" {
  command = apply

  variables {
    size_gb   = 2
    snapshots = ["first", "second"]
  }

  assert {
    condition     = vmdk_volume.this.size_gb == 2
    error_message = "the volume grew in place"
  }
  assert {
    condition     = run.create.volume_id == output.volume_id
    error_message = "growing keeps the volume (no replacement)"
  }
  assert {
    condition     = length(output.snapshot_ids) == 2
    error_message = "the new label got a snapshot"
  }
}
