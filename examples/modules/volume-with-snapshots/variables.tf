variable "name" {
  description = "Display name of the volume; snapshots are named after it."
  type        = string
}

variable "size_gb" {
  description = "Size of the volume in GiB (grows in place; never shrinks)."
  type        = number
  default     = 1
}

variable "disk_type" {
  description = "thin, thick or eagerZeroedThick."
  type        = string
  default     = "thin"
}

variable "snapshots" {
  description = "Snapshot labels to keep, e.g. [\"before-upgrade\"]. Each becomes a vmdk_snapshot."
  type        = set(string)
  default     = []
}

variable "snapshot_format" {
  description = "template (a full copy that outlives the volume) or COW (a vSphere snapshot)."
  type        = string
  default     = "template"
}
