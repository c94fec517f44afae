"""Tokens and result signatures: the only module that imports ``jwt``.

Dask authenticates nobody: any client may run code and any worker may join.
dtf adds two gates, both HS256 (HMAC-SHA256, no extra dependency):

* **Tokens** (JWT) signed with the deployment secret. API tokens carry a role
  (``viewer`` < ``submitter`` < ``admin``) and the audience ``dtf-api``; worker
  tokens carry the role ``worker`` and the audience ``dtf-worker``, so a token
  made for one gate never opens the other.
* **Result signatures**: each :class:`~dtf_core.model.AttemptResult` is signed on
  the worker with the result key (a separate file, so that workers never hold
  the secret that mints tokens) and verified by the coordinator before it is
  written. The signature is a compact JWS whose payload is the SHA-256 of the
  result's canonical JSON: any changed field breaks it.

Nothing here logs, and no message repeats a token or a secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ``jwt`` (and ``cryptography`` under it, ~0.3 s) is imported by the functions that sign or
# check: every embedded worker and `dtf-core run` load this module, and without a key they
# never sign anything.
from dtf_core.errors import AuthError, OptionError
from dtf_core.model import AttemptResult

API_AUDIENCE = "dtf-api"
WORKER_AUDIENCE = "dtf-worker"
ISSUER = "dtf"
ROLES = ("viewer", "submitter", "admin")
WORKER_ROLE = "worker"
_RANK = {role: i for i, role in enumerate(ROLES, start=1)}
# RFC 7518 asks for an HMAC key at least as long as the hash (32 bytes).
MIN_SECRET_BYTES = 32
RESULT_KEY_ENV = "DTF_RESULT_KEY_FILE"
_LEEWAY_S = 5.0  # clock skew between hosts
_TTL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def is_credential_env(name: str) -> bool:
    """Whether environment variable ``name`` may carry a dtf credential (or
    where one is): never handed to a task's subprocess."""
    upper = name.upper()
    return upper.startswith("DTF_") and any(w in upper for w in ("TOKEN", "KEY", "SECRET"))


@dataclass(frozen=True)
class Claims:
    subject: str
    role: str
    expires_at: float
    token_id: str


# ----------------------------------------------------------------------- secrets
def new_secret() -> str:
    """A fresh secret as text (64 hex characters = 32 random bytes)."""
    return secrets.token_hex(32)


def write_secret(path: str | os.PathLike[str]) -> None:
    """Create ``path`` holding a new secret, readable by its owner only."""
    p = Path(path)
    if p.exists():
        raise OptionError(f"{p} already exists; remove it first to make a new secret")
    if not p.parent.is_dir():
        raise OptionError(f"cannot write {p}: its directory does not exist")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_secret() + "\n")


def read_secret(path: str | os.PathLike[str], what: str = "secret file") -> bytes:
    """The key in ``path`` (surrounding whitespace dropped), at least 32 bytes."""
    p = Path(path)
    try:
        data = p.read_bytes().strip()
    except FileNotFoundError:
        raise OptionError(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise OptionError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if len(data) < MIN_SECRET_BYTES:
        raise OptionError(
            f"{what} {p} holds {len(data)} bytes; it needs at least {MIN_SECRET_BYTES} "
            "(make one with `dtf-core token secret FILE`)"
        )
    return data


def parse_ttl(text: str) -> float:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` or plain seconds."""
    m = _TTL_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise OptionError(f"--ttl {text!r} is not a duration such as 30m, 12h, 7d")
    return float(m.group(1)) * _TTL_UNITS[m.group(2)]


# ------------------------------------------------------------------------ tokens
def issue_token(
    secret: bytes, *, role: str, subject: str, ttl_s: float, now: float | None = None
) -> str:
    """A signed token for ``subject`` with ``role`` that expires after ``ttl_s``."""
    if role not in (*ROLES, WORKER_ROLE):
        raise OptionError(f"role {role!r} is not one of {', '.join((*ROLES, WORKER_ROLE))}")
    if not subject.strip():
        raise OptionError("the token's subject must not be empty")
    now = time.time() if now is None else now
    claims = {
        "iss": ISSUER,
        "aud": WORKER_AUDIENCE if role == WORKER_ROLE else API_AUDIENCE,
        "sub": subject,
        "role": role,
        "iat": int(now),
        "exp": int(now + ttl_s),
        "jti": secrets.token_hex(8),
    }
    import jwt

    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: bytes, token: str | None, *, audience: str) -> Claims:
    """The claims of a valid token, or :class:`AuthError` (401) saying why not."""
    if not token:
        raise AuthError("missing token")
    import jwt

    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],  # never trust the token's own "alg"
            audience=audience,
            issuer=ISSUER,
            leeway=_LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidAudienceError:
        kind = "an API token" if audience == WORKER_AUDIENCE else "a worker token"
        raise AuthError(f"wrong kind of token ({kind})") from None
    except jwt.InvalidTokenError:
        # Bad signature, malformed, wrong issuer: one answer, no oracle.
        raise AuthError("invalid token") from None
    role = str(raw.get("role", ""))
    if audience == API_AUDIENCE and role not in _RANK:
        raise AuthError("invalid token")
    if audience == WORKER_AUDIENCE and role != WORKER_ROLE:
        raise AuthError("invalid token")
    return Claims(str(raw["sub"]), role, float(raw["exp"]), str(raw.get("jti", "")))


def require_role(claims: Claims, needed: str) -> None:
    """:class:`AuthError` (403) unless ``claims`` carry ``needed`` or a higher role."""
    if _RANK.get(claims.role, 0) < _RANK[needed]:
        raise AuthError(f"role {claims.role!r} is not allowed to do this (needs {needed})", 403)


def has_role(claims: Claims, needed: str) -> bool:
    return _RANK.get(claims.role, 0) >= _RANK[needed]


# ------------------------------------------------------------- result signatures
_result_key: bytes | None = None
_result_key_loaded = False


def set_result_key(key: bytes | None) -> None:
    """Install the key this process signs results with (the worker preload does)."""
    global _result_key, _result_key_loaded
    _result_key, _result_key_loaded = key, True


def result_key() -> bytes | None:
    """The signing key: set by :func:`set_result_key`, else read once from the
    file named by ``$DTF_RESULT_KEY_FILE``, else None (signing off)."""
    global _result_key, _result_key_loaded
    if not _result_key_loaded:
        path = os.environ.get(RESULT_KEY_ENV)
        _result_key = read_secret(path, "result key file") if path else None
        _result_key_loaded = True
    return _result_key


def result_digest(result: AttemptResult) -> str:
    """SHA-256 of the result's canonical JSON, every field but the signature."""
    fields = dataclasses.asdict(result)
    fields.pop("signature", None)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sign_result(result: AttemptResult, key: bytes | None = None) -> None:
    """Set ``result.signature`` when a key is configured (no-op otherwise)."""
    key = key if key is not None else result_key()
    if key is None:
        return
    import jwt

    result.signature = jwt.encode({"sha256": result_digest(result)}, key, algorithm="HS256")


def verify_result(result: AttemptResult, key: bytes) -> str | None:
    """None when ``result`` carries a valid signature, else why it does not."""
    if not result.signature:
        return "the result is not signed"
    import jwt

    try:
        payload: dict[str, Any] = jwt.decode(result.signature, key, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return "bad signature"
    if payload.get("sha256") != result_digest(result):
        return "the signature does not match the result (tampered in transit?)"
    return None


class ResultVerifier:
    """The coordinator's ``verify`` callable: ``None`` or the reason for rejecting."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, result: AttemptResult) -> str | None:
        return verify_result(result, self._key)
