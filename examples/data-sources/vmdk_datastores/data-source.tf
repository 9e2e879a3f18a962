# Where would a 100 GiB volume with the "vmdk-gold" policy go, and why not elsewhere?
data "vmdk_datastores" "gold" {
  size_gb        = 100
  storage_policy = "vmdk-gold"
}

output "selected_datastore" {
  value = data.vmdk_datastores.gold.selected
}

output "rejected" {
  value = { for ds in data.vmdk_datastores.gold.datastores : ds.name => ds.reason if ds.reason != null }
}
