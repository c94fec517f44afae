"""The CI templates in configs/ci/ are valid for their CI system (official JSON schemas,
shipped offline by check-jsonschema), and every ``dtf-core`` command in them parses with
the real CLI."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from dtf_core.cli import main

CI = Path(__file__).resolve().parents[2] / "configs" / "ci"
SCHEMAS = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}
# Options the CLI does not have yet (wired by the integrator; see docs/ci.md).
PENDING: set[tuple[str, str]] = set()


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line (split at ``&&``, ``||``, ``;``, ``|``)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def command_lines(name: str) -> list[list[str]]:
    """The arguments of every ``dtf-core`` command in a template."""
    text = (CI / name).read_text()
    if name == "Jenkinsfile":
        lines = re.findall(r"sh '([^']*)'", text)
    else:
        lines = [
            line
            for s in _strings(yaml.safe_load(text))
            for line in s.splitlines()
            if not line.lstrip().startswith("#")
        ]
    return [
        cmd[1:]
        for line in lines
        for cmd in shell_commands(line)
        if cmd[0] == "dtf-core" or cmd[0].endswith("/dtf-core")
    ]


def parse(args: list[str]) -> None:
    ctx = main.make_context("dtf-core", list(args))
    cmd = main.get_command(ctx, args[0])
    assert cmd is not None, f"no command {args[0]!r}"
    cmd.make_context(args[0], list(args[1:]), parent=ctx)


ALL = [(name, args) for name in ("github-actions.yml", "gitlab-ci.yml", "Jenkinsfile")
       for args in command_lines(name)]  # fmt: skip


def test_every_template_plans_runs_reports_and_gates():
    for name in ("github-actions.yml", "gitlab-ci.yml", "Jenkinsfile"):
        cmds = [args[0] for n, args in ALL if n == name]
        assert {"plan", "run", "submit", "regressions", "badge"} <= set(cmds), name
        assert cmds.index("plan") < cmds.index("run") and cmds.index("plan") < cmds.index("submit")
        flat = [a for n, args in ALL if n == name for a in args]
        assert {"--junit", "--html", "--markdown", "--json", "--fail-on-regression",
                "--pr-comment"} <= set(flat), name  # fmt: skip
        # The service owns the database: submit never gets --db (it would refuse it).
        for n, args in ALL:
            assert args[0] != "submit" or "--db" not in args, (n, args)


def test_shell_commands_split_where_the_shell_does():
    assert shell_commands('dtf-core plan "$S" && dtf-core run "$S" --db x; echo "a;b"') == [
        ["dtf-core", "plan", "$S"], ["dtf-core", "run", "$S", "--db", "x"], ["echo", "a;b"],
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "args"), ALL, ids=[f"{n}:{a[0]}" for n, a in ALL])
def test_command_lines_parse_with_the_real_cli(name, args):
    pending = [a for a in args if (args[0], a) in PENDING]
    parse([a for a in args if a not in pending])
    if pending:
        with pytest.raises(click.NoSuchOption):  # fails once wired: drop it from PENDING
            parse(args)


def test_a_wrong_option_does_not_parse():
    with pytest.raises(click.NoSuchOption):
        parse(["run", "s.toml", "--junit-xml", "x.xml"])


@pytest.mark.skipif(
    importlib.util.find_spec("check_jsonschema") is None, reason="check-jsonschema (dev extra)"
)
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_template_matches_the_official_schema(name, tmp_path):
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[name], str(path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    ok = check(CI / name)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = yaml.safe_load((CI / name).read_text())
    if "jobs" in broken:
        broken["jobs"]["dtf"]["timeout-minutes"] = {"no-such": 1}
    else:
        broken["dtf"]["when"] = "sometimes"  # not one of GitLab's `when` values
    bad = tmp_path / name
    bad.write_text(yaml.safe_dump(broken))
    assert check(bad).returncode != 0  # the validation can fail


def test_yaml_templates_have_the_required_keys():
    gh = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert "on" in gh or True in gh  # YAML 1.1 reads a bare `on` as True
    assert gh["jobs"]["dtf"]["steps"] and gh["jobs"]["dtf"]["runs-on"]
    gl = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    assert gl["dtf"]["extends"] == ".dtf" and gl[".dtf"]["script"]
    assert gl[".dtf"]["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    metrics = gl[".dtf"]["artifacts"]["reports"]["metrics"]
    for args in command_lines("gitlab-ci.yml"):
        if args[0] in ("run", "submit"):  # the file GitLab shows in the merge request
            assert args[args.index("--metrics-report") + 1] == metrics, args
