"""``dtf-core token``: the deployment's keys, and the tokens signed with them
(docs/security.md: one key per job, every token short-lived and revocable)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from dtf_core.cli.common import handle_errors


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


@click.group("token")
def token_group() -> None:
    """Make the deployment's keys; issue and revoke tokens."""


@token_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@handle_errors
def token_init(directory: str) -> None:
    """Write the three keys into DIRECTORY (owner-only): api.key, worker.key, result.key."""
    from dtf_core.cluster import security

    for path in security.init_keys(directory):
        click.echo(f"wrote {path}: {security.KEY_FILES[path.name]}", err=True)


@token_group.command("secret")
@click.argument("file", type=click.Path(dir_okay=False))
@handle_errors
def token_secret(file: str) -> None:
    """Create FILE holding one new random key (owner-only); never overwrites."""
    from dtf_core.cluster import security

    security.write_secret(file)
    click.echo(f"wrote a new secret to {file}", err=True)


@token_group.command("issue")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "submitter", "admin", "worker"]),
    help="API role (signed with api.key), or `worker` (signed with worker.key).",
)
@click.option("--subject", required=True, help="Who holds it (user, CI job, host).")
@click.option(
    "--ttl",
    default="7d",
    show_default=True,
    help="Lifetime: 30m, 12h, 7d (at most dtf.security.max-ttl, 30d; workers max-worker-ttl, 90d).",
)
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The key that signs it: api.key for API roles, worker.key for workers.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    default=None,
    help="Write the token to this new file (owner-only) instead of stdout.",
)
@handle_errors
def token_issue(role: str, subject: str, ttl: str, secret_file: str, output: str | None) -> None:
    """Issue a signed token; its id (for `token revoke`) goes to stderr."""
    from dtf_core.cluster import security

    secret = security.read_secret(secret_file)
    token = security.issue_token(secret, role=role, subject=subject, ttl_s=security.parse_ttl(ttl))
    token_id, expires = security.token_facts(secret, token)
    if output:
        security.write_private(output, token + "\n", "token")
        click.echo(f"wrote a {role} token for {subject} to {output}", err=True)
    else:
        click.echo(token)
    click.echo(f"token id {token_id}, expires {_when(expires)}", err=True)


@token_group.command("revoke")
@click.argument("token")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The key the token was signed with; the list is written next to it (KEY.revoked).",
)
@handle_errors
def token_revoke(token: str, secret_file: str) -> None:
    """Revoke TOKEN: a token id (printed by `token issue`) or a file holding the token.

    serve (API key) and the scheduler (worker key) read KEY.revoked again when it
    changes: the next request or join with the token is refused, and a worker
    connected with it is removed."""
    from dtf_core.cluster import revocation, security

    secret = security.read_secret(secret_file)
    if Path(token).is_file():
        # Any file, however readable: revoking a token found lying around is the point.
        token_id, until = security.token_facts(secret, Path(token).read_text().strip())
    else:
        # An id alone: keep it until any token issued before now has expired.
        token_id = token
        until = time.time() + max(security.max_ttl("admin"), security.max_ttl("worker"))
    listed = revocation.revocation_file(secret_file)
    n = revocation.add(listed, token_id, until)
    click.echo(f"revoked token {token_id} in {listed} ({n} on the list)", err=True)
