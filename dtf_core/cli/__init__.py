"""The `dtf-core` command: one module per command family, shared options in `common`.

`dtf_core.cli:main` is the console-script target and stays importable here."""

from dtf_core.cli.main import main

__all__ = ["main"]
