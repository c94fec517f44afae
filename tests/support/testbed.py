"""A multi-host test bed on one machine: network namespaces on a bridge.

Each "host" is a network namespace with its own address (``10.231.S.H/24``,
only inside namespaces made here), its own loopback, and, where
``unshare --uts`` works, its own hostname for every process started on it. The
root namespace only gains a bridge and one veth end per host, all named after
this bed's tag; no address, route or existing interface of it is touched.

Names carry the creating process's pid (``dtftb-<pid><n>-<host>``,
``tb<pid><n>br``), so a crashed run's leftovers are found and removed by the
next bed that starts (their pid is gone). Cleanup runs from the fixture's
finalizer, from ``atexit``, and from :func:`sweep_stale`.

    bed = TestBed.create(["a", "b", "c"])
    bed.start("b", ["python", "-m", "http.server", "--bind", bed.ip("b")], "web.log")
    bed.cut("b"); bed.restore("b"); bed.netem("c", "delay 100ms loss 1%")
    bed.kill_host("b"); bed.close()

Processes only see their namespace's addresses: anything that listens must
bind to :meth:`TestBed.ip` of its host (or 0.0.0.0), not 127.0.0.1.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

PREFIX = "dtftb-"
_NS_RE = re.compile(rf"^{PREFIX}(\d+)([a-z])-(\w+)")
_counter = itertools.count()
STATE = Path("/run/dtf-testbed")  # tag.json per live bed: hosts, addresses, links
T = TypeVar("T")


class BedUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no ``ip``, no permission)."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and out.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def unavailable_reason() -> str | None:
    """Why no bed can be made here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the multi-host test bed needs root (network namespaces)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the multi-host test bed needs `{tool}` (iproute2)"
    probe = f"{PREFIX}probe{os.getpid()}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def netem_missing() -> str | None:
    """Why ``tc netem`` cannot shape links here (a kernel without sch_netem), or None."""
    probe = f"{PREFIX}nprobe{os.getpid()}"
    if _run("ip", "netns", "add", probe, check=False).returncode:
        return "cannot create a network namespace"
    try:
        out = _run("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root",
                   "netem", "delay", "1ms", check=False)  # fmt: skip
        return f"tc netem is not available: {out.stderr.strip()}" if out.returncode else None
    finally:
        _run("ip", "netns", "del", probe, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_pids(ns: str) -> None:
    out = _run("ip", "netns", "pids", ns, check=False)
    for pid in out.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)  # only processes inside our own namespace


def _remove(tag: str, hosts: list[str]) -> None:
    with contextlib.suppress(OSError):
        (STATE / f"{tag}.json").unlink()
    for h in hosts:
        ns = f"{PREFIX}{tag}-{h}"
        _kill_ns_pids(ns)
        _run("ip", "netns", "del", ns, check=False)
    # Deleting a namespace removes its veth end, and with it the pair; the
    # bridge is ours alone.
    for i in range(len(hosts)):
        _run("ip", "link", "del", f"tb{tag}h{i}", check=False)
    _run("ip", "link", "del", f"tb{tag}br", check=False)


def live_tags() -> list[str]:
    return sorted(p.stem for p in STATE.glob("*.json")) if STATE.is_dir() else []


def sweep_stale() -> list[str]:
    """Remove beds whose creating process is gone; the tags removed."""
    found: dict[str, list[str]] = {}
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        m = _NS_RE.match(line.split()[0]) if line.strip() else None
        if m and not _pid_alive(int(m.group(1))):
            found.setdefault(m.group(1) + m.group(2), []).append(m.group(3))
    for link in _run("ip", "-o", "link", "show", check=False).stdout.splitlines():
        m = re.search(r"\d+: tb(\d+)([a-z])br[:@]", link)
        if m and not _pid_alive(int(m.group(1))):
            found.setdefault(m.group(1) + m.group(2), [])
    for tag in live_tags():
        m = re.match(r"(\d+)", tag)
        if m and not _pid_alive(int(m.group(1))):
            found.setdefault(tag, [])
    for tag, hosts in found.items():
        _remove(tag, sorted(hosts))
    return sorted(found)


