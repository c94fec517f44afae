"""Helpers shared by the tests, importable as ``support`` (``pythonpath = ["tests"]``).

``procs``: free ports and stopping our own child processes; ``factories``: TaskSpec
and Suite objects in code; ``tui_seed`` and ``history_seed``: seeded DuckDB files.
"""
