"""``dtf-core deploy TARGET``: write a deployment's files for one platform
(docs/deploy.md). Options override the ``[deploy]`` table of ``--config``."""

from __future__ import annotations

from typing import Any

import click

from dtf_core.cli.common import handle_errors
from dtf_core.deploy import TARGETS

# option name -> (settings key, help); file options go to [deploy.files].
_FILE_OPTIONS = {
    "--worker-key-file": ("worker_key", "The worker key (the scheduler's --secret-file)."),
    "--api-key-file": ("api_key", "The API key (serve's --secret-file)."),
    "--result-key-file": ("result_key", "The result key (serve and every worker)."),
    "--token-file": ("worker_token", "A worker's token file."),
    "--tls-ca-file": ("tls_ca", "Mutual TLS: the CA."),
    "--tls-cert": ("tls_cert", "Mutual TLS: the certificate."),
    "--tls-key": ("tls_key", "Mutual TLS: the private key."),
}


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(deploy_cmd)


def _file_options(fn: Any) -> Any:
    for flag, (key, help_) in reversed(_FILE_OPTIONS.items()):
        fn = click.option(flag, key, metavar="PATH", default=None,
                          help=help_ + " A path on the target host.")(fn)  # fmt: skip
    return fn


@click.command("deploy")
@click.argument("target", type=click.Choice(TARGETS))
# Not --output: everywhere else that names a FILE (docs/cli.md); this is a directory.
@click.option("--output-dir", "-o", "output", required=True, type=click.Path(file_okay=False),
              help="Directory to write the files into (created).")  # fmt: skip
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Deployment TOML with a [deploy] table; options override it.")  # fmt: skip
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Where workers and serve reach it, e.g. tcp://10.0.0.5:8786.")  # fmt: skip
@click.option("--scheduler-host", default=None, help="Interface the scheduler listens on.")
@click.option("--serve", "serve_address", metavar="HOST:PORT", default=None,
              help="Where serve listens (default 0.0.0.0:8780).")  # fmt: skip
# Not --db: that is the database a command itself opens; this one is on another host.
@click.option(
    "--serve-db", "db", default=None, metavar="FILE", help="serve's database on its host."
)
@click.option("--workdir", default=None, help="serve's upload directory (workers use it too).")
@click.option("--resources", "-r", default=None, metavar="NAME=N[,NAME=N]",
              help="Extra resource tags of every worker, e.g. CUDA=1.")  # fmt: skip
@click.option("--nthreads", type=int, default=None, help="Threads per worker.")
@click.option("--workers", type=int, default=None, help="CPU workers (compose, kubernetes, slurm).")
@click.option("--gpu-workers", type=int, default=None, help="GPU workers (same targets).")
@click.option("--gpus-per-worker", type=int, default=None,
              help="Devices per GPU worker: it asks for N and advertises GPU=N.")  # fmt: skip
@_file_options
@click.option("--dtf-core", "dtf_core", metavar="PATH", default=None,
              help="The dtf-core executable on the host (default per target).")  # fmt: skip
@click.option("--user", default=None, help="The account services run as (default dtf).")
@click.option("--name", default=None, help="Prefix of units, services and jobs (default dtf).")
@click.option("--image", default=None, help="Container image (default dtf:latest).")
@click.option("--namespace", default=None, help="Kubernetes namespace (default dtf).")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@handle_errors
def deploy_cmd(target: str, output: str, config_file: str | None, serve_address: str | None,
               force: bool, **options: Any) -> None:  # fmt: skip
    """Write TARGET's deployment files (systemd, launchd, windows, docker, compose,
    kubernetes, slurm) for this deployment's settings into --output-dir."""
    from dtf_core import deploy
    from dtf_core.errors import OptionError

    files = {key: options.pop(key) for key, _ in _FILE_OPTIONS.values()}
    overrides: dict[str, Any] = dict(options)
    overrides["files"] = {k: v for k, v in files.items() if v is not None} or None
    if serve_address:
        host, _, port = serve_address.rpartition(":")
        if not host or not port.isdigit():
            raise OptionError(f"--serve {serve_address!r} is not HOST:PORT, e.g. 0.0.0.0:8780")
        overrides.update(serve_host=host, serve_port=int(port))
    settings = deploy.load(config_file, overrides)
    for path in deploy.write(deploy.generate(target, settings), output, force=force):
        click.echo(str(path))
    click.echo(f"dtf-core deploy: next steps for {target}: docs/deploy.md#{target}", err=True)
