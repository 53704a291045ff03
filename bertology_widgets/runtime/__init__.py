"""runtime: see the package docstring for the layers."""
