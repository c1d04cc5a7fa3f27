"""Configuration of the firmware runtime: one frozen dataclass per component, units in comments.

``DeviceConfig`` is what ``create_app`` takes. ``main.run`` builds it from the
command line (``--tls-profile``, ``--password-policy``...) and the device's
state directory; tests build it directly with small values.

Example::

    config = DeviceConfig(runtime_dir=tmp / "runtime", identity_dir=tmp / "identity")
    app = create_app(config, handoff=handoff, clock=fake_clock)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from common.atomicfile import private_dir, write_atomic
from common.flaws import UnsafeFlaws
from common.listener import ConnectionLimits

from .errors import ConfigError

PasswordPolicyName = Literal["nist-800-63b", "kr-terminal"]
PASSWORD_POLICIES: tuple[PasswordPolicyName, ...] = ("nist-800-63b", "kr-terminal")


@dataclass(frozen=True)
class ThrottleConfig:
    """Brute-force limits (EN 303 645 5.1-5). Counts are failed logins.

    Per account: after failure ``n`` (n < ``account_lockout_after``) the account
    waits ``backoff_base * 2**(n-1)`` seconds; from ``account_lockout_after``
    failures on it is locked for ``lockout * 2**(n - account_lockout_after)``
    seconds, at most ``lockout_max``. A success resets the count.
    Per source address: at most ``source_failures`` failures in any
    ``source_window`` seconds, then the source waits until the window clears.
    Unknown user names are counted exactly like real ones (no enumeration).

    Per-account limits bind untrusted clients only. A login presenting a valid
    device cookie for its user (``device.devicecookies``, OWASP's scheme) skips
    the source and account limits and meets the same back-off and lockout
    curve counted per cookie instead, so an attacker cannot lock the owner out.
    """

    backoff_base: float = 1.0  # seconds, wait after the first failure
    account_lockout_after: int = 5  # failures
    lockout: float = 60.0  # seconds, first lockout
    lockout_max: float = 900.0  # seconds (15 min)
    source_failures: int = 20  # failures per window
    source_window: float = 60.0  # seconds
    device_cookie_max_age: float = 365 * 86400.0  # seconds a device cookie is honoured


@dataclass(frozen=True)
class SessionConfig:
    idle_timeout: float = 15 * 60.0  # seconds without a request
    absolute_timeout: float = 8 * 3600.0  # seconds since login
    touch_interval: float = 10.0  # seconds; last-seen is written at most this often
    cookie_name: str = "refcam_session"


@dataclass(frozen=True)
class DeviceConfig:
    runtime_dir: Path  # firmware-owned state (users, sessions, audit); factory reset wipes it
    identity_dir: Path  # <state>/data/identity (TLS key and chain, initial password hash)
    tls_profile: Literal["intermediate", "modern"] = "intermediate"
    password_policy: PasswordPolicyName = "nist-800-63b"  # noqa: S105 - a profile name
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    api_max_body: int = 64 * 1024  # bytes, largest JSON request body
    hsts_max_age: int = 63072000  # seconds (2 years, Mozilla guideline)
    server_header: str = "refcam"  # no version (no fingerprinting)
    audit_page_max: int = 500  # entries per GET /api/v1/audit page
    update_url: str | None = None  # the firmware's default update source (--update-url)
    flaws: UnsafeFlaws = field(default_factory=UnsafeFlaws)  # test-lab flaw profiles; empty = secure

    @property
    def initial_password_hash_file(self) -> Path:
        return self.identity_dir / "initial-password.hash"

    @property
    def initial_password_sealed_file(self) -> Path:
        """The label password sealed for ``admin`` at provisioning (``common.sealedsecret``)."""
        return self.identity_dir / "initial-password.sealed"

    @property
    def tls_chain_file(self) -> Path:
        return self.identity_dir / "tls.pem"

    @property
    def tls_key_file(self) -> Path:
        return self.identity_dir / "tls.key.pem"

    @property
    def users_db(self) -> Path:
        return self.runtime_dir / "users.sqlite3"

    @property
    def audit_db(self) -> Path:
        return self.runtime_dir / "audit.sqlite3"

    @property
    def sessions_db(self) -> Path:
        return self.runtime_dir / "sessions.sqlite3"

    @property
    def settings_file(self) -> Path:
        return self.runtime_dir / "settings.json"


@dataclass(frozen=True)
class RuntimeSettings:
    """Settings an admin changes at run time (``PATCH /api/v1/settings``), kept in
    ``<runtime>/settings.json``; a factory reset wipes them. A setting that was
    never changed is ``None`` and falls back to ``DeviceConfig`` (the command line).
    """

    password_policy: PasswordPolicyName | None = None
    update_url: str | None = None  # the update source (TUF repository origin), https only

    @classmethod
    def from_json(cls, doc: object) -> RuntimeSettings:
        if not isinstance(doc, dict) or set(doc) - set(SETTING_NAMES):
            raise ConfigError(f"settings must be an object with only {list(SETTING_NAMES)}")
        policy = doc.get("password_policy")
        if policy is not None and policy not in PASSWORD_POLICIES:
            raise ConfigError(
                f"password_policy {policy!r} is not one of {', '.join(PASSWORD_POLICIES)}"
            )
        url = doc.get("update_url")
        return cls(password_policy=policy, update_url=None if url is None else check_update_url(url))

    def to_json(self) -> dict[str, object]:
        return {"password_policy": self.password_policy, "update_url": self.update_url}


SETTING_NAMES = ("password_policy", "update_url")
MAX_URL = 256  # characters


def check_update_url(value: object) -> str:
    """An update source must be a plain https origin (plus an optional path).

    Only :class:`ConfigError` is raised, whatever the value: printable ASCII
    (an IDN host in its punycode form), no space, a host that parses (a
    bracketed IPv6 literal is checked), a port in 0..65535.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL:
        raise ConfigError(f"update_url must be a string of 1..{MAX_URL} characters")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ConfigError(
            f"update_url {value!a} must be printable ASCII without spaces (IDN hosts in punycode)"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check (ValueError when out of range)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"update_url {value!r} is not a valid URL: {exc}") from exc
    if parts.scheme != "https" or not host:
        raise ConfigError(f"update_url {value!r} must be an https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"update_url {value!r} must not carry credentials, a query or a fragment")
    return value.rstrip("/")


def load_settings(path: Path) -> RuntimeSettings:
    """The stored settings, or defaults when none were saved; ConfigError if unreadable."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return RuntimeSettings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the settings {path}: {exc}") from exc
    try:
        return RuntimeSettings.from_json(json.loads(text))
    except ValueError as exc:
        raise ConfigError(f"settings file {path} is not JSON: {exc}") from exc


def restore_settings(path: Path, previous: bytes | None) -> None:
    """Put back the settings file as it was (``None``: there was none)."""
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        write_atomic(path, previous)


def save_settings(path: Path, settings: RuntimeSettings) -> None:
    """Write atomically: a power cut leaves the old file or the new one, never half."""
    private_dir(path.parent)
    write_atomic(path, json.dumps(settings.to_json(), sort_keys=True).encode())
