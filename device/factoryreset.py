"""Factory default while the device runs: the users and settings the unit left the factory with.

The pinhole reset (``refcam device factory-reset``, the unit switched off) wipes
the whole runtime directory and re-anchors the audit log. A running device
cannot delete the databases it has open, so this is the same reset done through
the stores that own the state, in an order that never leaves a way back in:

1. the caller has already recorded the request in the audit log (before any
   effect), and records the reset itself inside the users transaction;
2. users: only ``admin`` with the label password and the forced change
   (:meth:`CredentialStore.factory_reset`: never an anonymous or shared
   default), the device-cookie key renewed;
3. settings: the file goes, the command line's values apply again;
4. sessions: every session of every user the device had ends.

The device identity, its certificates, the fuses, the firmware slots and the
audit log (which records the reset) are not touched. Raises
:class:`~device.errors.StorageError` if a store cannot be written; the users
step is one transaction, so a failure there has no effect at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import StorageError

if TYPE_CHECKING:
    from pathlib import Path

    from .config import PasswordPolicyName
    from .credentials import CredentialStore
    from .sessions import SessionStore


def reset_to_factory(
    *,
    store: CredentialStore,
    sessions: SessionStore | None,
    settings_file: Path,
    default_policy: PasswordPolicyName,
    now: float,
    commit_hook: Callable[[], object] | None = None,
) -> list[str]:
    """Reset users, settings and sessions; returns the user names that were removed or reset."""
    names = [user.name for user in store.list_users()]
    store.factory_reset(now=now, commit_hook=commit_hook)
    try:
        settings_file.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot remove the settings {settings_file}: {exc}") from exc
    store.policy = default_policy
    if sessions is not None:
        for name in names:
            sessions.delete_user_sessions(name)
    return names
