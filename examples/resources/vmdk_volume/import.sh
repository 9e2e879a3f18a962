# A volume is imported by its id: the shadow VM's instance UUID (also the disk's UUID).
terraform import vmdk_volume.data 6b0c5c1e-2f4e-4d8a-9c3b-0e5f7a1d2c3b
