"""Deployment files for every platform, generated from one deployment's settings
(``dtf-core deploy TARGET``; docs/deploy.md).

* :mod:`settings` reads and checks the settings (a ``[deploy]`` TOML table and
  command-line overrides);
* :mod:`commands` builds every ``dtf-core`` command line the files run, in one
  place;
* one module per kind of platform writes its files: :mod:`systemd`,
  :mod:`launchd`, :mod:`windows`, :mod:`containers` (docker, compose),
  :mod:`kubernetes`, :mod:`slurm`.

:func:`generate` returns ``{file name: text}``; :func:`write` puts them in a
directory. Nothing here starts or installs anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dtf_core.deploy import containers, kubernetes, launchd, slurm, systemd, windows
from dtf_core.deploy.settings import DeploySettings, load
from dtf_core.errors import OptionError

GENERATORS: dict[str, Callable[[DeploySettings], dict[str, str]]] = {
    "systemd": systemd.generate,
    "launchd": launchd.generate,
    "windows": windows.generate,
    "docker": containers.generate_docker,
    "compose": containers.generate_compose,
    "kubernetes": kubernetes.generate,
    "slurm": slurm.generate,
}
TARGETS = tuple(GENERATORS)

__all__ = ["GENERATORS", "TARGETS", "DeploySettings", "generate", "load", "write"]


def generate(target: str, settings: DeploySettings) -> dict[str, str]:
    """The files of ``target`` for ``settings``: ``{file name: text}``."""
    try:
        return GENERATORS[target](settings)
    except KeyError:
        raise OptionError(f"unknown target {target!r}; one of {', '.join(TARGETS)}") from None


def write(files: dict[str, str], out_dir: str, *, force: bool = False) -> list[Path]:
    """Write ``files`` into ``out_dir`` (created). An existing file is an error
    unless ``force``: a deployment directory often holds local edits."""
    out = Path(out_dir)
    targets = [out / name for name in files]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise OptionError(f"{existing[0]} exists; pass --force to overwrite it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in zip(targets, files.values(), strict=True):
            # newline="": the text already has the line ends its platform wants.
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            if path.suffix in (".sbatch", ".py"):
                os.chmod(path, 0o755)
    except OSError as exc:
        raise OptionError(
            f"cannot write into {out_dir}: {exc.strerror}; check the directory"
        ) from None
    return targets
