"""The operating system, its version, the CPU architecture and the CPU model, on
Linux, macOS and Windows.

Each system has its own sources: Linux ``/etc/os-release`` and ``/proc/cpuinfo``;
macOS ``sw_vers`` and ``sysctl``; Windows CIM through PowerShell, else ``wmic``
(removed from recent Windows 11 builds, kept as the fallback for older hosts).
Every command goes through :func:`run_command`, a module attribute, so the macOS
and Windows paths are tested here with their recorded outputs
(tests/data/platforms/). A command that is missing, fails or hangs yields ""
and the fact falls back to what :mod:`platform` says: detection never fails.

Architectures are named one way everywhere (``x86_64``, ``arm64``, ``x86``,
``arm``), whatever the system calls them (``AMD64``, ``aarch64``, ``i686`` ...);
on a Mac, a Python running under Rosetta reports the machine's own ``arm64``.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ARCH = {
    "x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "em64t": "x86_64",
    "aarch64": "arm64", "arm64": "arm64", "aarch64_be": "arm64",
    "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "x86": "x86",
    "armv7l": "arm", "armv6l": "arm", "arm": "arm",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}  # fmt: skip
# Win32_Processor.Architecture codes (CIM).
_WIN_ARCH = {0: "x86", 5: "arm", 9: "x86_64", 12: "arm64"}
OS_RELEASE = Path("/etc/os-release")
CPUINFO = Path("/proc/cpuinfo")


def run_command(argv: list[str], timeout: float = 10.0) -> str:
    """stdout of ``argv``, or "" when it is missing, fails or outlives ``timeout``."""
    exe = shutil.which(argv[0])
    if exe is None:
        return ""
    try:
        proc = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
            encoding="utf-8", errors="replace",
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def normalise_arch(machine: str) -> str:
    """One name per architecture (``AMD64`` -> ``x86_64``); unknown ones lower-cased."""
    m = machine.strip().lower()
    return _ARCH.get(m, m or "unknown")


def facts(
    system: str | None = None, run: Callable[[list[str]], str] | None = None
) -> dict[str, Any]:
    """``{"os", "os_version", "arch", "cpu_model"}`` for ``system`` (default: this one,
    as :func:`platform.system` names it); ``run`` replaces :func:`run_command`."""
    system = system or platform.system()
    run = run or run_command
    if system == "Darwin":
        out = _macos(run)
    elif system == "Windows":
        out = _windows(run)
    elif system == "Linux":
        out = _linux()
    else:
        out = {"os": system.lower(), "os_version": platform.release(), "arch": "", "cpu_model": ""}
    out["arch"] = out["arch"] or normalise_arch(platform.machine())
    out["cpu_model"] = clean_cpu_model(out["cpu_model"] or platform.processor() or out["arch"])
    return out


def clean_cpu_model(model: str) -> str:
    # Trademark noise makes labels longer, not more distinct.
    model = re.sub(r"\((R|TM|tm|r)\)", "", model)
    return re.sub(r"\s+", " ", model).strip()


# ---- Linux -------------------------------------------------------------------------


def _linux() -> dict[str, Any]:
    try:
        release = parse_os_release(OS_RELEASE.read_text())
    except OSError:
        release = ""
    try:
        model = parse_cpuinfo(CPUINFO.read_text())
    except OSError:
        model = ""
    return {"os": "linux", "os_version": release or f"Linux {platform.release()}",
            "arch": "", "cpu_model": model}  # fmt: skip


def parse_os_release(text: str) -> str:
    """``PRETTY_NAME`` of os-release(5) (else ``NAME VERSION_ID``), unquoted."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'")
    return values.get("PRETTY_NAME") or " ".join(
        v for v in (values.get("NAME"), values.get("VERSION_ID")) if v
    )


def parse_cpuinfo(text: str) -> str:
    """The first model line of /proc/cpuinfo (x86 ``model name``, some ARM ``Model``)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return ""


# ---- macOS -------------------------------------------------------------------------


def _macos(run: Callable[[list[str]], str]) -> dict[str, Any]:
    name = run(["sw_vers", "-productName"]).strip() or "macOS"
    version = run(["sw_vers", "-productVersion"]).strip() or platform.mac_ver()[0]
    arch = normalise_arch(run(["uname", "-m"]) or platform.machine())
    # Under Rosetta 2, uname and Python say x86_64 on an Apple-silicon machine.
    if run(["sysctl", "-n", "sysctl.proc_translated"]).strip() == "1":
        arch = "arm64"
    return {"os": "macos", "os_version": f"{name} {version}".strip(), "arch": arch,
            "cpu_model": run(["sysctl", "-n", "machdep.cpu.brand_string"]).strip()}  # fmt: skip


# ---- Windows -----------------------------------------------------------------------

CIM_OS = [
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "Get-CimInstance Win32_OperatingSystem | Select-Object Caption,Version | ConvertTo-Json",
]
CIM_CPU = [
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "Get-CimInstance Win32_Processor | Select-Object Name,Architecture | ConvertTo-Json",
]
WMIC_OS = ["wmic", "os", "get", "Caption,Version", "/value"]
WMIC_CPU = ["wmic", "cpu", "get", "Name,Architecture", "/value"]  # fmt: skip


def _windows(run: Callable[[list[str]], str]) -> dict[str, Any]:
    os_rows = parse_cim_json(run(CIM_OS)) or parse_wmic_value(run(WMIC_OS))
    cpu_rows = parse_cim_json(run(CIM_CPU)) or parse_wmic_value(run(WMIC_CPU))
    os_row = os_rows[0] if os_rows else {}
    cpu = cpu_rows[0] if cpu_rows else {}  # several sockets: the first names them
    caption = str(os_row.get("Caption") or f"Windows {platform.release()}").strip()
    version = str(os_row.get("Version") or platform.version()).strip()
    code = str(cpu.get("Architecture", "")).strip()
    return {"os": "windows", "os_version": f"{caption} {version}".strip(),
            "arch": _WIN_ARCH.get(int(code), "") if code.isdigit() else "",
            "cpu_model": str(cpu.get("Name") or "")}  # fmt: skip


def parse_cim_json(text: str) -> list[dict[str, Any]]:
    """``ConvertTo-Json`` output: one object, or a list of them (several CPUs)."""
    try:
        data = json.loads(text.lstrip("\ufeff")) if text.strip() else None
    except ValueError:
        return []
    if isinstance(data, dict):
        return [data]
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def parse_wmic_value(text: str) -> list[dict[str, str]]:
    """``wmic ... /value`` output: ``Key=Value`` lines, records between blank lines
    (wmic ends its lines with ``\\r\\r\\n``)."""
    rows: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.replace("\r", "").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key.strip():
            current[key.strip()] = value.strip()
        elif current:
            rows.append(current)
            current = {}
    if current:
        rows.append(current)
    return rows
