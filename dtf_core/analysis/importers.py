"""Bring past benchmark history into dtf: CSV/Parquet, pytest-benchmark JSON, asv results.

The table format (CSV or Parquet), one row per sample::

    benchmark, params, hardware, run_id, timestamp, commit, value, unit

* ``params``: a JSON object (``{"batch": 32, "model": "resnet"}``); empty = ``{}``.
* ``timestamp``: unix seconds or ISO 8601 (no zone = UTC); a run starts at its
  earliest sample.
* ``commit``, ``hardware``: may be empty; ``unit``: empty means ``s``.
* optional columns: ``branch``, ``python`` (run metadata) and
  ``higher_is_better`` (true/false; otherwise the unit decides, see
  :mod:`~dtf_core.analysis.direction`).

Every row is checked before anything is written; the first bad one is reported
as ``FILE: row N, column 'C': what is wrong`` (rows count from 1 after the
header), and the store writes the whole file in one transaction, or nothing.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from dtf_core.errors import ImportFileError
from dtf_core.store import read_table_file

COLUMNS = ("benchmark", "params", "hardware", "run_id", "timestamp", "commit", "value", "unit")
FORMATS = ("csv", "parquet", "pytest-benchmark", "asv")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def detect_format(path: pathlib.Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".json":
        doc = _load_json(path)
        if isinstance(doc, dict) and "benchmarks" in doc and "machine_info" in doc:
            return "pytest-benchmark"
        if isinstance(doc, dict) and "results" in doc and "commit_hash" in doc:
            return "asv"
        raise ImportFileError(
            f"{path}: a JSON file dtf does not know: expected pytest-benchmark output "
            "(keys 'machine_info', 'benchmarks') or an asv result (keys 'commit_hash', 'results')"
        )
    raise ImportFileError(
        f"{path}: unknown file type '{suffix or '(none)'}': use .csv, .parquet, "
        "a pytest-benchmark .json or an asv result .json (or pass --format)"
    )


def read_history(path: str | pathlib.Path, fmt: str | None = None) -> pd.DataFrame:
    """Read any supported file into the validated frame :meth:`Store.import_samples` takes."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise ImportFileError(f"{p}: no such file")
    fmt = fmt or detect_format(p)
    if fmt not in FORMATS:
        raise ImportFileError(f"{p}: unknown format '{fmt}': one of {', '.join(FORMATS)}")
    if fmt in ("csv", "parquet"):
        raw = read_table_file(p, fmt)
    else:
        reader: Callable[[pathlib.Path, Any], pd.DataFrame] = (
            _pytest_benchmark if fmt == "pytest-benchmark" else _asv
        )
        raw = reader(p, _load_json(p))
    return normalize(raw, str(p))


# ---- validation ----------------------------------------------------------------


def normalize(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ImportFileError(
            f"{source}: missing column(s) {', '.join(missing)}: the header must name "
            f"{', '.join(COLUMNS)} (see docs/analysis.md)"
        )
    if raw.empty:
        raise ImportFileError(f"{source}: no rows to import")
    df = pd.DataFrame(index=raw.index)
    for col in ("benchmark", "run_id"):
        df[col] = _text(raw[col])
        _fail_where(df[col] == "", source, raw, col, "is empty")
    df["hardware"] = _text(raw["hardware"])
    unit = _text(raw["unit"])
    df["unit"] = unit.where(unit != "", "s")
    commit = _text(raw["commit"])
    df["commit"] = commit.where(commit != "", None)
    for col in ("branch", "python"):
        df[col] = _text(raw[col]).replace("", None) if col in raw.columns else None
    df["timestamp"] = _timestamps(raw["timestamp"], source, raw)
    value = pd.to_numeric(raw["value"], errors="coerce").astype(np.float64)
    _fail_where(~np.isfinite(value.to_numpy()), source, raw, "value", "is not a finite number")
    df["value"] = value
    df["params"] = _params(raw["params"], source, raw)
    df["higher_is_better"] = _flags(raw, source)
    df["task_id"] = _task_ids(df)
    # The sample's position within its run and task, in file order.
    runs, tasks = pd.factorize(df["run_id"])[0], pd.factorize(df["task_id"])[0]
    df["idx"] = df.groupby([runs, tasks], sort=False).cumcount().astype(np.int32)
    return df.reset_index(drop=True)


def _text(col: pd.Series) -> pd.Series:
    return col.astype(object).where(col.notna(), "").astype(str).str.strip()


def _fail_where(bad: Any, source: str, raw: pd.DataFrame, col: str, what: str) -> None:
    mask = np.asarray(bad, dtype=bool)
    if mask.any():
        i = int(np.argmax(mask))
        shown = raw[col].iloc[i]
        raise ImportFileError(f"{source}: row {i + 1}, column '{col}': {shown!r} {what}")


def _timestamps(col: pd.Series, source: str, raw: pd.DataFrame) -> pd.Series:
    num = pd.to_numeric(col, errors="coerce").astype(np.float64)
    need = num.isna() & col.notna()
    if need.any():
        parsed = pd.to_datetime(col[need].astype(str), utc=True, errors="coerce", format="ISO8601")
        secs = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        num[need] = secs.astype(np.float64)
    _fail_where(
        ~np.isfinite(num.to_numpy()),
        source,
        raw,
        "timestamp",
        "is neither unix seconds nor an ISO 8601 time (2024-05-01T12:00:00Z)",
    )
    return num


def _params(col: pd.Series, source: str, raw: pd.DataFrame) -> pd.Series:
    text = _text(col)
    canonical: dict[str, str] = {}
    for s in text.unique():  # few distinct strings even in a million rows
        try:
            obj = json.loads(s) if s else {}
        except json.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            _fail_where(
                text == s, source, raw, "params", 'is not a JSON object (write {"batch": 32})'
            )
        canonical[s] = json.dumps(obj, sort_keys=True)
    return text.map(canonical)


def _flags(raw: pd.DataFrame, source: str) -> pd.Series:
    if "higher_is_better" not in raw.columns:
        return pd.Series(pd.NA, index=raw.index, dtype="boolean")
    text = _text(raw["higher_is_better"]).str.lower()
    _fail_where(
        ~text.isin(_TRUE | _FALSE | {""}), source, raw, "higher_is_better", "is not true/false"
    )
    out = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    return out


def _label(name: str, params: str) -> str:
    p = json.loads(params)
    if not p:
        return name
    fmt = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in p.items())
    return f"{name}[{fmt}]"


