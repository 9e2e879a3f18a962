# A snapshot is imported as <volume id>/<snapshot name>.
terraform import vmdk_snapshot.before_upgrade 6b0c5c1e-2f4e-4d8a-9c3b-0e5f7a1d2c3b/before-upgrade
