"""Helper for import_raises.toml: importing it fails like a broken module would."""

raise ValueError("this module is broken on purpose")


def run() -> None:
    pass
