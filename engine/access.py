"""Who may use the dashboard and its API: users, roles, hashed secrets and command rights.

The ``access`` section itself (:class:`~engine.config.AccessConfig`, its users and tokens) is
in :mod:`engine.config.dashboard`; this module holds the logic. Passwords are stored only as
salted hashes (``scrypt$...`` from :func:`hash_password`, or ``pbkdf2_sha256$...``); API tokens
only as SHA-256 digests (:func:`hash_token`; tokens are random, so no salt is needed).
:class:`AccessDirectory` resolves the configured and file-based users once and answers
"who is this?"; :func:`make_authorizer` turns it into the ``authorize(actor, command)`` the
runner calls on the engine thread, so a control is re-checked server-side whatever the page
showed.

Local development: ``dev_mode: true`` (the embedded default) adds the INSECURE users
operator/operator and viewer/viewer when none are configured and a fixed, public cookie
secret; it is refused on non-loopback addresses by the server and logged loudly.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from engine.config import (
    COOKIE_SECRET_ENV,
    OPERATOR,
    VIEWER,
    AccessConfig,
    ApiTokenConfig,
    UserConfig,
    UsersFile,
    build,
    parse_password_hash,
)
from streams.errors import ConfigError

#: Public on purpose: only ever used with ``dev_mode``, which is refused off loopback.
DEV_COOKIE_SECRET = "INSECURE-seamless-dev-mode-cookie-secret-do-not-use-in-production"
DEV_USERS = {OPERATOR: OPERATOR, VIEWER: VIEWER}
MIN_COOKIE_SECRET_LEN = 32
DEV_MODE_WARNING = (
    "INSECURE access.dev_mode is on: built-in users operator/operator and viewer/viewer and a "
    "public cookie secret; serve on loopback only. Set access.dev_mode: false, users (hashed "
    "with `seamless hash-password`) and SEAMLESS_COOKIE_SECRET for real use."
)

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _DKLEN = 2**14, 8, 1, 32
_PBKDF2_DEFAULT_ITERATIONS = 600_000


# -- hashing -------------------------------------------------------------------------------
def hash_password(password: str, *, method: str = "scrypt") -> str:
    """A salted hash of ``password`` to store in ``access.users`` (``seamless hash-password``)."""
    if not password:
        raise ConfigError("password: expected a non-empty string")
    salt = secrets.token_bytes(16)
    if method == "scrypt":
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_DKLEN
        )
        return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"
    if method == "pbkdf2_sha256":
        it = _PBKDF2_DEFAULT_ITERATIONS
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, it, _DKLEN)
        return f"pbkdf2_sha256${it}${_b64(salt)}${_b64(digest)}"
    raise ConfigError(f"method: expected 'scrypt' or 'pbkdf2_sha256', got {method!r}")


def verify_password(password: str, password_hash: str) -> bool:
    """True if ``password`` matches ``password_hash`` (constant-time compare)."""
    try:
        method, params, salt, expected = parse_password_hash(password_hash)
    except ValueError:
        return False
    if method == "scrypt":
        n, r, p = params
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**27
        )
    else:
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, params[0], len(expected))
    return hmac.compare_digest(got, expected)


def hash_token(token: str) -> str:
    """The form in which an API token is configured: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> tuple[str, str]:
    """A fresh random API token and its hash: give the first out, configure the second."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- the resolved directory ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated principal: the user name (the audited actor) and its role."""

    user: str
    role: str


