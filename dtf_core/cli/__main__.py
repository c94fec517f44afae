"""`python -m dtf_core.cli` (tests and subprocesses use it)."""

from dtf_core.cli.main import console

if __name__ == "__main__":
    console()
