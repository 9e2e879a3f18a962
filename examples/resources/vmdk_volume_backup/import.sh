# A backup is imported by its directory (the one holding manifest.json).
terraform import vmdk_volume_backup.nightly /var/backups/vmdk/app-data-2026-11-29
