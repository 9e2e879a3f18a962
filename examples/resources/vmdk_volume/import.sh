# A volume is imported by its id: the shadow VM's instance UUID (also the disk's UUID).
terraform import vmdk_volume.data 6b0c5c1e-2f4e-4d8a-9c3b-0e5f7a1d2c3b

# A volume OpenStack Cinder made is imported by its Cinder volume id (its backing is the VM
# "volume-<id>"). The import only reads; the first apply marks the backing as this provider's.
terraform import vmdk_volume.from_openstack 3e1f4b2a-7c9d-4e8f-a1b2-c3d4e5f60718
