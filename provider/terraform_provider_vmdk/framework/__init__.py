"""framework layer; see the package docstring for the layering."""
