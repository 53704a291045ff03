"""models: see the package docstring for the layers."""