def _task_ids(df: pd.DataFrame) -> pd.Series:
    # A task is one benchmark x params in a run, as a suite would name it; a file
    # that mixes hardware gets "@hardware" so that (run, task) stays unique.
    cols = ["benchmark", "params"]
    multi_hw = df["hardware"].nunique() > 1
    if multi_hw:
        cols.append("hardware")
    codes, uniques = pd.MultiIndex.from_frame(df[cols]).factorize()
    labels = [
        _label(u[0], u[1]) + (f"@{u[2]}" if multi_hw else "") for u in uniques.to_flat_index()
    ]
    return pd.Series(np.asarray(labels, dtype=object)[codes], index=df.index)


# ---- pytest-benchmark and asv ------------------------------------------------------


def _load_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFileError(f"{path}: not valid JSON ({exc})") from exc


def _pytest_benchmark(path: pathlib.Path, doc: dict[str, Any]) -> pd.DataFrame:
    """``pytest --benchmark-json`` / ``--benchmark-autosave`` output.

    Raw samples come from ``stats.data`` (saved with ``--benchmark-save-data``);
    without them each benchmark contributes its median as one sample, which is
    enough for history and trends but too little for ``compare``.
    """
    machine = doc.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    hardware = " ".join(
        str(x)
        for x in (machine.get("machine"), cpu.get("brand_raw") or machine.get("processor"))
        if x
    )
    commit = doc.get("commit_info") or {}
    rows: list[dict[str, Any]] = []
    for b in doc.get("benchmarks") or []:
        stats = b.get("stats") or {}
        data = stats.get("data") or [stats.get("median")]
        params = b.get("params") or {}
        name = str(b.get("fullname") or b.get("name") or "")
        if params:
            name = re.sub(r"\[[^\[\]]*\]$", "", name)
        for v in data:
            rows.append(
                {
                    "benchmark": name,
                    "params": json.dumps(params, sort_keys=True, default=str),
                    "hardware": hardware,
                    "run_id": path.stem,
                    "timestamp": doc.get("datetime"),
                    "commit": commit.get("id"),
                    "branch": commit.get("branch"),
                    "python": machine.get("python_version"),
                    "value": v,
                    "unit": "s",
                }
            )
    return pd.DataFrame(rows, columns=[*COLUMNS, "branch", "python"])


def _asv(path: pathlib.Path, doc: dict[str, Any]) -> pd.DataFrame:
    """One asv result file (``results/MACHINE/COMMIT-ENV.json``, format version 2).

    Parameter names and units come from ``results/benchmarks.json`` when it is
    next to the machine folder; otherwise parameters are named ``p0, p1...``
    and ``time_*`` benchmarks are in seconds.
    """
    meta_path = path.parent.parent / "benchmarks.json"
    meta = _load_json(meta_path) if meta_path.is_file() else {}
    cols = doc.get("result_columns") or ["result", "params"]
    machine = (doc.get("params") or {}).get("machine", path.parent.name)
    rows: list[dict[str, Any]] = []
    for name, entry in (doc.get("results") or {}).items():
        info = meta.get(name) or {}
        rec = dict(zip(cols, entry, strict=False)) if isinstance(entry, list) else {}
        values = rec.get("result")
        if values is None:
            continue
        plists = rec.get("params") or []
        names = info.get("param_names") or [f"p{i}" for i in range(len(plists))]
        combos = _product(plists) if plists else [()]
        if not isinstance(values, list):
            values = [values]
        samples = rec.get("samples") or [None] * len(values)
        unit = info.get("unit") or ("s" if name.split(".")[-1].startswith("time_") else "")
        unit = "s" if unit == "seconds" else unit
        for combo, v, smp in zip(combos, values, samples, strict=False):
            for x in smp or [v]:
                if x is None or (isinstance(x, float) and math.isnan(x)):
                    continue  # asv records failed parameter combinations as null
                rows.append(
                    {
                        "benchmark": name,
                        "params": json.dumps(dict(zip(names, combo, strict=False))),
                        "hardware": machine,
                        "run_id": path.stem,
                        "timestamp": rec.get("started_at") or doc.get("date"),
                        "commit": doc.get("commit_hash"),
                        "python": doc.get("python"),
                        "value": x,
                        "unit": unit,
                    }
                )
    df = pd.DataFrame(rows, columns=[*COLUMNS, "python"])
    # asv times are milliseconds since the epoch.
    df["timestamp"] = pd.to_numeric(df["timestamp"], errors="coerce") / 1000.0
    return df


def _product(lists: list[list[Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for values in lists:
        out = [(*prefix, _unquote(v)) for prefix in out for v in values]
    return out


def _unquote(v: Any) -> Any:
    # asv stores parameter values as their repr: "'resnet'" -> resnet, "32" -> 32.
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    try:
        return json.loads(v) if isinstance(v, str) else v
    except json.JSONDecodeError:
        return v
