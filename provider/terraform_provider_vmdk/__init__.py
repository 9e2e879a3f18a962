"""terraform-provider-vmdk: a Terraform provider, written in Python, for VMware VMDK volumes.

Layers (each imports only the layers listed after it):
  plugin     -- the protocol adapter: go-plugin handshake, mTLS, gRPC tfplugin6 service, logging
  framework  -- schema, cty values, diagnostics, plan pipeline; knows nothing of vSphere
  resources  -- provider config, vmdk_volume, vmdk_snapshot, data sources (policy: *what* to do)
  vsphere    -- the pyvmomi core: session, tasks, placement, shadow-VM operations (*how*)
``cli`` wires resources into the framework server and hands it to the plugin layer.
"""

__version__ = "0.1.0"
PROVIDER_TYPE_NAME = "vmdk"
PROVIDER_ADDRESS = "registry.terraform.io/pyvmdk/vmdk"
