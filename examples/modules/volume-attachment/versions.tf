terraform {
  required_providers {
    vmdk = { source = "pyvmdk/vmdk" }
  }
}
