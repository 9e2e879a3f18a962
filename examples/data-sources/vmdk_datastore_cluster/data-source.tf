# A datastore cluster's Storage DRS settings, its members and their summed space.
data "vmdk_datastore_cluster" "gold" {
  name = "pod-gold"
}

output "gold_members" {
  value = data.vmdk_datastore_cluster.gold.members
}

output "gold_free_gb" {
  value = data.vmdk_datastore_cluster.gold.free_gb
}
