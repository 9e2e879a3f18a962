"""terraform-provider-vmdk: a Terraform provider, written in Python, for VMware VMDK volumes.

Layers and their import graph — plugin → framework ← resources → vsphere:
  plugin     -- the protocol adapter: go-plugin handshake, mTLS, gRPC tfplugin6 service, logging;
                imports framework only
  framework  -- schema, cty values, diagnostics, plan pipeline; imports nothing of ours (knows no vSphere)
  resources  -- provider config, vmdk_volume, vmdk_snapshot, data sources, and the volume policy
                (``volume_policy``: *what* to do); imports framework and vsphere
  vsphere    -- the pyvmomi core: session, tasks, placement, shadow-VM operations (*how*); imports nothing
                of ours
``cli`` wires resources into the framework server and hands it to the plugin layer; ``orphans`` is the
``terraform-provider-vmdk orphans`` command. tests/unit/test_layering.py enforces the graph.
"""

__version__ = "0.1.0"
PROVIDER_TYPE_NAME = "vmdk"
PROVIDER_ADDRESS = "registry.terraform.io/pyvmdk/vmdk"
