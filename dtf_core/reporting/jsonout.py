"""The JSON report: the summary as one strict JSON document."""

from __future__ import annotations

import json
import math
from typing import Any


def jsonable(obj: Any) -> Any:
    """``obj`` with every NaN and infinity replaced by ``None``, keys as strings."""
    # JSON has no NaN/Infinity; strict parsers (jq, browsers) reject them.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def render_json(summary: dict[str, Any]) -> str:
    return json.dumps(jsonable(summary), indent=2, default=str) + "\n"
