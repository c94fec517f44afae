"""Tokens, keys and result signatures: the only module that imports ``jwt``.

Dask authenticates nobody: any client may run code and any worker may join.
dtf adds two gates, both HS256 (HMAC-SHA256, no extra dependency), and three
keys, one per job, so that whoever holds one key cannot do another's job
(docs/security.md):

* **API tokens** (JWT, audience ``dtf-api``, a role ``viewer`` < ``submitter`` <
  ``admin``) are signed with the **API key**, which only ``serve`` reads.
* **Worker tokens** (audience ``dtf-worker``, role ``worker``) are signed with
  the **worker admission key**, which only the scheduler reads. A compromised
  scheduler can admit workers; it cannot mint API tokens.
* **Result signatures**: each :class:`~dtf_core.model.AttemptResult` is signed on
  the worker with the **result key** and verified by the coordinator before it
  is written. The signature is a compact JWS whose payload is the SHA-256 of the
  result's canonical JSON: any changed field breaks it.

Every token has an id (``jti``), an expiry no further than
``dtf.security.max-ttl`` (API) or ``max-worker-ttl`` (workers) from its issue,
and can be revoked (:mod:`dtf_core.cluster.revocation`). Key and token files
must be private to their owner: one readable by group or others is refused.

Nothing here logs, and no message repeats a token or a secret.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ``jwt`` (and ``cryptography`` under it, ~0.3 s) is imported by the functions that sign or
# check: every embedded worker and `dtf-core run` load this module, and without a key they
# never sign anything.
from dtf_core import config
from dtf_core.cluster import revocation
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
KEY_FILES = {
    "api.key": "API tokens: only `dtf-core serve --secret-file` reads it",
    "worker.key": "worker admission: only `dtf-core scheduler --secret-file` reads it",
    "result.key": "result signatures: serve and every worker read it",
}


def new_secret() -> str:
    """A fresh secret as text (64 hex characters = 32 random bytes)."""
    return secrets.token_hex(32)


def write_private(path: str | os.PathLike[str], text: str, what: str = "file") -> None:
    """Create ``path`` holding ``text``, readable by its owner only; never overwrites."""
    p = Path(path)
    if p.exists():
        raise OptionError(f"{p} already exists; remove it first to write a new {what}")
    if not p.parent.is_dir():
        raise OptionError(f"cannot write {p}: its directory does not exist")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def write_secret(path: str | os.PathLike[str]) -> None:
    """Create ``path`` holding a new secret, readable by its owner only."""
    write_private(path, new_secret() + "\n", "secret")


def init_keys(directory: str | os.PathLike[str]) -> list[Path]:
    """Write the three keys of a deployment (:data:`KEY_FILES`) into ``directory``
    (created owner-only when missing); refuses if any of them exists."""
    d = Path(directory)
    files = [d / name for name in KEY_FILES]
    taken = [str(f) for f in files if f.exists()]
    if taken:
        raise OptionError(f"{', '.join(taken)} already exist(s); remove them to make new keys")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    for f in files:
        write_secret(f)
    return files


def check_private(path: str | os.PathLike[str], what: str) -> None:
    """:class:`OptionError` when ``path`` grants any access to group or others:
    a key or token anyone else on the host can read is no longer a secret."""
    if os.name == "nt":  # mode bits mean nothing there; ACLs are the owner's job
        return
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise OptionError(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise OptionError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise OptionError(
            f"{what} {p} is open to group or others (mode {stat.S_IMODE(mode):03o}); "
            f"run `chmod 600 {p}`"
        )


def read_secret(path: str | os.PathLike[str], what: str = "secret file") -> bytes:
    """The key in ``path`` (surrounding whitespace dropped), at least 32 bytes,
    from a file only its owner may read."""
    p = Path(path)
    check_private(p, what)
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


def read_token_file(path: str | os.PathLike[str], what: str = "token file") -> str:
    """The token in ``path``, a file only its owner may read."""
    p = Path(path)
    check_private(p, what)
    try:
        token = p.read_text().strip()
    except OSError as exc:
        raise OptionError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if not token:
        raise OptionError(f"{what} {p} is empty")
    return token


def key_id(key: bytes) -> str:
    """A public name for ``key`` (an HMAC of a fixed text): lets two processes
    see whether they hold the same key without showing it."""
    return hmac.new(key, b"dtf key id", hashlib.sha256).hexdigest()[:16]


def parse_ttl(text: str) -> float:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` or plain seconds."""
    m = _TTL_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise OptionError(f"--ttl {text!r} is not a duration such as 30m, 12h, 7d")
    return float(m.group(1)) * _TTL_UNITS[m.group(2)]


