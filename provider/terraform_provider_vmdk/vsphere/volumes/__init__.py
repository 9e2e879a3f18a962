"""The shadow-VM operations: records, specs and one module per concern, assembled into the drivers."""
