"""DuckDB storage: the only package that imports duckdb. `Store` is the facade callers use."""

from dtf_core.store.facade import AGG_DIMENSIONS, MIGRATIONS, Store, read_table_file

__all__ = ["AGG_DIMENSIONS", "MIGRATIONS", "Store", "read_table_file"]
