"""analyses: see the package docstring for the layers."""