@dataclass
class Host:
    name: str
    ns: str
    ip: str
    veth: str  # the root namespace's end, a port of the bridge
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@dataclass
class TestBed:
    """N hosts on one bridge; see the module docstring."""

    tag: str
    hosts: dict[str, Host]
    logdir: Path
    uts: bool
    closed: bool = False
    _shapers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    __test__ = False  # not a pytest test class

    @classmethod
    def create(
        cls, names: list[str], logdir: str | os.PathLike[str], *, tag: str | None = None
    ) -> TestBed:
        """Make the namespaces, the bridge and the links; :class:`BedUnavailable`
        when this machine cannot."""
        reason = unavailable_reason()
        if reason:
            raise BedUnavailable(reason)
        sweep_stale()
        if tag is None:
            tag = f"{os.getpid()}{'abcdefghijklmnopqrstuvwxyz'[next(_counter) % 26]}"
        subnet = 231  # 10.231.S.0/24, S from the tag: beds never share a bridge anyway
        slot = int(re.sub(r"\D", "", tag) or 0) % 250
        bed = cls(tag, {}, Path(logdir), uts=False)
        atexit.register(bed.close)
        bridge = f"tb{tag}br"
        try:
            _run("ip", "link", "add", bridge, "type", "bridge")
            _run("ip", "link", "set", bridge, "up")
            for i, name in enumerate(names):
                ns, veth = f"{PREFIX}{tag}-{name}", f"tb{tag}h{i}"
                ip = f"10.{subnet}.{slot}.{i + 1}"
                _run("ip", "netns", "add", ns)
                _run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"tb{tag}p{i}")
                _run("ip", "link", "set", f"tb{tag}p{i}", "netns", ns)
                _run("ip", "link", "set", veth, "master", bridge)
                _run("ip", "link", "set", veth, "up")
                inside = ("ip", "netns", "exec", ns, "ip")
                _run(*inside, "link", "set", f"tb{tag}p{i}", "name", "eth0")
                _run(*inside, "addr", "add", f"{ip}/24", "dev", "eth0")
                _run(*inside, "link", "set", "eth0", "up")
                _run(*inside, "link", "set", "lo", "up")
                bed.hosts[name] = Host(name, ns, ip, veth)
        except BaseException:
            bed.close()
            raise
        probe = _run("ip", "netns", "exec", bed.hosts[names[0]].ns, "unshare", "--uts",
                     "hostname", "probe", check=False)  # fmt: skip
        bed.uts = probe.returncode == 0
        bed.logdir.mkdir(parents=True, exist_ok=True)
        STATE.mkdir(parents=True, exist_ok=True)
        (STATE / f"{tag}.json").write_text(json.dumps({
            "logdir": str(bed.logdir), "uts": bed.uts,
            "hosts": {h.name: [h.ns, h.ip, h.veth] for h in bed.hosts.values()},
        }))  # fmt: skip
        return bed

    @classmethod
    def attach(cls, tag: str) -> TestBed:
        """The bed ``tag`` made by another process (``scripts/testbed``)."""
        try:
            state = json.loads((STATE / f"{tag}.json").read_text())
        except OSError:
            raise BedUnavailable(f"no test bed {tag!r} (scripts/testbed list)") from None
        hosts = {n: Host(n, *v) for n, v in state["hosts"].items()}
        # closed: this process did not make it and leaves it standing.
        return cls(tag, hosts, Path(state["logdir"]), state["uts"], closed=True)

    # ------------------------------------------------------------ processes
    def ip(self, host: str) -> str:
        return self.hosts[host].ip

    def wrap(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` as run on ``host`` (its namespace, and its hostname when possible)."""
        h = self.hosts[host]
        if self.uts:
            return ["ip", "netns", "exec", h.ns, "unshare", "--uts", "--", "sh", "-c",
                    'hostname "$0" && exec "$@"', host, *argv]  # fmt: skip
        return ["ip", "netns", "exec", h.ns, *argv]

    def start(
        self,
        host: str,
        argv: list[str],
        log: str,
        *,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host``, its output in ``logdir/log``; tracked by pid."""
        with open(self.logdir / log, "ab") as fh:
            p = subprocess.Popen(
                self.wrap(host, argv), stdout=fh, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, cwd=cwd or self.logdir,
            )  # fmt: skip
        self.hosts[host].procs.append(p)
        return p

    def run(
        self, host: str, argv: list[str], *, timeout: float = 60, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on ``host`` to completion."""
        return subprocess.run(self.wrap(host, argv), capture_output=True, text=True,
                              timeout=timeout, **kw)  # type: ignore[call-overload]  # fmt: skip

    def log(self, name: str) -> str:
        path = self.logdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_host(self, host: str) -> None:
        """SIGKILL every process in ``host``'s namespace at once (a host power cut)."""
        h = self.hosts[host]
        _kill_ns_pids(h.ns)
        for p in h.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        h.procs.clear()

    # ----------------------------------------------------------------- links
    def cut(self, host: str) -> None:
        """Take ``host``'s link down (its processes live on, unreachable)."""
        _run("ip", "link", "set", self.hosts[host].veth, "down")

    def restore(self, host: str) -> None:
        _run("ip", "link", "set", self.hosts[host].veth, "up")

    def netem(self, host: str, spec: str) -> None:
        """Shape what ``host`` sends, e.g. ``"delay 100ms loss 1%"`` (replaces any before)."""
        h = self.hosts[host]
        _run("ip", "netns", "exec", h.ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
             "netem", *spec.split())  # fmt: skip

    def clear_netem(self, host: str) -> None:
        h = self.hosts[host]
        _run("ip", "netns", "exec", h.ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def shape(self, host: str, delay_ms: float, loss_pct: float) -> str:
        """Delay and drop what ``host`` sends to the other hosts: with ``tc
        netem`` where the kernel has it, else with :mod:`support.slowlink`
        (userspace); the mechanism used."""
        if netem_missing() is None:
            self.netem(host, f"delay {delay_ms:g}ms loss {loss_pct:g}%")
            return "netem"
        h = self.hosts[host]
        subnet = h.ip.rsplit(".", 1)[0] + ".0/24"
        script = str(Path(__file__).with_name("slowlink.py"))
        p = self.start(host, [sys.executable, script, "imp0", str(delay_ms / 1000),
                              str(loss_pct / 100)], f"slowlink-{host}.log")  # fmt: skip
        self._shapers[host] = p
        inside = ("ip", "netns", "exec", h.ns, "ip")
        deadline = time.monotonic() + 30
        while _run(*inside, "link", "show", "imp0", check=False).returncode:
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slowlink did not start: {self.log(f'slowlink-{host}.log')}")
            time.sleep(0.1)
        _run(*inside, "link", "set", "imp0", "up")
        _run(*inside, "route", "add", subnet, "dev", "imp0", "src", h.ip, "table", "100")
        # Only what this host's own sockets send ("iif lo"); slowlink's raw
        # socket is bound to eth0, which the imp0 route does not match.
        _run(*inside, "rule", "add", "iif", "lo", "to", subnet, "lookup", "100", "pref", "100")
        return "slowlink"

    def unshape(self, host: str) -> None:
        """Undo :meth:`shape` (also one made by another process)."""
        self.clear_netem(host)
        h = self.hosts[host]
        _run("ip", "netns", "exec", h.ns, "ip", "rule", "del", "pref", "100", check=False)
        self._shapers.pop(host, None)
        for pid in _run("ip", "netns", "pids", h.ns, check=False).stdout.split():
            with contextlib.suppress(OSError, ValueError):
                if b"slowlink.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGTERM)  # our shaper, inside our namespace

    def reachable(self, src: str, dst: str) -> bool:
        """Whether a TCP connection from ``src`` to ``dst`` gets an answer (a
        refusal counts: the packet arrived)."""
        probe = ("import socket, sys\ntry: socket.create_connection((sys.argv[1], 9), 2)\n"
                 "except ConnectionRefusedError: pass\n")  # fmt: skip
        return self.run(src, [sys.executable, "-c", probe, self.ip(dst)]).returncode == 0

    # --------------------------------------------------------------- cleanup
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for h in self.hosts.values():
            for p in h.procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for h in self.hosts.values():
            for p in h.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
        _remove(self.tag, list(self.hosts))
        for h in self.hosts.values():
            for p in h.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)


def make_bed(names: list[str], logdir: Path) -> Iterator[TestBed]:
    """A bed for a fixture: skips with the reason where none can be made."""
    try:
        bed = TestBed.create(names, logdir)
    except BedUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield bed
    finally:
        bed.close()


def _enter_netns(ns: str) -> None:
    """Move the calling thread (only it) into ``ns``'s network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{ns}") as fh:
        if libc.setns(fh.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")


def call_in(bed: TestBed, host: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a thread inside ``host``'s network (e.g. an HTTP client
    reaching a service that listens only there); the test process stays put."""
    with ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(bed.hosts[host].ns,)) as ex:
        return ex.submit(fn, *args).result()
