"""dtf core: suites, scheduling on Dask, results in DuckDB, analysis and reports.

Importing this package is cheap and never loads the terminal UI (textual).
"""

__version__ = "0.1.0"
