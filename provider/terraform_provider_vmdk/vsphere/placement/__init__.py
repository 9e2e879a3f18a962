"""Where a volume goes: the inventory, Cinder's placement rules and the datastore selector, storage policies."""