class AccessDirectory:
    """The users and API tokens in force, resolved once from :class:`AccessConfig`.

    Read-only after construction, so any thread may use it.
    """

    def __init__(
        self,
        users: Mapping[str, UserConfig],
        api_tokens: Mapping[str, ApiTokenConfig] | None = None,
        *,
        dev_mode: bool = False,
        system_actors: tuple[str, ...] = (),
    ) -> None:
        clash = sorted(set(users) & set(system_actors))
        if clash:
            raise ConfigError(
                f"access.users.{clash[0]}: a user may not be named like a system actor "
                f"({', '.join(system_actors)})"
            )
        self.users = dict(users)
        self.api_tokens = {_normal_token_hash(k): v for k, v in (api_tokens or {}).items()}
        # Token identities are actors too (the runner re-checks them by name).
        self._roles = {name: user.role for name, user in self.users.items()}
        for token in self.api_tokens.values():
            known = self._roles.setdefault(token.user, token.role)
            if known != token.role or token.user in system_actors:
                raise ConfigError(
                    f"access.api_tokens: user {token.user!r} with role {token.role!r} clashes "
                    f"with a user, another token or a system actor of that name"
                )
        self.dev_mode = dev_mode
        self.system_actors = frozenset(system_actors)
        self._dummy_hash = next(iter(self.users.values())).password_hash if self.users else ""

    @classmethod
    def from_config(
        cls, access: AccessConfig, *, base_dir: str | os.PathLike[str] | None = None
    ) -> AccessDirectory:
        """Merge ``access.users`` with ``users_file``; dev mode adds the INSECURE dev users
        when no user is configured. Raises ConfigError naming the file or key."""
        users = dict(access.users)
        tokens = dict(access.api_tokens)
        if access.users_file:
            extra = load_users_file(Path(base_dir or ".") / access.users_file)
            users.update(extra.users)
            tokens.update(extra.api_tokens)
        if not users:
            if not access.dev_mode:
                raise ConfigError(
                    "access.users: no users configured and dev_mode is false; add users "
                    "(password hashes from `seamless hash-password`) or access.users_file"
                )
            users = _dev_users()
        return cls(
            users, tokens, dev_mode=access.dev_mode, system_actors=tuple(access.system_actors)
        )

    def verify(self, username: str, password: str) -> Identity | None:
        """The identity if the password is right, else None (same work for unknown users)."""
        user = self.users.get(username)
        if user is None:
            if self._dummy_hash:
                verify_password(password, self._dummy_hash)  # equalize timing
            return None
        if not verify_password(password, user.password_hash):
            return None
        return Identity(username, user.role)

    def role_of(self, username: str) -> str | None:
        """The role of a configured user or API-token identity, or None."""
        return self._roles.get(username)

    def identify_token(self, token: str) -> Identity | None:
        """The identity an API bearer token acts as, or None."""
        found = self.api_tokens.get(hash_token(token)) if token else None
        return Identity(found.user, found.role) if found is not None else None


@functools.lru_cache(maxsize=1)
def _dev_users_cached() -> tuple[tuple[str, UserConfig], ...]:
    return tuple(
        (name, UserConfig(role=name, password_hash=hash_password(pw)))
        for name, pw in DEV_USERS.items()
    )


def _dev_users() -> dict[str, UserConfig]:
    """The dev-mode users with their password hashes, hashed once per process: scrypt costs
    ~50 ms a user, and every kernel (each backtest, each optimizer trial) builds a directory."""
    return dict(_dev_users_cached())


def _normal_token_hash(value: str) -> str:
    text = value.strip().lower()
    if not text.startswith("sha256:"):
        text = "sha256:" + text
    hexpart = text.removeprefix("sha256:")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ConfigError(
            f"access.api_tokens: key {value[:12]!r}... is not a token hash; expected "
            "'sha256:<64 hex>' from hash_token()"
        )
    return text


def load_users_file(path: str | os.PathLike[str]) -> UsersFile:
    """Read and validate a users file (YAML or JSON; JSON is YAML)."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"access.users_file: cannot read {file}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"access.users_file: {file} is not valid YAML/JSON: {exc}") from exc
    try:
        return build(UsersFile, data)
    except ConfigError as exc:
        raise ConfigError(f"access.users_file {file}: {exc}") from exc


def resolve_cookie_secret(access: AccessConfig, env: Mapping[str, str] | None = None) -> str:
    """The cookie secret: env ``SEAMLESS_COOKIE_SECRET``, else the config, else (dev mode
    only) the public dev secret. Outside dev mode a missing or short secret is refused."""
    env = os.environ if env is None else env
    secret = env.get(COOKIE_SECRET_ENV) or access.cookie_secret
    if secret:
        if len(secret) < MIN_COOKIE_SECRET_LEN and not access.dev_mode:
            raise ConfigError(
                f"access.cookie_secret: expected at least {MIN_COOKIE_SECRET_LEN} characters, "
                f"got {len(secret)}"
            )
        return secret
    if access.dev_mode:
        return DEV_COOKIE_SECRET
    raise ConfigError(
        f"access.cookie_secret: not set and dev_mode is false; refusing to start. Set env "
        f"{COOKIE_SECRET_ENV} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        " or access.cookie_secret, or access.dev_mode: true for local development only"
    )


# -- authorization -----------------------------------------------------------------------------
def authorize_command(user: str, role: str | None, command: str) -> bool:
    """May ``user`` with ``role`` issue runner ``command``? Only operators use Controls."""
    return bool(user) and role == OPERATOR and bool(command)


def make_authorizer(
    access: AccessConfig, directory: AccessDirectory | None = None
) -> Callable[[str, str], bool]:
    """The ``authorize(actor, command)`` for the runner: system actors and operators yes,
    viewers and unknown actors no (the runner audits every refusal as ``command_refused``).

    Runs on the engine thread: a dictionary lookup, never I/O. Pass the ``directory`` the
    server uses so both agree; without one it is built from ``access`` (dev users included).
    """
    resolved = directory if directory is not None else AccessDirectory.from_config(access)
    system = frozenset(access.system_actors)

    def authorize(actor: str, command: str) -> bool:
        if actor in system:
            return True
        return authorize_command(actor, resolved.role_of(actor), command)

    return authorize
