# `terraform test` (Terraform >= 1.6) against our vCenter simulator (python scripts/vcsim prints the
# VSPHERE_* settings to export) or a lab vCenter: give vm_path a VM there.
#   terraform test -var 'vm_path=DC0/vm/DC0_C0_RP0_VM0'

variables {
  name = "tftest-attached"
}

run "attach" {
  command = apply

  assert {
    condition     = startswith(output.device_address, "scsi:")
    error_message = "the volume is on a SCSI controller of the VM"
  }
  assert {
    condition     = output.vmdk_path == vmdk_volume.this.vmdk_path
    error_message = "the VM holds the volume's own file (no copy)"
  }
}

run "detach_keeps_the_volume" {
  command = apply

  variables {
    disk_mode = "independent_persistent"
  }

  assert {
    condition     = output.volume_id == run.attach.volume_id
    error_message = "re-attaching in another mode keeps the volume"
  }
}
