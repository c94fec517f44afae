"""The pure parts of watching a service: metric names and route labels, the
Grafana dashboard's queries, who leads (files beside the database), the
console's header and banner lines, the browser console's door, --dashboard."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click
import pytest
from aiohttp.test_utils import make_mocked_request
from click.testing import CliRunner

from dtf_core.cli.clusteropts import DASHBOARD_DEFAULT, dashboard_option
from dtf_core.service import leadership
from dtf_core.service.metrics import METRIC_NAMES, health, route_template
from dtf_tui import leader
from dtf_tui.snapshot import CoordinatorInfo
from dtf_tui.webauth import SESSION_S, TokenGate, key_check, presented_token

GRAFANA = Path(__file__).parents[2] / "configs" / "grafana" / "dtf.json"
RUN = r"/v1/runs/([A-Za-z0-9_.-]+)"


def test_every_metric_the_grafana_dashboard_queries_is_exported() -> None:
    dash = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs and all(t["datasource"]["uid"] == "${DS_PROMETHEUS}"
                         for p in dash["panels"] for t in p["targets"])  # fmt: skip
    used = set()
    for expr in exprs:
        for name in re.findall(r"\bdtf_[a-z_]+", expr):
            used.add(re.sub(r"_(total|bucket|sum|count)$", "", name))
    assert used <= set(METRIC_NAMES), used - set(METRIC_NAMES)
    assert used == set(METRIC_NAMES)  # and the dashboard shows each of them


@pytest.mark.parametrize(
    ("pattern", "path", "route"),
    [
        (RUN + "$", "/v1/runs/20260101-000000-abc", "/v1/runs/{id}"),
        (RUN + "/events$", "/v1/runs/r1/events", "/v1/runs/{id}/events"),
        (RUN + "/(tasks|errors|results|analysis|report)$", "/v1/runs/r.1/errors",
         "/v1/runs/{id}/errors"),
        (r"/v1/health$", "/v1/health", "/v1/health"),
        (r"/metrics$", "/metrics", "/metrics"),
        (RUN + "$", "/v1/runs/a/b", None),
        (r"/v1/runs$", "/v1/runsX", None),
    ],
)  # fmt: skip
def test_route_template_names_ids_but_keeps_words(
    pattern: str, path: str, route: str | None
) -> None:
    assert route_template(pattern, path) == route


def test_worker_health_is_dask_status_unless_its_heartbeat_is_old() -> None:
    now = 1000.0
    assert health({"status": "running", "last_seen": 999.0}, now) == "running"
    assert health({"status": "paused", "last_seen": 999.0}, now) == "paused"
    assert health({"status": "running", "last_seen": 900.0}, now) == "stale"
    assert health({}, now) == "running"


def test_a_leader_lists_fresh_standbys_and_drops_dead_ones(tmp_path: Path) -> None:
    db = str(tmp_path / "dtf.duckdb")
    lead = leadership.Presence(db, "http://a:8780", pid=1)
    lead.lead()
    fresh = leadership.Presence(db, "http://b:8780", pid=2)
    fresh.beat()
    dead = leadership.Presence(db, "http://c:8780", pid=3)
    dead.beat()
    record = json.loads(dead.path.read_text())
    dead.path.write_text(json.dumps({**record, "seen": time.time() - 3600}))
    (lead.folder / "garbage.json").write_text("{not json")

    body = lead.describe(dashboard="http://a:8787/status")
    assert body["leader"] is True and body["url"] == "http://a:8780"
    assert [s["url"] for s in body["standbys"]] == ["http://b:8780"]
    assert not dead.path.exists()  # a standby that died without cleaning up
    assert body["dashboard"] == "http://a:8787/status"
    assert body["database"] == str(Path(db).resolve())
    fresh.lead(took_over=True)
    assert fresh.describe()["took_over"] is True
    lead.leave()
    assert not lead.path.exists()


def test_public_url_of_a_wildcard_bind_is_the_machine_name() -> None:
    assert leadership.public_url("127.0.0.1", 8780) == "http://127.0.0.1:8780"
    assert leadership.public_url("::1", 1) == "http://[::1]:1"
    assert "0.0.0.0" not in leadership.public_url("0.0.0.0", 8780)


def test_header_and_banner_follow_the_leader() -> None:
    a = CoordinatorInfo("http://a:1", True, 1_700_000_000.0, pid=10, standbys=("http://b:1",))
    b = CoordinatorInfo("http://b:1", True, 1_700_000_100.0, pid=20)
    restarted = CoordinatorInfo("http://a:1", True, 1_700_000_200.0, pid=11)
    assert leader.header_text("db: x", None) == "db: x"
    head = leader.header_text("coordinator: http://a:1", a)
    assert head.startswith("coordinator http://a:1 · leader since ")
    assert head.endswith("standbys: http://b:1")
    assert leader.header_text("", b).endswith("standbys: none known")
    assert "NOT the leader" in leader.header_text("", CoordinatorInfo("u", False, 0.0))
    assert leader.moved(None, a) == "" and leader.moved(a, a) == "" and leader.moved(a, None) == ""
    assert leader.moved(a, b).startswith("⇄ leadership moved: http://a:1 → http://b:1; ")
    assert "restarted (pid 10 → 11)" in leader.moved(a, restarted)


@click.command()
@dashboard_option
@click.argument("suite", required=False)
def _cmd(dashboard: str | None, suite: str | None) -> None:
    click.echo(f"{dashboard}|{suite}")


@pytest.mark.parametrize(
    ("argv", "out"),
    [
        ([], "None|None"),
        (["--dashboard"], f"{DASHBOARD_DEFAULT}|None"),
        (["s.toml", "--dashboard"], f"{DASHBOARD_DEFAULT}|s.toml"),
        (["--dashboard=:9000"], "127.0.0.1:9000|None"),
        (["--dashboard", "0.0.0.0:8787", "s.toml"], "0.0.0.0:8787|s.toml"),
    ],
)
def test_dashboard_takes_an_optional_address(argv: list[str], out: str) -> None:
    result = CliRunner().invoke(_cmd, argv)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == out


def test_dashboard_refuses_a_suite_taken_for_its_address() -> None:
    result = CliRunner().invoke(_cmd, ["--dashboard", "s.toml"])
    assert result.exit_code == 2
    assert "'s.toml' is not HOST:PORT" in result.output and "--dashboard=" in result.output


def test_the_token_comes_from_the_query_bearer_or_basic() -> None:
    def req(path: str = "/", **headers: str):  # type: ignore[no-untyped-def]
        return make_mocked_request("GET", path, headers=headers)

    assert presented_token(req("/?token=abc")) == "abc"
    assert presented_token(req(Authorization="Bearer xyz")) == "xyz"
    assert presented_token(req(Authorization="Basic dXNlcjpzM2NyZXQ=")) == "s3cret"  # user:s3cret
    assert presented_token(req(Authorization="Basic !!!")) is None
    assert presented_token(req()) is None


def test_sessions_open_for_the_key_and_expire() -> None:
    now = [0.0]
    gate = TokenGate(key_check("k3y"), clock=lambda: now[0])
    assert gate.check("k3y") and not gate.check("k3") and not gate.check("")
    sid = gate.open_session()
    assert gate.session_ok(sid) and not gate.session_ok("forged") and not gate.session_ok(None)
    now[0] = SESSION_S + 1
    assert not gate.session_ok(sid)
