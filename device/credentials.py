"""Users, password policy and brute-force throttling (EN 303 645 5.1-1, 5.1-5).

Pure cores:

* :func:`check_password` applies a policy profile and raises
  :class:`PasswordPolicyError` listing every reason (``nist-800-63b``: at least
  15 characters, no composition rules, blocklist; ``kr-terminal``: 8 characters
  with 3 classes or 10 with 2, blocklist). Both refuse the Mirai and common
  passwords (``blocklist``), the device's serial, model, vendor and the user name.
* :func:`account_retry_after` / :func:`source_retry_after` turn failure
  history into a wait in seconds (see :class:`ThrottleConfig`).

Adapter: :class:`CredentialStore`, users and failure counters in SQLite (WAL).
On first start it creates ``admin`` with the provisioned initial-password hash
and ``must_change`` set, so only the password change works until the label
password is replaced. Unknown user names are verified against
``common.passwords.DUMMY_HASH`` and counted like real ones, so the response and
its timing do not tell whether an account exists (EN 303 645 5.6-2).

Example::

    store = CredentialStore.open(path, initial_hash=h, policy="nist-800-63b", context=ctx)
    user = store.authenticate("admin", label_password, source="127.0.0.1", now=now)
    assert user.must_change
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from common.flaws import UnsafeFlaws
from common.passwords import (
    DUMMY_HASH,
    InvalidPassword,
    PasswordHashFormatError,
    hash_password,
    label_fold_candidates,
    verify_password,
)
from common.sealedsecret import SealedSecretError, open_secret, seal_secret
from common.sqlitedb import open_database

from .access import ROLES, Role
from .config import PASSWORD_POLICIES, PasswordPolicyName, ThrottleConfig
from .devicecookies import device_cookie_nonce, issue_device_cookie, new_device_key
from .errors import (
    InvalidCredentials,
    PasswordPolicyError,
    StorageError,
    Throttled,
    UnsafeUnknownUser,
    UserError,
)
from .guessable import guessable_problems
from .i18n import msg

UNSAFE_SHARED_PASSWORD = "admin"  # noqa: S105 - the shared-default-password flaw: admin/admin
_DUMMY_SECRET = "refcam: no such user, no sealed secret"  # noqa: S105 - what unknown users are checked against
_UserRow = tuple[str, str, str, int, float, float]  # a row of the users table



def admin_answers_shared_default(path: Path) -> bool:
    """Whether this unit's ``admin`` still answers the shared default password.

    True only after a run with the ``shared-default-password`` flaw created the
    user database (and nobody changed the password since): the label's unique
    password then gets 401, and what works is admin/admin. The database is
    opened read-only; a unit that never ran has none.
    """
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT hash FROM users WHERE name = 'admin'").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the user database {path}: {exc}") from exc
    if row is None:
        return False
    try:
        verify_password(UNSAFE_SHARED_PASSWORD, str(row[0]))
    except InvalidPassword:
        return False
    return True

MAX_PASSWORD_CHARS = 128  # NIST 800-63B: allow at least 64; we allow 128
NIST_MIN_CHARS = 15  # NIST SP 800-63B rev. 4, single-factor password
KR_RULES = ((8, 3), (10, 2))  # (minimum length, minimum character classes)
USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")

# Called inside a write's transaction, just before COMMIT (the API records the audit
# entry there): if it raises, the write is rolled back, so an effect never outlives
# a failed audit record.
CommitHook = Callable[[], object]
# (event, detail): records a login decision into the audit log, inside its transaction
AuditSink = Callable[[str, dict[str, Any]], object]


def _no_audit(event: str, detail: dict[str, Any]) -> None:
    del event, detail


@dataclass(frozen=True)
class PolicyContext:
    """Context-specific words a password must not contain (NIST 800-63B 3.1.1.2)."""

    username: str
    serial: str
    model: str
    vendor: str


def normalize_password(password: str) -> str:
    """NFKC, as NIST 800-63B asks, so the same password typed two ways matches."""
    return unicodedata.normalize("NFKC", password)


def _classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def password_problems(
    password: str, *, policy: PasswordPolicyName, context: PolicyContext, unsafe_minimum_off_by_one: bool = False
) -> list[str]:
    """Every reason ``password`` fails ``policy`` (empty if it passes).

    ``unsafe_minimum_off_by_one`` is the ``password-min-off-by-one`` flaw profile: every
    minimum length counts one character short (a ``<=`` written as ``<``)."""
    slack = 1 if unsafe_minimum_off_by_one else 0
    if policy not in PASSWORD_POLICIES:
        raise ValueError(f"unknown password policy {policy!r}; expected one of {PASSWORD_POLICIES}")
    password = normalize_password(password)
    reasons: list[str] = []
    length = len(password)
    if policy == "nist-800-63b":
        if length < NIST_MIN_CHARS - slack:
            reasons.append(msg("password has {length} characters; at least {minimum} are required", length=length, minimum=NIST_MIN_CHARS))
    else:
        classes = _classes(password)
        if not any(length >= n - slack and classes >= k for n, k in KR_RULES):
            reasons.append(msg(
                "password has {length} characters from {classes} character classes; "
                "at least 8 with 3 classes or 10 with 2 classes are required",
                length=length, classes=classes,
            ))
    if length > MAX_PASSWORD_CHARS:
        reasons.append(msg("password has {length} characters; at most {maximum} are allowed", length=length, maximum=MAX_PASSWORD_CHARS))
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in password):
        reasons.append(msg("password contains control characters"))
    reasons += guessable_problems(
        password,
        context_words=(
            (msg("user name"), context.username),
            (msg("device serial number"), context.serial),
            (msg("device model"), context.model),
            (msg("vendor name"), context.vendor),
        ),
        estimate=not reasons,
    )
    return reasons


def check_password(password: str, *, policy: PasswordPolicyName, context: PolicyContext) -> None:
    """Raise :class:`PasswordPolicyError` with every reason unless ``password`` passes."""
    reasons = password_problems(password, policy=policy, context=context)
    if reasons:
        raise PasswordPolicyError(reasons)


def account_wait(failures: int, config: ThrottleConfig) -> float:
    """Seconds an account waits after its ``failures``-th consecutive failure."""
    if failures <= 0:
        return 0.0
    if failures < config.account_lockout_after:
        return float(config.backoff_base * 2 ** (failures - 1))
    exponent = min(failures - config.account_lockout_after, 32)
    return float(min(config.lockout * 2**exponent, config.lockout_max))


def account_retry_after(failures: int, last_failure: float, now: float, config: ThrottleConfig) -> float:
    """Seconds until the account may try again (0 if it may now)."""
    return max(0.0, last_failure + account_wait(failures, config) - now)


def source_retry_after(failure_times: Sequence[float], now: float, config: ThrottleConfig) -> float:
    """Seconds until the source may try again, from its recent failure times."""
    recent = sorted(t for t in failure_times if t > now - config.source_window)
    if len(recent) < config.source_failures:
        return 0.0
    # wait until enough of the oldest failures leave the window
    oldest_to_expire = recent[len(recent) - config.source_failures]
    return max(0.0, oldest_to_expire + config.source_window - now)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    must_change: bool
    created: float
    password_changed: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    hash TEXT NOT NULL,
    must_change INTEGER NOT NULL,
    created REAL NOT NULL,
    password_changed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS account_failures (
    name TEXT PRIMARY KEY,  -- any attempted name, existing or not
    failures INTEGER NOT NULL,
    last_failure REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS source_failures (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS source_failures_by_source ON source_failures (source, time);
CREATE TABLE IF NOT EXISTS device_failures (
    nonce TEXT PRIMARY KEY,  -- a device cookie's nonce (devicecookies)
    failures INTEGER NOT NULL,
    last_failure REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lockouts (  -- decided lockouts, so their end is audited once
    scope TEXT NOT NULL,  -- account, source or device
    key TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS protocol_secrets (  -- each user's password sealed (common.sealedsecret)
    name TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS device_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL  -- HMAC key of the device cookies
);
"""


