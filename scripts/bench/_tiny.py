"""The tiny function both sides of scripts/bench/dispatch.py run, alone and in batches."""


def tiny(i: int = 0) -> int:
    return i + 1


def tiny_batch(items: list[int]) -> list[int]:
    """Raw Dask's version of one dtf batch: the same calls, one Dask task."""
    return [tiny(i) for i in items]
