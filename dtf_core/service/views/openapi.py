"""The OpenAPI 3 document of ``dtf-core serve``, served at ``/v1/openapi.json``.

Written by hand next to the code; a test matches it against the real route
table (every route documented with its methods, no documented path without a
route), so neither can drift. The snapshot schemas are derived from the
dataclasses the console decodes, so they cannot drift either. docs/api.md is
the prose for the same routes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dtf_core import __version__
from dtf_core.service.views.snapshot import (
    AttemptInfo,
    ClusterSnapshot,
    CoordinatorInfo,
    ErrorEvent,
    RunInfo,
    SeriesKey,
    TaskRow,
    TrendSeries,
    WorkerInfo,
)
from dtf_core.service.views.trend import TrendView

_SCALARS = {"str": "string", "float": "number", "int": "integer", "bool": "boolean"}


def _type(text: str) -> dict[str, Any]:
    """A JSON schema for a dataclass field's annotation (a string: postponed)."""
    text = text.replace(" ", "")
    nullable = text.endswith("|None")
    base = text.removesuffix("|None")
    if base.startswith(("tuple[", "list[")):
        inner = base[base.index("[") + 1 : -1].split(",")[0]
        schema: dict[str, Any] = {"type": "array", "items": _type(inner)}
    elif base.startswith("Mapping[") or base.startswith("dict["):
        value = base[base.index(",") + 1 : -1]
        schema = {"type": "object", "additionalProperties": {} if value == "Any" else _type(value)}
    elif base in _SCALARS:
        schema = {"type": _SCALARS[base]}
    else:
        schema = {"$ref": f"#/components/schemas/{base}"}
    return {**schema, "nullable": True} if nullable else schema


def _schema(cls: type) -> dict[str, Any]:
    fields = dataclasses.fields(cls)
    return {
        "type": "object",
        "properties": {f.name: _type(str(f.type)) for f in fields},
        "required": [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ],
    }