class CredentialStore:
    """Users and throttling state in one SQLite database (thread-safe: logins hash off-loop)."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        initial_hash: str,
        policy: PasswordPolicyName,
        context: PolicyContext,
        throttle: ThrottleConfig,
        flaws: UnsafeFlaws | None = None,
        label_fold_hash: str | None = None,
        sealing_key: bytes | None = None,
    ) -> None:
        self.flaws = flaws or UnsafeFlaws()
        self._sealing_key = sealing_key
        self.label_fold_hash = label_fold_hash
        self._db = connection
        self._lock = threading.Lock()
        # Users as of the last read; every write drops it. Only this process writes the
        # database (one running firmware per device), so the cache cannot go stale.
        self._users: dict[str, User] | None = None
        # Unsealed protocol secrets as of the last read, dropped with ``_users`` by every
        # write to the users (change, reset, delete): one AES-GCM open per secret version.
        self._secrets: dict[str, str] = {}
        # The throttle keys ("account", name) / ("source", address) that may have a failure
        # or a lockout recorded in SQLite: marked inside the transaction that records it,
        # unmarked only after a transaction finds nothing left. A login whose keys are both
        # unmarked meets no wait and ends no lockout, so its success needs no transaction
        # (:meth:`authenticate_proof_fast`); SQLite stays the authority for every failure.
        self._marked: set[tuple[str, str]] = set()
        self._unmarks: set[tuple[str, str]] = set()  # to unmark when the current transaction commits
        self._load_marks()
        self.initial_hash = initial_hash
        self.policy = policy
        self.context = context
        self.throttle = throttle
        self._device_key = new_device_key()  # replaced by the stored key in open()
        self._initial_sealed: bytes | None = None  # the label password sealed at provisioning (open())

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        initial_hash: str,
        policy: PasswordPolicyName,
        context: PolicyContext,
        throttle: ThrottleConfig,
        now: float,
        flaws: UnsafeFlaws | None = None,
        label_fold_hash: str | None = None,
        sealing_key: bytes | None = None,
        initial_sealed: bytes | None = None,
    ) -> CredentialStore:
        """Open (creating if needed) the store; the first start creates ``admin``.

        ``label_fold_hash`` is the provisioned hash of ``refcam.passwords.label_fold`` of
        the label password: new passwords that fold to it (case changes, dashes dropped,
        ``!`` or digits appended) are refused like the label password itself.

        ``sealing_key`` (``BootServices.derive_key("protocol-secrets")``) keeps every
        password also sealed, for the digest logins of ONVIF and RTSP
        (:meth:`protocol_secret`, :meth:`authenticate_proof`); ``initial_sealed`` is the
        label password sealed for ``admin`` at provisioning.
        """
        flaws = flaws or UnsafeFlaws()
        first_hash, must_change, first_sealed = initial_hash, 1, initial_sealed
        if "shared-default-password" in flaws:  # UNSAFE flaw profile: the Mirai-era default
            first_hash, must_change = hash_password(UNSAFE_SHARED_PASSWORD), 0
            first_sealed = seal_secret(sealing_key, "admin", UNSAFE_SHARED_PASSWORD) if sealing_key else None
        if "no-forced-change" in flaws:  # UNSAFE flaw profile: the label password is enough
            must_change = 0
        try:
            db = open_database(path, schema=_SCHEMA)
            with db:
                db.execute("BEGIN IMMEDIATE")
                (count,) = db.execute("SELECT COUNT(*) FROM users").fetchone()
                if count == 0:
                    db.execute(
                        "INSERT INTO users VALUES ('admin', 'admin', ?, ?, ?, ?)",
                        (first_hash, must_change, now, now),
                    )
                    if first_sealed is not None:
                        db.execute("INSERT OR REPLACE INTO protocol_secrets VALUES ('admin', ?)", (first_sealed,))
                db.execute("INSERT OR IGNORE INTO device_key VALUES (1, ?)", (new_device_key(),))
                (device_key,) = db.execute("SELECT key FROM device_key WHERE id = 1").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the user database {path}: {exc}") from exc
        store = cls(
            db, initial_hash=initial_hash, policy=policy, context=context, throttle=throttle, flaws=flaws,
            label_fold_hash=label_fold_hash, sealing_key=sealing_key,
        )
        store._device_key = bytes(device_key)
        store._initial_sealed = initial_sealed
        return store

    def close(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._db.close()

    def _load_marks(self) -> None:
        with self._lock:
            try:
                self._marked = {("account", n) for (n,) in self._db.execute("SELECT name FROM account_failures")}
                self._marked |= {("source", s) for (s,) in self._db.execute("SELECT DISTINCT source FROM source_failures")}
                self._marked |= {(sc, k) for sc, k in self._db.execute("SELECT scope, key FROM lockouts")}
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read the user database: {exc}") from exc

    # -- users ---------------------------------------------------------------

    @staticmethod
    def _user(row: _UserRow) -> User:
        name, role, _hash, must_change, created, changed = row
        return User(name, cast(Role, role), bool(must_change), created, changed)

    def _all_users(self) -> dict[str, User]:
        with self._lock:
            return self._users_locked()

    def _users_locked(self) -> dict[str, User]:
        if self._users is None:
            rows = self._db.execute("SELECT * FROM users ORDER BY name").fetchall()
            self._users = {row[0]: self._user(row) for row in rows}
        return self._users

    def get_user(self, name: str) -> User | None:
        return self._all_users().get(name)

    def list_users(self) -> list[User]:
        return list(self._all_users().values())

    def _context_for(self, username: str) -> PolicyContext:
        if "identity-password-accepted" in self.flaws:  # UNSAFE flaw profile: the unit's identity is fair game
            return PolicyContext(username=username, serial="", model="", vendor="")
        return PolicyContext(
            username=username,
            serial=self.context.serial,
            model=self.context.model,
            vendor=self.context.vendor,
        )

    def _check_new_password(self, username: str, password: str) -> None:
        reasons = password_problems(
            password, policy=self.policy, context=self._context_for(username),
            unsafe_minimum_off_by_one="password-min-off-by-one" in self.flaws,
        )
        if not reasons:  # only pay for scrypt on otherwise acceptable passwords
            try:
                verify_password(normalize_password(password), self.initial_hash)
                reasons.append(msg("password is the device's initial (label) password"))
            except InvalidPassword:
                pass  # different from the label password: what we want
        # (the label-variant-accepted flaw profile skips the variants: only the exact label is refused)
        if not reasons and self.label_fold_hash is not None and "label-variant-accepted" not in self.flaws:
            for candidate in label_fold_candidates(normalize_password(password)):
                try:
                    verify_password(candidate, self.label_fold_hash)
                    reasons.append(msg(
                        "password is a variant of the device's initial (label) password "
                        "(case, separators or appended characters changed)"
                    ))
                    break
                except InvalidPassword:
                    pass  # not this variant of the label password
        if reasons:
            raise PasswordPolicyError(reasons)

    @contextlib.contextmanager
    def _transaction(
        self, commit_hook: CommitHook | None, *, keep_cache: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``commit_hook()`` ... ``COMMIT``; any exception rolls back.

        ``keep_cache`` for writes that leave the ``users`` table alone (throttling).
        """
        with self._lock:
            self._unmarks = set()
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    yield self._db
                    if commit_hook is not None:
                        commit_hook()
                self._marked -= self._unmarks  # only once what they rely on is committed
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write the user database: {exc}") from exc
            finally:
                self._unmarks = set()
                if not keep_cache:
                    self._users = None  # whatever happened, read the users again
                    self._secrets.clear()

    def create_user(
        self,
        name: str,
        role: str,
        password: str,
        *,
        now: float,
        must_change: bool = True,
        commit_hook: CommitHook | None = None,
    ) -> User:
        if not USERNAME_RE.fullmatch(name):
            raise UserError("invalid_username", msg("user name must be 1-32 of A-Z a-z 0-9 _ . -"))
        role_ = _role(role)
        self._check_new_password(name, password)
        encoded = hash_password(normalize_password(password))
        try:
            with self._transaction(commit_hook) as db:
                if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                    raise UserError("user_exists", msg("user {name!r} already exists", name=name), status=409)
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                    (name, role_, encoded, int(must_change), now, now),
                )
                self._seal(db, name, password)
        except sqlite3.IntegrityError as exc:
            raise UserError("user_exists", msg("user {name!r} already exists", name=name), status=409) from exc
        return User(name, role_, must_change, now, now)

    def _require(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise UserError("no_such_user", msg("there is no user {name!r}", name=name), status=404)
        return user

    def _admins(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()
        return int(n)

    def delete_user(self, name: str, *, commit_hook: CommitHook | None = None) -> None:
        with self._transaction(commit_hook) as db:
            row = db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UserError("no_such_user", msg("there is no user {name!r}", name=name), status=404)
            if row[0] == "admin" and self._admins() == 1:
                raise UserError("last_admin", msg("cannot delete the last admin"), status=409)
            db.execute("DELETE FROM users WHERE name = ?", (name,))
            db.execute("DELETE FROM protocol_secrets WHERE name = ?", (name,))

    def set_role(self, name: str, role: str, *, commit_hook: CommitHook | None = None) -> User:
        role_ = _role(role)
        with self._transaction(commit_hook) as db:
            row = db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UserError("no_such_user", msg("there is no user {name!r}", name=name), status=404)
            if row[0] == "admin" and role_ != "admin" and self._admins() == 1:
                raise UserError("last_admin", msg("cannot demote the last admin"), status=409)
            db.execute("UPDATE users SET role = ? WHERE name = ?", (role_, name))
        return self._require(name)

    def reset_password(
        self, name: str, password: str, *, now: float, commit_hook: CommitHook | None = None
    ) -> User:
        """An admin sets ``name``'s password; the user must change it at next login."""
        self._require(name)
        self._check_new_password(name, password)
        encoded = hash_password(normalize_password(password))
        with self._transaction(commit_hook) as db:
            cursor = db.execute(
                "UPDATE users SET hash = ?, must_change = 1, password_changed = ? WHERE name = ?",
                (encoded, now, name),
            )
            if cursor.rowcount != 1:  # deleted while the new hash was computed
                raise UserError("no_such_user", msg("there is no user {name!r}", name=name), status=404)
            self._seal(db, name, password)
        return self._require(name)

    def change_password(
        self,
        name: str,
        current: str,
        new: str,
        *,
        source: str,
        now: float,
        device_cookie: str | None = None,
        audit: AuditSink | None = None,
        commit_hook: CommitHook | None = None,
    ) -> User:
        """The user changes their own password (the forced change, or later).

        ``current`` is checked through :meth:`authenticate`, so guessing it from
        a stolen session is throttled like any login.
        """
        self.authenticate(
            name, current, source=source, now=now, device_cookie=device_cookie, audit=audit,
            route="password_change",
        )
        self._check_new_password(name, new)
        if normalize_password(new) == normalize_password(current):
            raise PasswordPolicyError([msg("new password is the same as the current password")])
        encoded = hash_password(normalize_password(new))
        with self._transaction(commit_hook) as db:
            db.execute(
                "UPDATE users SET hash = ?, must_change = 0, password_changed = ? WHERE name = ?",
                (encoded, now, name),
            )
            self._seal(db, name, new)
        return self._require(name)

    def factory_reset(self, *, now: float, commit_hook: CommitHook | None = None) -> None:
        """Back to the users the unit left the factory with, in one transaction.

        Every user and sealed secret goes; ``admin`` comes back with the label
        password (its provisioned hash and sealed copy) and the forced change, as
        on the first start: never an anonymous or shared default (the flaw
        profiles aside, exactly as :meth:`open`). The device-cookie key is
        renewed, so no client stays trusted. Failures and lockouts stay: a reset
        is no way around the throttle. ``commit_hook`` records it before COMMIT.
        """
        first_hash, must_change, first_sealed = self.initial_hash, 1, self._initial_sealed
        if "shared-default-password" in self.flaws:  # UNSAFE flaw profile: the Mirai-era default
            first_hash, must_change = hash_password(UNSAFE_SHARED_PASSWORD), 0
            first_sealed = seal_secret(self._sealing_key, "admin", UNSAFE_SHARED_PASSWORD) if self._sealing_key else None
        if "no-forced-change" in self.flaws:  # UNSAFE flaw profile: the label password is enough
            must_change = 0
        device_key = new_device_key()
        with self._transaction(commit_hook) as db:
            db.execute("DELETE FROM users")
            db.execute("DELETE FROM protocol_secrets")
            db.execute("DELETE FROM device_failures")
            db.execute("INSERT INTO users VALUES ('admin', 'admin', ?, ?, ?, ?)", (first_hash, must_change, now, now))
            if first_sealed is not None:
                db.execute("INSERT INTO protocol_secrets VALUES ('admin', ?)", (first_sealed,))
            db.execute("UPDATE device_key SET key = ? WHERE id = 1", (device_key,))
        self._device_key = device_key

    # -- sealed protocol secrets --------------------------------------------

    def _seal(self, db: sqlite3.Connection, name: str, password: str) -> None:
        """Keep ``password`` sealed for ``name`` (inside the caller's transaction)."""
        if self._sealing_key is None:
            return
        db.execute(
            "INSERT OR REPLACE INTO protocol_secrets VALUES (?, ?)",
            (name, seal_secret(self._sealing_key, name, password)),
        )

    def protocol_secret(self, name: str) -> str | None:
        """``name``'s password, unsealed, for a digest check; None when none is sealed.

        Raises :class:`StorageError` when a sealed secret exists but does not open
        (damaged flash, or another unit's database): never a wrong secret.
        """
        with self._lock:
            return self._protocol_secret(self._db, name)

    def _protocol_secret(self, db: sqlite3.Connection, name: str) -> str | None:
        if self._sealing_key is None:
            return None
        row = db.execute("SELECT sealed FROM protocol_secrets WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        cached = self._secrets.get(name)
        if cached is not None:
            return cached
        try:
            secret = open_secret(self._sealing_key, name, bytes(row[0]))
        except SealedSecretError as exc:
            raise StorageError(str(exc)) from exc
        self._secrets[name] = secret
        return secret

    # -- login ---------------------------------------------------------------

    def retry_after(self, username: str, source: str, *, now: float) -> tuple[float, str]:
        """The wait an untrusted client meets: the source's first, then the account's."""
        with self._lock:
            return self._untrusted_wait(self._db, username, source, now)

    def _source_wait(self, db: sqlite3.Connection, source: str, now: float) -> float:
        times = [
            t
            for (t,) in db.execute(
                "SELECT time FROM source_failures WHERE source = ? AND time > ?",
                (source, now - self.throttle.source_window),
            )
        ]
        return source_retry_after(times, now, self.throttle)

    def _untrusted_wait(self, db: sqlite3.Connection, username: str, source: str, now: float) -> tuple[float, str]:
        by_source = self._source_wait(db, source, now)
        if by_source > 0:  # per source first: one address cannot run through many accounts
            return by_source, "source"
        row = db.execute(
            "SELECT failures, last_failure FROM account_failures WHERE name = ?", (username,)
        ).fetchone()
        return (account_retry_after(row[0], row[1], now, self.throttle) if row else 0.0), "account"

    def _device_wait(self, db: sqlite3.Connection, nonce: str, now: float) -> tuple[float, str]:
        row = db.execute("SELECT failures, last_failure FROM device_failures WHERE nonce = ?", (nonce,)).fetchone()
        return (account_retry_after(row[0], row[1], now, self.throttle) if row else 0.0), "device"

    def device_cookie(self, username: str, *, now: float) -> str:
        """A new signed device cookie for ``username`` (given after a successful login)."""
        return issue_device_cookie(self._device_key, username, now=now)

    def _trusted_nonce(self, cookie: str | None, username: str, now: float) -> str | None:
        return device_cookie_nonce(
            self._device_key, cookie, username, now=now, max_age=self.throttle.device_cookie_max_age
        )

    def _end_lockouts(self, db: sqlite3.Connection, keys: Sequence[tuple[str, str]], now: float, audit: AuditSink) -> None:
        """Record the end of every lockout of ``keys`` that is over by ``now``."""
        for scope, key in keys:
            row = db.execute("SELECT until FROM lockouts WHERE scope = ? AND key = ?", (scope, key)).fetchone()
            if row is not None and row[0] <= now:
                db.execute("DELETE FROM lockouts WHERE scope = ? AND key = ?", (scope, key))
                audit("lockout_end", {"scope": scope, "ended": row[0]})

    def _decide_lockout(
        self, db: sqlite3.Connection, scope: str, key: str, wait: float, failures: int, now: float, audit: AuditSink
    ) -> None:
        """Lock ``key`` out for ``wait`` seconds and audit the decision (inside the caller's transaction)."""
        db.execute("INSERT OR REPLACE INTO lockouts VALUES (?, ?, ?)", (scope, key, now + wait))
        self._marked.add((scope, key))
        audit("lockout", {"scope": scope, "seconds": wait, "failures": failures})

    def authenticate(
        self,
        username: str,
        password: str,
        *,
        source: str,
        now: float,
        device_cookie: str | None = None,
        audit: AuditSink | None = None,
        route: str = "login",
    ) -> User:
        """The user, or raise :class:`Throttled` / :class:`InvalidCredentials`.

        Untrusted clients meet the per-source throttle first, then the per-account
        back-off and lockout. A client presenting a valid device cookie for this
        user (:mod:`device.devicecookies`) is trusted: only its own per-cookie
        back-off applies, so an attacker elsewhere cannot lock the owner out.

        The failure is recorded *before* the slow hash is checked and undone on
        success or on an unexpected error, so parallel guesses cannot all slip past
        the throttle and a crash has no effect. ``audit(event, detail)`` is called
        inside the transactions that make the decisions (``login_failure``,
        ``lockout`` and ``lockout_end`` with their scope), so they commit together.
        """

        def matches(row: _UserRow | None) -> bool:
            try:
                verify_password(normalize_password(password), row[2] if row is not None else DUMMY_HASH)
            except (InvalidPassword, PasswordHashFormatError):
                return False
            return row is not None

        return self._authenticate(
            username, matches, source=source, now=now, device_cookie=device_cookie, audit=audit, route=route
        )

    def authenticate_proof_fast(self, username: str, proof: Callable[[str], bool], *, source: str) -> User | None:
        """The common success of :meth:`authenticate_proof` decided in memory, or None.

        Returns the user only when neither ``("account", username)`` nor
        ``("source", source)`` has any failure or lockout recorded, the user and
        their unsealed secret are cached, and ``proof(secret)`` holds: then the full
        path would meet no wait, end no lockout and write nothing. Anything else
        (a wrong proof, an unknown user, a marked key, a writer holding the lock, a
        flaw profile that changes the throttle) returns None and the caller runs
        :meth:`authenticate_proof`, which counts, audits and locks out as always.
        Never blocks: cheap enough for the event loop.
        """
        if self._sealing_key is None or self.flaws:  # flaw profiles (lab only) take the full path
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if ("account", username) in self._marked or ("source", source) in self._marked:
                return None
            user, secret = self._users_locked().get(username), self._secrets.get(username)
            if user is None or secret is None:
                return None
            return user if proof(secret) else None
        finally:
            self._lock.release()

    def _unmark_if_clear(self, db: sqlite3.Connection, username: str, source: str, now: float) -> None:
        """After a success: forget the marks of keys with nothing left recorded (inside the transaction)."""
        if ("account", username) in self._marked and db.execute(
            "SELECT 1 FROM lockouts WHERE scope = 'account' AND key = ?", (username,)
        ).fetchone() is None:
            self._unmarks.add(("account", username))
        if ("source", source) in self._marked:
            db.execute("DELETE FROM source_failures WHERE time <= ?", (now - self.throttle.source_window,))
            if db.execute("SELECT 1 FROM source_failures WHERE source = ?", (source,)).fetchone() is None and (
                db.execute("SELECT 1 FROM lockouts WHERE scope = 'source' AND key = ?", (source,)).fetchone() is None
            ):
                self._unmarks.add(("source", source))

    def authenticate_proof(
        self,
        username: str,
        proof: Callable[[str], bool],
        *,
        source: str,
        now: float,
        audit: AuditSink | None = None,
        route: str,
    ) -> User:
        """Like :meth:`authenticate`, for logins that prove the password without sending it.

        ONVIF's UsernameToken digest and HTTP/RTSP Digest hand the device a value
        computed from the password; ``proof(secret)`` says whether it matches the
        user's unsealed secret (:meth:`protocol_secret`). The throttling, lockout
        and audit are exactly those of :meth:`authenticate`. An unknown user, or
        one with no sealed secret, fails after the same work on a dummy secret.
        The caller must still honour ``user.must_change``.
        """
        fast = self.authenticate_proof_fast(username, proof, source=source)
        if fast is not None:
            return fast

        def check(secret: str | None) -> bool:
            if secret is None:
                proof(_DUMMY_SECRET)  # the same work, so the answer's timing tells nothing
                return False
            return proof(secret)

        def matches(row: _UserRow | None) -> bool:
            return check(self.protocol_secret(username) if row is not None else None)

        def inline(db: sqlite3.Connection, row: _UserRow | None) -> bool:
            return check(self._protocol_secret(db, username) if row is not None else None)

        return self._authenticate(
            username, matches, source=source, now=now, device_cookie=None, audit=audit, route=route, inline=inline
        )

    def _authenticate(
        self,
        username: str,
        matches: Callable[[_UserRow | None], bool],
        *,
        source: str,
        now: float,
        device_cookie: str | None,
        audit: AuditSink | None,
        route: str,
        inline: Callable[[sqlite3.Connection, _UserRow | None], bool] | None = None,
    ) -> User:
        """The login decision. ``matches(row)`` runs outside any transaction (a slow hash);
        ``inline(db, row)``, for checks as cheap as a digest, runs inside the throttle's
        own transaction instead, so a success writes nothing and costs one transaction."""
        record: AuditSink = audit or _no_audit
        unthrottled = {"failures": 0, "route": route, "trusted_client": False}
        if "user-enumeration" in self.flaws and self.get_user(username) is None:
            record("login_failure", unthrottled)
            raise UnsafeUnknownUser("no such user")  # UNSAFE flaw profile: tells names apart
        if "no-lockout" in self.flaws or ("throttle-known-names-only" in self.flaws and self.get_user(username) is None):
            # UNSAFE flaw profiles: no throttling at all, or none for names that do not exist
            try:
                return self._unsafe_authenticate_without_throttle(username, matches)
            except InvalidCredentials:
                record("login_failure", unthrottled)
                raise
        nonce = self._trusted_nonce(device_cookie, username, now)
        keys = [("device", nonce)] if nonce is not None else [("source", source), ("account", username)]
        row: _UserRow | None = None
        failures, source_row = 0, None
        inline_ok: bool | None = None  # None: not checked inline
        with self._transaction(None, keep_cache=True) as db:
            self._end_lockouts(db, keys, now, record)
            if nonce is not None:
                wait, scope = self._device_wait(db, nonce, now)
            else:
                wait, scope = self._untrusted_wait(db, username, source, now)
            if wait <= 0:
                row = db.execute("SELECT * FROM users WHERE name = ?", (username,)).fetchone()
                if inline is not None:  # an exception here rolls the whole transaction back: no effect
                    inline_ok = inline(db, row) and row is not None
                if inline_ok:
                    db.execute("DELETE FROM account_failures WHERE name = ?", (username,))  # a success resets
                    if nonce is None:
                        self._unmark_if_clear(db, username, source, now)
                else:
                    failures, source_row = self._count_failure(db, username, source, nonce, now)
        if wait > 0:
            raise Throttled(retry_after=max(1, int(wait + 0.999)), scope=scope)
        if inline_ok and row is not None:
            return self._user(row)
        try:
            ok = inline_ok if inline_ok is not None else matches(row)
        except BaseException:  # an unexpected error: no effect at all
            with self._transaction(None, keep_cache=True) as db:
                self._uncount_failure(db, username, nonce, source_row)
            raise
        if ok and row is not None:
            with self._transaction(None, keep_cache=True) as db:  # undo the pessimistic failure, reset
                if nonce is not None:
                    db.execute("DELETE FROM device_failures WHERE nonce = ?", (nonce,))
                else:
                    db.execute("DELETE FROM account_failures WHERE name = ?", (username,))
                    db.execute("DELETE FROM source_failures WHERE id = ?", (source_row,))
            return self._user(row)
        locked = 0.0
        with self._transaction(None, keep_cache=True) as db:
            record("login_failure", {"failures": failures, "route": route, "trusted_client": nonce is not None})
            if failures >= self.throttle.account_lockout_after:
                locked = account_wait(failures, self.throttle)
                self._decide_lockout(db, "device" if nonce else "account", nonce or username, locked, failures, now, record)
            if nonce is None:
                by_source = self._source_wait(db, source, now)
                if by_source > 0 and db.execute(
                    "SELECT 1 FROM lockouts WHERE scope = 'source' AND key = ?", (source,)
                ).fetchone() is None:
                    self._decide_lockout(db, "source", source, by_source, self.throttle.source_failures, now, record)
        raise InvalidCredentials("invalid user name or password", failures=failures, locked_for=locked)

    def _count_failure(
        self, db: sqlite3.Connection, username: str, source: str, nonce: str | None, now: float
    ) -> tuple[int, int | None]:
        """Count a failure before the hash is checked; returns the new count and the source row."""
        table, column, key = (
            ("device_failures", "nonce", nonce) if nonce is not None else ("account_failures", "name", username)
        )
        previous = db.execute(f"SELECT failures FROM {table} WHERE {column} = ?", (key,)).fetchone()  # noqa: S608
        failures = (previous[0] if previous else 0) + 1
        db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", (key, failures, now))  # noqa: S608
        source_row = None
        if nonce is None:
            self._marked.update({("account", username), ("source", source)})
            source_row = db.execute(
                "INSERT INTO source_failures (source, time) VALUES (?, ?)", (source, now)
            ).lastrowid
            db.execute("DELETE FROM source_failures WHERE time <= ?", (now - self.throttle.source_window,))
        return failures, source_row

    @staticmethod
    def _uncount_failure(db: sqlite3.Connection, username: str, nonce: str | None, source_row: int | None) -> None:
        table, column, key = (
            ("device_failures", "nonce", nonce) if nonce is not None else ("account_failures", "name", username)
        )
        db.execute(f"UPDATE {table} SET failures = failures - 1 WHERE {column} = ?", (key,))  # noqa: S608
        db.execute(f"DELETE FROM {table} WHERE {column} = ? AND failures <= 0", (key,))  # noqa: S608
        db.execute("DELETE FROM source_failures WHERE id = ?", (source_row,))

    def _unsafe_authenticate_without_throttle(self, username: str, matches: Callable[[_UserRow | None], bool]) -> User:
        """The ``no-lockout`` flaw profile: the same check with no throttling at all."""
        with self._lock:
            row = self._db.execute("SELECT * FROM users WHERE name = ?", (username,)).fetchone()
        if not matches(row) or row is None:
            raise InvalidCredentials("invalid user name or password")
        return self._user(row)


def _role(role: str) -> Role:
    if role not in ROLES:
        raise UserError("invalid_role", msg("role {role!r} is not one of {roles}", role=role, roles=ROLES))
    return role
