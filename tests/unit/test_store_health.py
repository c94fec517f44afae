"""worker_health in a real DuckDB file: rows in, the latest state out, volume bounded."""

from __future__ import annotations

from pathlib import Path

from dtf_core.model import AttemptResult
from dtf_core.store import MIGRATIONS, Store, StoreReader

DAY = 86400.0


def row(worker: str, ts: float, state: str = "healthy", **kw: object) -> dict[str, object]:
    return {"run_id": "r1", "worker": worker, "address": f"tcp://{worker}", "ts": ts,
            "state": state, "reason": kw.pop("reason", ""), "changed": False, **kw}  # fmt: skip


def test_latest_state_its_since_and_the_series(db_path: Path) -> None:
    with Store(db_path) as store:
        store.add_health(
            [
                row("a", 100.0, changed=True),
                row("a", 110.0, "degraded", reason="slow: 4.0x", changed=True, rel_speed=4.0,
                    gpus=[{"util_pct": 99.0, "temp_c": 91.0}], disk_free_bytes=123),
                row("a", 125.0, "degraded", reason="slow: 5.0x", rel_speed=5.0),
                row("b", 100.0, changed=True, rel_speed=1.0, tasks=4),
            ]
        )  # fmt: skip
    with StoreReader(db_path) as reader:
        latest = {r["worker"]: r for r in reader.worker_health("r1")}
        assert latest["a"]["state"] == "degraded"
        assert latest["a"]["reason"] == "slow: 5.0x"
        assert latest["a"]["since"] == 110.0  # when it entered the state, not the last row
        assert latest["b"]["state"] == "healthy" and latest["b"]["tasks"] == 4
        assert [r["ts"] for r in reader.health_series("r1", "a")] == [100.0, 110.0, 125.0]
        assert reader.health_series("r1", "a")[1]["gpus"] == [{"util_pct": 99.0, "temp_c": 91.0}]
        assert reader.worker_health("nope") == []
        assert len(reader.worker_health()) == 2  # across runs
        # What a console shows of each worker: the same last state and reason.
        assert reader.worker_states("r1") == {
            w: (r["state"], r["reason"] or "") for w, r in latest.items()
        }
        assert reader.worker_states("nope") == {}


def test_prune_thins_old_rows_and_keeps_changes(db_path: Path) -> None:
    now = 100 * DAY
    with Store(db_path) as store:
        old = now - 10 * DAY
        # 60 rows a minute apart in one hour, ten days ago; one of them a change of state
        store.add_health([row("a", old + 60 * i, changed=(i == 7)) for i in range(60)])
        store.add_health([row("a", now - 40 * DAY)])  # past retention
        store.add_health([row("a", now - 60)])  # recent: untouched
        deleted = store.prune_health(now, downsample_after=2 * DAY, retain=30 * DAY)
        left = store.health_series("r1", "a")
    assert deleted == 60 - 2 + 1
    assert [r["changed"] for r in left] == [True, False, False]
    assert left[1]["ts"] == now - 10 * DAY + 59 * 60  # the hour's last row


def test_baselines_and_task_durations(db_path: Path) -> None:
    with Store(db_path) as store:
        store.add_health([row("a", 1.0, rel_speed=2.0), row("a", 2.0, rel_speed=4.0)])
        store.add_health([{**row("a", 3.0, rel_speed=9.0), "run_id": "now"}])
        assert store.worker_baselines(["a", "b"], exclude_run="now") == {"a": 3.0}
        store.create_run("r9", "s", "/s.toml", {}, 1.0)
        for attempt, (outcome, wall) in enumerate([("passed", 1.5), ("failed", 0.1)], 1):
            store.add_attempt(AttemptResult("r9", "t", attempt, outcome, worker="w1", wall_s=wall))
        store.flush()
        df = store.task_durations(["t", "u"])
    assert df.to_dict("records") == [{"task_id": "t", "worker": "w1", "wall_s": 1.5}]


def test_the_migration_is_the_last_one() -> None:
    assert "CREATE TABLE worker_health" in MIGRATIONS[-1]
