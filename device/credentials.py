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

import re
import sqlite3
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from common.flaws import UnsafeFlaws
from common.passwords import (
    DUMMY_HASH,
    InvalidPassword,
    PasswordHashFormatError,
    hash_password,
    verify_password,
)
from common.sqlitedb import open_database

from .access import ROLES, Role
from .blocklist import is_blocklisted
from .config import PASSWORD_POLICIES, PasswordPolicyName, ThrottleConfig
from .errors import (
    InvalidCredentials,
    PasswordPolicyError,
    StorageError,
    Throttled,
    UnsafeUnknownUser,
    UserError,
)

UNSAFE_SHARED_PASSWORD = "admin"  # noqa: S105 - the shared-default-password flaw: admin/admin



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
CONTEXT_MIN_CHARS = 4  # context words shorter than this are only refused as the whole password
USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


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
    password: str, *, policy: PasswordPolicyName, context: PolicyContext
) -> list[str]:
    """Every reason ``password`` fails ``policy`` (empty if it passes)."""
    if policy not in PASSWORD_POLICIES:
        raise ValueError(f"unknown password policy {policy!r}; expected one of {PASSWORD_POLICIES}")
    password = normalize_password(password)
    reasons: list[str] = []
    length = len(password)
    if policy == "nist-800-63b":
        if length < NIST_MIN_CHARS:
            reasons.append(f"password has {length} characters; at least {NIST_MIN_CHARS} are required")
    else:
        classes = _classes(password)
        if not any(length >= n and classes >= k for n, k in KR_RULES):
            reasons.append(
                f"password has {length} characters from {classes} character classes; "
                "at least 8 with 3 classes or 10 with 2 classes are required"
            )
    if length > MAX_PASSWORD_CHARS:
        reasons.append(f"password has {length} characters; at most {MAX_PASSWORD_CHARS} are allowed")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in password):
        reasons.append("password contains control characters")
    if is_blocklisted(password):
        reasons.append("password is a known default or commonly used password")
    if length and len(set(password)) <= 2:
        reasons.append("password repeats one or two characters")
    folded = password.casefold()
    for label, word in (
        ("user name", context.username),
        ("device serial number", context.serial),
        ("device model", context.model),
        ("vendor name", context.vendor),
    ):
        word_folded = word.casefold()
        if not word_folded:
            continue
        if folded == word_folded or (len(word_folded) >= CONTEXT_MIN_CHARS and word_folded in folded):
            reasons.append(f"password contains the {label}")
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
    ) -> None:
        self.flaws = flaws or UnsafeFlaws()
        self._db = connection
        self._lock = threading.Lock()
        # Users as of the last read; every write drops it. Only this process writes the
        # database (one running firmware per device), so the cache cannot go stale.
        self._users: dict[str, User] | None = None
        self.initial_hash = initial_hash
        self.policy = policy
        self.context = context
        self.throttle = throttle

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
    ) -> CredentialStore:
        """Open (creating if needed) the store; the first start creates ``admin``."""
        flaws = flaws or UnsafeFlaws()
        first_hash, must_change = initial_hash, 1
        if "shared-default-password" in flaws:  # UNSAFE flaw profile: the Mirai-era default
            first_hash, must_change = hash_password(UNSAFE_SHARED_PASSWORD), 0
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
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the user database {path}: {exc}") from exc
        return cls(
            db, initial_hash=initial_hash, policy=policy, context=context, throttle=throttle, flaws=flaws
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- users ---------------------------------------------------------------

    @staticmethod
    def _user(row: tuple[str, str, str, int, float, float]) -> User:
        name, role, _hash, must_change, created, changed = row
        return User(name, cast(Role, role), bool(must_change), created, changed)

    def _all_users(self) -> dict[str, User]:
        with self._lock:
            if self._users is None:
                rows = self._db.execute("SELECT * FROM users ORDER BY name").fetchall()
                self._users = {row[0]: self._user(row) for row in rows}
            return self._users

    def get_user(self, name: str) -> User | None:
        return self._all_users().get(name)

    def list_users(self) -> list[User]:
        return list(self._all_users().values())

    def _context_for(self, username: str) -> PolicyContext:
        return PolicyContext(
            username=username,
            serial=self.context.serial,
            model=self.context.model,
            vendor=self.context.vendor,
        )

    def _check_new_password(self, username: str, password: str) -> None:
        reasons = password_problems(password, policy=self.policy, context=self._context_for(username))
        if not reasons:  # only pay for scrypt on otherwise acceptable passwords
            try:
                verify_password(normalize_password(password), self.initial_hash)
                reasons.append("password is the device's initial (label) password")
            except InvalidPassword:
                pass  # different from the label password: what we want
        if reasons:
            raise PasswordPolicyError(reasons)

    def create_user(
        self, name: str, role: str, password: str, *, now: float, must_change: bool = True
    ) -> User:
        if not USERNAME_RE.fullmatch(name):
            raise UserError("invalid_username", "user name must be 1-32 of A-Z a-z 0-9 _ . -")
        role_ = _role(role)
        self._check_new_password(name, password)
        encoded = hash_password(normalize_password(password))
        with self._lock:
            try:
                with self._db:
                    self._db.execute(
                        "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                        (name, role_, encoded, int(must_change), now, now),
                    )
                    self._users = None
            except sqlite3.IntegrityError as exc:
                raise UserError("user_exists", f"user {name!r} already exists", status=409) from exc
        return User(name, role_, must_change, now, now)

    def _require(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise UserError("no_such_user", f"there is no user {name!r}", status=404)
        return user

    def _admins(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()
        return int(n)

    def delete_user(self, name: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UserError("no_such_user", f"there is no user {name!r}", status=404)
            if row[0] == "admin" and self._admins() == 1:
                raise UserError("last_admin", "cannot delete the last admin", status=409)
            self._db.execute("DELETE FROM users WHERE name = ?", (name,))
            self._users = None

    def set_role(self, name: str, role: str) -> User:
        role_ = _role(role)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UserError("no_such_user", f"there is no user {name!r}", status=404)
            if row[0] == "admin" and role_ != "admin" and self._admins() == 1:
                raise UserError("last_admin", "cannot demote the last admin", status=409)
            self._db.execute("UPDATE users SET role = ? WHERE name = ?", (role_, name))
            self._users = None
        return self._require(name)

    def reset_password(self, name: str, password: str, *, now: float) -> User:
        """An admin sets ``name``'s password; the user must change it at next login."""
        self._require(name)
        self._check_new_password(name, password)
        encoded = hash_password(normalize_password(password))
        with self._lock, self._db:
            self._db.execute(
                "UPDATE users SET hash = ?, must_change = 1, password_changed = ? WHERE name = ?",
                (encoded, now, name),
            )
            self._users = None
        return self._require(name)

    def change_password(self, name: str, current: str, new: str, *, source: str, now: float) -> User:
        """The user changes their own password (the forced change, or later).

        ``current`` is checked through :meth:`authenticate`, so guessing it from
        a stolen session is throttled like any login.
        """
        self.authenticate(name, current, source=source, now=now)
        self._check_new_password(name, new)
        if normalize_password(new) == normalize_password(current):
            raise PasswordPolicyError(["new password is the same as the current password"])
        encoded = hash_password(normalize_password(new))
        with self._lock, self._db:
            self._db.execute(
                "UPDATE users SET hash = ?, must_change = 0, password_changed = ? WHERE name = ?",
                (encoded, now, name),
            )
            self._users = None
        return self._require(name)

    # -- login ---------------------------------------------------------------

    def retry_after(self, username: str, source: str, *, now: float) -> tuple[float, str]:
        """The longer of the account's and the source's wait, and which one it is."""
        with self._lock:
            return self._retry_after(username, source, now)

    def _retry_after(self, username: str, source: str, now: float) -> tuple[float, str]:
        row = self._db.execute(
            "SELECT failures, last_failure FROM account_failures WHERE name = ?", (username,)
        ).fetchone()
        account = account_retry_after(row[0], row[1], now, self.throttle) if row else 0.0
        times = [
            t
            for (t,) in self._db.execute(
                "SELECT time FROM source_failures WHERE source = ? AND time > ?",
                (source, now - self.throttle.source_window),
            )
        ]
        by_source = source_retry_after(times, now, self.throttle)
        return (account, "account") if account >= by_source else (by_source, "source")

    def authenticate(self, username: str, password: str, *, source: str, now: float) -> User:
        """The user, or raise :class:`Throttled` / :class:`InvalidCredentials`.

        The failure is recorded *before* the slow hash is checked and undone on
        success, so parallel guesses cannot all slip past the throttle.
        """
        if "user-enumeration" in self.flaws and self.get_user(username) is None:
            raise UnsafeUnknownUser("no such user")  # UNSAFE flaw profile: tells names apart
        if "no-lockout" in self.flaws:
            return self._unsafe_authenticate_without_throttle(username, password)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            wait, scope = self._retry_after(username, source, now)
            if wait > 0:
                raise Throttled(retry_after=max(1, int(wait + 0.999)), scope=scope)
            row = self._db.execute("SELECT * FROM users WHERE name = ?", (username,)).fetchone()
            previous = self._db.execute(
                "SELECT failures, last_failure FROM account_failures WHERE name = ?", (username,)
            ).fetchone()
            failures = (previous[0] if previous else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO account_failures VALUES (?, ?, ?)", (username, failures, now)
            )
            cursor = self._db.execute("INSERT INTO source_failures (source, time) VALUES (?, ?)", (source, now))
            source_row = cursor.lastrowid
            self._db.execute(
                "DELETE FROM source_failures WHERE time <= ?", (now - self.throttle.source_window,)
            )
        encoded = row[2] if row is not None else DUMMY_HASH
        try:
            verify_password(normalize_password(password), encoded)
            ok = row is not None
        except (InvalidPassword, PasswordHashFormatError):
            ok = False
        if not ok:
            locked = account_wait(failures, self.throttle) if failures >= self.throttle.account_lockout_after else 0.0
            raise InvalidCredentials(
                "invalid user name or password", failures=failures, locked_for=locked
            )
        with self._lock, self._db:  # success: undo the pessimistic failure, reset the count
            self._db.execute("DELETE FROM account_failures WHERE name = ?", (username,))
            self._db.execute("DELETE FROM source_failures WHERE id = ?", (source_row,))
        return self._user(row)

    def _unsafe_authenticate_without_throttle(self, username: str, password: str) -> User:
        """The ``no-lockout`` flaw profile: the same check with no throttling at all."""
        user = self.get_user(username)
        with self._lock:
            row = self._db.execute("SELECT hash FROM users WHERE name = ?", (username,)).fetchone()
        try:
            verify_password(normalize_password(password), row[0] if row else DUMMY_HASH)
        except (InvalidPassword, PasswordHashFormatError) as exc:
            raise InvalidCredentials("invalid user name or password") from exc
        if user is None:
            raise InvalidCredentials("invalid user name or password")
        return user


def _role(role: str) -> Role:
    if role not in ROLES:
        raise UserError("invalid_role", f"role {role!r} is not one of {ROLES}")
    return role
