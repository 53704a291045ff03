"""Subcommands of the ``bertology`` command line, one module each."""
