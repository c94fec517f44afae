"""The tiny function both sides of scripts/bench/dispatch.py run."""


def tiny(i: int = 0) -> int:
    return i + 1
