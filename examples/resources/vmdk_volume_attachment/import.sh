# An attachment is imported by "<VM instance or BIOS UUID>:<volume id>".
terraform import vmdk_volume_attachment.data 4215a1b2-3c4d-5e6f-7a8b-9c0d1e2f3a4b:6b0c5c1e-2f4e-4d8a-9c3b-0e5f7a1d2c3b
