"""Commands of the `dtf-core` group that live outside cli.py (filled in by their issue)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
