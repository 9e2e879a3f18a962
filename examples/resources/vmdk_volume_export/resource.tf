resource "vmdk_volume" "golden" {
  name    = "golden-image"
  size_gb = 10
}

# The volume's disk as a streamOptimized VMDK (what Glance holds); format = "flat" writes the raw bytes.
resource "vmdk_volume_export" "golden" {
  volume_id = vmdk_volume.golden.id
  path      = "${path.module}/out/golden.vmdk"
  format    = "streamOptimized"
}

output "golden_sha256" {
  value = vmdk_volume_export.golden.sha256
}
