"""Small text helpers, tested by demo/tests."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9']+")


def slugify(text: str) -> str:
    """'Hello, World!' -> 'hello-world'."""
    return "-".join(w.lower() for w in _WORD.findall(text.replace("'", "")))


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def truncate(text: str, width: int, ellipsis: str = "...") -> str:
    """Cut ``text`` to at most ``width`` characters, marking the cut with ``ellipsis``."""
    if width < len(ellipsis):
        raise ValueError(f"width {width} is smaller than the ellipsis {ellipsis!r}")
    if len(text) <= width:
        return text
    return text[: width - len(ellipsis)] + ellipsis


def is_palindrome(text: str) -> bool:
    letters = [c.lower() for c in text if c.isalnum()]
    return letters == letters[::-1]
