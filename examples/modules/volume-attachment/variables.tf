variable "name" {
  description = "Display name of the data volume."
  type        = string
}

variable "size_gb" {
  description = "Size of the volume in GiB (grows in place while detached; never shrinks)."
  type        = number
  default     = 1
}

variable "vm_path" {
  description = "Inventory path of the VM to attach the volume to, e.g. \"DC0/vm/app-1\"."
  type        = string
}

variable "disk_mode" {
  description = "persistent (the VM's snapshots include the volume) or independent_persistent (they do not)."
  type        = string
  default     = "persistent"
}
