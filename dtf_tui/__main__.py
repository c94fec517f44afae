"""`python -m dtf_tui`: the ``dtf-tui`` command."""

from dtf_tui.cli import main

if __name__ == "__main__":
    main()
