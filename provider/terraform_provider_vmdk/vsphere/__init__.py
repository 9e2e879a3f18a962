"""How volumes are made and changed on vSphere, through pyVmomi — in three rooms, each importing only the
ones before it (tests/unit/test_layering.py):

  connection  the session (login, retries, re-login, saved sessions), how a call is sent and classified
              (transport), tasks and their watcher, property reads, HTTP transfers, the time budget of an
              operation, and writes made exactly once (reconcile)
  placement   the inventory (datacenter, hosts, datastores), Cinder's placement rules and the datastore
              selector, storage policies (PBM)
  volumes     the shadow-VM operations (after Cinder's volumeops.py): backing records and request specs,
              lookup, create/delete, snapshots, clones, resize and retype, images, NFC — one module per
              concern — and the two drivers, vCenter and a standalone ESXi host (``volumes/drivers.py``),
              where everything that differs between them is in one place

``exceptions`` at the top is shared by all three. What to *do* with a volume is not decided here but in
the resources layer's policy (``resources/volume_policy.py``).
"""