SCHEMA_TYPES = (
    ClusterSnapshot,
    CoordinatorInfo,
    WorkerInfo,
    RunInfo,
    TaskRow,
    ErrorEvent,
    AttemptInfo,
    SeriesKey,
    TrendSeries,
    TrendView,
)
RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
ANY_OBJECT = {"type": "object"}
SUITE = {"name": "suite", "in": "path", "required": True, "schema": {"type": "string"}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    *,
    role: str | None = "viewer",
    params: list[dict[str, Any]] | None = None,
    answer: dict[str, Any] | None = None,
    status: str = "200",
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        status: {
            "description": "OK",
            "content": {"application/json": {"schema": answer or ANY_OBJECT}},
        }
    }
    codes = (("401", "403") if role else ()) + errors
    for code in codes:
        responses[code] = {
            "description": "error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if role:
        op["x-role"] = role
    else:
        op["security"] = []
    if params:
        op["parameters"] = params
    return op


def _query(name: str, kind: str, text: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": kind},
        "description": text,
    }


# What a console holds: the build a delta starts from (/v1/console, its stream).
HELD = [
    _query("since", "integer", "the build of the snapshot the console holds"),
    _query("epoch", "string", "the epoch of the snapshot the console holds"),
]


def _list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": item}}}


_RUN_DATA = {
    "tasks": "Every task of the run as stored (status, attempts, wall time, worker).",
    "errors": "Every failed attempt of the run (category, severity, message, worker).",
    "results": "The run's JSON summary (as `dtf-core report --format json`).",
    "analysis": "The run's benchmark analysis (baseline comparisons).",
    "report": "The run's report rendered (?format=md|json|junit|html).",
}

PATHS: dict[str, dict[str, Any]] = {
    "/v1/health": {"get": _op("Liveness and versions.", role=None)},
    "/v1/runs": {
        "get": _op(
            "Newest runs, queued ones first.", params=[_query("limit", "integer", "runs (20)")]
        ),
        "post": _op(
            "Submit a suite (JSON: suite_path, archive as base64, metadata).",
            role="submitter",
            status="201",
            errors=("400", "413", "429"),
        ),
    },
    "/v1/runs/{run_id}": {
        "get": _op("One run, with live progress while active.", params=[RUN_ID], errors=("404",))
    },
    "/v1/runs/{run_id}/cancel": {
        "post": _op(
            "Cancel a run (its owner or an admin).",
            role="submitter",
            params=[RUN_ID],
            status="202",
            errors=("404", "409"),
        )
    },
    "/v1/runs/{run_id}/events": {
        "get": _op(
            "The run's events after ?after=N: long-poll (?wait=S) or server-sent events "
            "(Accept: text/event-stream).",
            params=[
                RUN_ID,
                _query("after", "integer", "last sequence seen"),
                _query("wait", "number", "seconds to wait (max 30)"),
                _query("instance", "string", "who numbered after: others answer at once"),
            ],
            errors=("404",),
        )
    },
    **{
        f"/v1/runs/{{run_id}}/{what}": {"get": _op(text, params=[RUN_ID], errors=("404", "409"))}
        for what, text in _RUN_DATA.items()
    },
    "/v1/runs/{run_id}/attempts": {
        "get": _op(
            "Every attempt of one task, with its output tails (the console's task drill-down).",
            params=[RUN_ID, _query("task", "string", "the task id", required=True)],
            answer=_list_of("attempts", _ref("AttemptInfo")),
            errors=("400", "404"),
        )
    },
    "/v1/workers": {"get": _op("The cluster's workers and their resources.", errors=("503",))},
    "/v1/tokens": {
        "post": _op(
            "Issue a token (JSON: role, subject, ttl).", role="admin", status="201", errors=("400",)
        )
    },
    "/v1/console": {
        "get": _op(
            "What the console shows, built once for every attached console: the newest runs, "
            "the focused run's tasks, errors, live workers with CPU and memory history, and the "
            "build's number (build). With since and epoch (the build and epoch of the snapshot "
            "the console holds), the "
            "answer may be a delta: it has 'delta' (= since), the short parts whole, and for "
            "tasks and errors their fields (tasks_fields), new length (tasks_length) and the "
            "rows changed since, by position (tasks_changed: [[index, [value, ...]], ...]), or "
            "all their rows (tasks_rows: [[value, ...], ...]) when the list was laid out "
            "afresh; each row an array in the order of the fields. Without since, or when a "
            "delta would not be right or would be large, the full snapshot.",
            params=[_query("generation", "integer", "a change the snapshot must reflect"), *HELD],
            answer=_ref("ClusterSnapshot"),
            errors=("503",),
        )
    },
    "/v1/console/stream": {
        "get": _op(
            "Server-sent events (text/event-stream), one per published console build: "
            "'event: console', the build as 'id', and as 'data' the JSON /v1/console?since= "
            "answers: the first the delta from the build given by since and epoch (or the "
            "whole snapshot), each next the delta from the one before. A comment line every "
            "15 s on a quiet stream; it ends when the token expires or is revoked.",
            params=HELD,
        )
    },
    "/v1/changes": {
        "get": _op(
            "The change counter consoles follow: long-poll (?after=N&wait=S) or server-sent "
            "events (Accept: text/event-stream), at most one per burst.",
            params=[
                _query("after", "integer", "the last generation seen"),
                _query("wait", "number", "seconds to wait (max 30)"),
            ],
            answer={
                "type": "object",
                "properties": {"generation": {"type": "integer"}, "epoch": {"type": "string"}},
            },
        )
    },
    "/v1/benchmarks": {
        "get": _op(
            "Every benchmark series the database holds (benchmark x hardware).",
            answer=_list_of("series", _ref("SeriesKey")),
        )
    },
    "/v1/benchmarks/series": {
        "get": _op(
            "One benchmark series (per-run medians) with its change points, regressions and "
            "forecast (the Trends screen).",
            params=[
                _query("benchmark", "string", "benchmark task id", required=True),
                _query("hardware", "string", "hardware label"),
            ],
            answer={
                "type": "object",
                "properties": {"series": _ref("TrendSeries"), "analysis": _ref("TrendView")},
            },
            errors=("400", "404"),
        )
    },
    "/v1/openapi.json": {"get": _op("This document.", role=None)},
    "/v1/badges/{suite}.json": {
        "get": _op(
            "A shields.io endpoint badge of the suite's latest run (?kind=status|passrate|perf); "
            "no token unless `serve --badges token`.",
            role=None,
            params=[SUITE, _query("kind", "string", "status | passrate | perf")],
            errors=("400", "404"),
        )
    },
    "/v1/badges/{suite}.svg": {
        "get": _op(
            "The same badge as a self-contained SVG.",
            role=None,
            params=[SUITE, _query("kind", "string", "status | passrate | perf")],
            errors=("400", "404"),
        )
    },
    # Added by serve itself (dtf_core.service.routes): who leads, and Prometheus.
    "/v1/coordinator": {
        "get": _op("The coordinator answering: leader or not, since when, its standbys.")
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics (text format); a viewer token unless `serve --metrics public`."
        )
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "dtf-core serve",
        "version": __version__,
        "description": "The dtf coordinator's HTTP API; prose in docs/api.md. Roles: viewer "
        "reads, submitter also submits and cancels its own runs, admin everything "
        "(x-role on each operation).",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
            },
            **{cls.__name__: _schema(cls) for cls in SCHEMA_TYPES},
        },
    },
}
