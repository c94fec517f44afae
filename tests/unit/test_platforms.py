"""OS, version, architecture and CPU model: Linux from this machine, macOS and Windows on
their code paths fed the outputs in tests/data/platforms/ (README there)."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import pytest

from dtf_core.cluster import hardware, platforms

DATA = Path(__file__).resolve().parents[1] / "data" / "platforms"
FILES = {
    ("sw_vers", "-productName"): "sw_vers-productName.txt",
    ("sw_vers", "-productVersion"): "sw_vers-productVersion.txt",
    ("uname", "-m"): "uname-m.txt",
    ("sysctl", "-n", "sysctl.proc_translated"): "sysctl-proc_translated.txt",
    ("sysctl", "-n", "machdep.cpu.brand_string"): "sysctl-brand_string.txt",
    tuple(platforms.CIM_OS): "cim-os.json",
    tuple(platforms.CIM_CPU): "cim-cpu.json",
    tuple(platforms.WMIC_OS): "wmic-os.txt",
    tuple(platforms.WMIC_CPU): "wmic-cpu.txt",
}


def recorded(machine: str, asked: list[tuple[str, ...]]) -> Callable[[list[str]], str]:
    """A ``run`` that answers from the machine's files; a missing file is a failed command."""

    def run(argv: list[str]) -> str:
        asked.append(tuple(argv))
        path = DATA / machine / FILES[tuple(argv)]
        # newline="": keep Windows' \r\n (and wmic's \r\r\n) as the commands print them.
        return path.read_bytes().decode("utf-8") if path.exists() else ""

    return run


@pytest.mark.parametrize(
    ("machine", "system", "expected"),
    [
        ("macos-arm64", "Darwin", ("macos", "macOS 14.5", "arm64", "Apple M2 Pro")),
        ("macos-rosetta", "Darwin", ("macos", "macOS 13.6.7", "arm64", "Apple M1")),
        (
            "macos-intel", "Darwin",
            ("macos", "Mac OS X 10.15.7", "x86_64", "Intel Core i7-9750H CPU @ 2.60GHz"),
        ),
        (
            "windows-cim-arm64", "Windows",
            ("windows", "Microsoft Windows 11 Pro 10.0.26100", "arm64",
             "Snapdragon X Elite - X1E78100 - Qualcomm Oryon CPU"),
        ),
        (
            "windows-cim-2socket", "Windows",
            ("windows", "Microsoft Windows Server 2022 Datacenter 10.0.20348", "x86_64",
             "Intel Xeon Gold 6248R CPU @ 3.00GHz"),
        ),
        (
            "windows-wmic", "Windows",
            ("windows", "Microsoft Windows 10 Pro 10.0.19045", "x86_64",
             "AMD Ryzen 7 5800X 8-Core Processor"),
        ),
    ],
)  # fmt: skip
def test_recorded_machines(machine: str, system: str, expected: tuple[str, ...]) -> None:
    asked: list[tuple[str, ...]] = []
    got = platforms.facts(system, run=recorded(machine, asked))
    assert (got["os"], got["os_version"], got["arch"], got["cpu_model"]) == expected
    if machine == "windows-wmic":  # CIM failed first, then wmic answered
        assert asked[:2] == [tuple(platforms.CIM_OS), tuple(platforms.WMIC_OS)]


def test_nothing_answers_still_gives_facts() -> None:
    for system in ("Darwin", "Windows"):
        got = platforms.facts(system, run=lambda argv: "")
        assert got["os"] in ("macos", "windows") and got["arch"] and got["cpu_model"]
    odd = platforms.facts("FreeBSD", run=lambda argv: "")
    assert odd["os"] == "freebsd"


def test_linux_for_real() -> None:
    if platform.system() != "Linux":
        pytest.skip("this machine is not Linux")
    got = platforms.facts()
    assert got["os"] == "linux"
    pretty = platforms.parse_os_release(Path("/etc/os-release").read_text())
    assert got["os_version"] == pretty and pretty
    assert got["arch"] == platforms.normalise_arch(platform.machine())
    assert got["arch"] in ("x86_64", "arm64")  # what CI machines are
    hardware.describe.cache_clear()
    try:
        info = hardware.describe()
    finally:
        hardware.describe.cache_clear()
    assert {k: info[k] for k in ("os", "os_version", "arch")} == {
        k: got[k] for k in ("os", "os_version", "arch")
    }


def test_parsers() -> None:
    assert platforms.parse_os_release('NAME="Alpine Linux"\nVERSION_ID=3.20.0\n') == (
        "Alpine Linux 3.20.0"
    )
    assert platforms.parse_cpuinfo("processor\t: 0\nModel\t\t: Raspberry Pi 4 Model B\n") == (
        "Raspberry Pi 4 Model B"
    )
    assert platforms.parse_cim_json("not json") == []
    assert platforms.parse_wmic_value("") == []
    assert [platforms.normalise_arch(m) for m in ("AMD64", "aarch64", "i686", "ARM64", "")] == [
        "x86_64", "arm64", "x86", "arm64", "unknown",
    ]  # fmt: skip


def test_a_missing_command_is_empty_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert platforms.run_command(["sw_vers", "-productName"]) == ""
