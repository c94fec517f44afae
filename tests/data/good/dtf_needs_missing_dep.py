"""Helper for missing_dependency.toml: needs a package this machine lacks (like cupy)."""

import dtf_not_installed_dependency_xyz  # noqa: F401


def run() -> None:
    pass
