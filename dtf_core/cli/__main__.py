"""`python -m dtf_core.cli` (tests and subprocesses use it)."""

from dtf_core.cli.main import main

if __name__ == "__main__":
    main()
