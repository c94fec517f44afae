"""The `dtf-core` command: one module per command family, shared options in `common`.

`console` is the console-script target (it shows deprecated spellings as one
line on stderr); `dtf_core.cli:main`, the click group, stays importable here."""

from dtf_core.cli.main import console, main

__all__ = ["console", "main"]