def max_ttl(role: str) -> float:
    """The longest lifetime a token for ``role`` may have (seconds)."""
    return config.seconds("security.max-worker-ttl" if role == WORKER_ROLE else "security.max-ttl")


# ------------------------------------------------------------------------ tokens
def issue_token(
    secret: bytes, *, role: str, subject: str, ttl_s: float, now: float | None = None
) -> str:
    """A signed token for ``subject`` with ``role`` that expires after ``ttl_s``
    (at most :func:`max_ttl`)."""
    if role not in (*ROLES, WORKER_ROLE):
        raise OptionError(f"role {role!r} is not one of {', '.join((*ROLES, WORKER_ROLE))}")
    if not subject.strip():
        raise OptionError("the token's subject must not be empty")
    longest = max_ttl(role)
    if ttl_s > longest:
        setting = "max-worker-ttl" if role == WORKER_ROLE else "max-ttl"
        raise OptionError(
            f"a {role} token may live at most {_days(longest)} (dtf.security.{setting}); "
            f"asked for {_days(ttl_s)}"
        )
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


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds:g}s"


# Revocation lists by the key whose tokens they name: the process that checks
# tokens signed with a key (serve, the scheduler) says where its list is.
_revocations: dict[bytes, revocation.RevocationList] = {}


def watch_revocations(key: bytes, key_file: str | os.PathLike[str]) -> revocation.RevocationList:
    """Check tokens signed with ``key`` against the list next to ``key_file``."""
    lst = revocation.RevocationList(revocation.revocation_file(key_file))
    _revocations[key] = lst
    return lst


# Tokens already verified, by (secret, audience, token): every request of an
# attached console (several a second, twenty consoles) presents the same
# token, and decoding it (HMAC, JSON, claim checks) was most of what serve
# spent per console request. Only valid tokens enter; a hit still checks the
# expiry and the revocation list, and a token's other checks cannot change.
_VERIFIED: collections.OrderedDict[tuple[bytes, str, str], Claims] = collections.OrderedDict()
_VERIFIED_MAX = 1024
_verified_lock = threading.Lock()


def verify_token(secret: bytes, token: str | None, *, audience: str) -> Claims:
    """The claims of a valid token, or :class:`AuthError` (401) saying why not."""
    if not token:
        raise AuthError("missing token")
    key = (secret, audience, token)
    with _verified_lock:
        known = _VERIFIED.get(key)
        if known is not None:
            _VERIFIED.move_to_end(key)
    if known is not None:
        if time.time() > known.expires_at + _LEEWAY_S:
            raise AuthError("token expired")
        _check_revoked(secret, known)
        return known
    claims = _decode(secret, token, audience)
    with _verified_lock:
        _VERIFIED[key] = claims
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return claims


def _check_revoked(secret: bytes, claims: Claims) -> None:
    watched = _revocations.get(secret)
    if watched is not None:
        watched.check(claims.token_id)


def _decode(secret: bytes, token: str, audience: str) -> Claims:
    import jwt

    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],  # never trust the token's own "alg"
            audience=audience,
            issuer=ISSUER,
            leeway=_LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]},
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
    try:
        lifetime = float(raw["exp"]) - float(raw["iat"])
    except (TypeError, ValueError):
        raise AuthError("invalid token") from None
    if lifetime > max_ttl(role) + _LEEWAY_S:
        raise AuthError("token lives longer than this deployment allows (dtf.security)")
    claims = Claims(str(raw["sub"]), role, float(raw["exp"]), str(raw["jti"]))
    _check_revoked(secret, claims)
    return claims


def token_facts(secret: bytes, token: str) -> tuple[str, float]:
    """Id and expiry of a token signed with ``secret``, expired or not (to revoke it)."""
    import jwt

    try:
        raw = jwt.decode(
            token, secret, algorithms=["HS256"],
            options={"verify_exp": False, "verify_aud": False, "require": ["exp", "jti"]},
        )  # fmt: skip
    except jwt.InvalidTokenError:
        raise OptionError("the token was not signed with this key (or is no dtf token)") from None
    return str(raw["jti"]), float(raw["exp"])


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
