"""The vendor's TUF repository: static files on disk, built with python-tuf.

A repository directory ``REPO`` holds only what clients download, plus a small
configuration file that says where the signing keys are (never the keys)::

    REPO/repo.json                    key directory, keyid -> key file (relative to it)
    REPO/metadata/1.root.json ...     every root version (TUF 5.3.4 needs them all)
    REPO/metadata/root.json           copy of the newest root (bootstrap convenience)
    REPO/metadata/N.targets.json      consistent snapshots: versioned file names
    REPO/metadata/N.models-<hw>.json  one delegated targets role per hardware id
    REPO/metadata/N.snapshot.json
    REPO/metadata/timestamp.json      the only unversioned file clients poll
    REPO/targets/<hw>/<sha256>.<file> hash-prefixed target files

Roles (TUF 6.1 "key management"):

* root: threshold 2 of 3 offline keys (``tuf/root-1..3``), expires in 1 year;
  losing or leaking one root key does not lose the repository.
* targets: one offline key, expires in 3 months; it delegates ``<hw>/*`` to
  ``models-<hw>`` (signed with the targets key at first). A delegated role's
  keys are listed in targets, not in root, so ``rotate("models-<hw>")`` gives
  one model its own offline key (new targets version, new role version)
  without touching root or other models.
* snapshot (7 days) and timestamp (1 day): online keys, re-signed by
  :meth:`TUFRepository.refresh` (``refcam repo refresh`` or the update
  server's periodic task). A short timestamp expiry bounds how long an
  attacker can freeze a device on old metadata (TUF freeze attack); snapshot
  is longer because it only changes with new targets.

Every operation works in memory through :class:`tuf.repository.Repository`
(``edit``/``do_snapshot``/``do_timestamp``), checks every new file against
its delegator's threshold, and only then :meth:`TUFRepository.commit` writes
the files: targets first, versioned metadata next, ``timestamp.json`` last,
each through a temporary file and ``os.replace``. A failed step leaves REPO
unchanged, and a client reading while we write always sees a consistent set.

Example::

    repo = TUFRepository.open_dir(Path("REPO"), now=now)
    repo.publish("rc1080-1.2.0.img", image_bytes, facts)
    repo.commit()
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    Key,
    SSlibKey,
)
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import (  # type: ignore[attr-defined]
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Role,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.repository import Repository  # type: ignore[attr-defined]

from bootloader import keys
from common.atomicfile import write_atomic
from common.errors import ImageFormatError, ImageVerificationError
from common.image import ImageFacts, SignedImage, verify_image

from .errors import RepositoryInputError, RepositoryStateError, SigningError

FORMAT = "refcam-tuf-repo/1"
CONFIG_NAME = "repo.json"
TOP_LEVEL_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
ONLINE_ROLES = (Snapshot.type, Timestamp.type)
ROOT_THRESHOLD = 2
MODEL_ROLE_PREFIX = "models-"
HASH_ALGORITHM = "sha256"
# Role names go into URLs and file names; a "/" would become "%2F", which
# static web servers decode, so delegated role names are slash-free.
_HARDWARE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_VERSIONED = re.compile(r"^([1-9][0-9]{0,9})\.(.+)\.json$")

# Initial key files written by ``refcam keys init`` (relative to the key directory).
INITIAL_KEY_FILES: dict[str, tuple[str, ...]] = {
    Root.type: ("tuf/root-1.key.pem", "tuf/root-2.key.pem", "tuf/root-3.key.pem"),
    Targets.type: ("tuf/targets.key.pem",),
    Snapshot.type: ("tuf/snapshot.key.pem",),
    Timestamp.type: ("tuf/timestamp.key.pem",),
}


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid, and when online roles are re-signed."""

    root: timedelta = timedelta(days=365)  # offline, rarely changes
    targets: timedelta = timedelta(days=90)  # offline; also used for models-* roles
    snapshot: timedelta = timedelta(days=7)  # online
    timestamp: timedelta = timedelta(days=1)  # online; bounds a freeze attack
    snapshot_refresh_margin: timedelta = timedelta(days=3)  # re-sign when closer to expiry
    timestamp_refresh_margin: timedelta = timedelta(hours=12)

    def lifetime(self, role: str) -> timedelta:
        if role in (Root.type, Snapshot.type, Timestamp.type):
            value: timedelta = getattr(self, role)
            return value
        return self.targets


@dataclass(frozen=True)
class RefreshResult:
    snapshot_version: int
    timestamp_version: int
    resigned: tuple[str, ...]  # roles that got a new version
    warnings: tuple[str, ...]  # offline roles close to expiry (need a person)


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: datetime
    keyids: tuple[str, ...]
    threshold: int
    delegated_by: str = Root.type  # the role whose metadata lists the keys
    paths: tuple[str, ...] = ()  # path patterns of a delegated role


def facts_from_image(data: bytes, *, signing_keys: Iterable[Path] = ()) -> ImageFacts:
    """Parse a signed image strictly (``common.image``); with ``signing_keys``,
    also require a valid signature by one of them, so the repository never
    publishes an image every device would refuse."""
    try:
        image = SignedImage.parse(data)
    except ImageFormatError as exc:
        raise RepositoryInputError(f"not a refcam firmware image: {exc}") from exc
    keys_given = [p for p in signing_keys if p.exists()]
    if keys_given:
        problems = []
        for path in keys_given:
            try:
                verify_image(image, public_key=keys.load_public_key(path))
                break
            except ImageVerificationError as exc:
                problems.append(f"{path.name}: {exc}")
        else:
            raise RepositoryInputError("image signature does not verify: " + "; ".join(problems))
    check_hardware_id(image.hardware_id)
    return ImageFacts(image.hardware_id, str(image.version), image.security_counter)


def model_role_name(hardware_id: str) -> str:
    """The delegated targets role that lists images for ``hardware_id``."""
    check_hardware_id(hardware_id)
    return f"{MODEL_ROLE_PREFIX}{hardware_id}"


def check_hardware_id(hardware_id: str) -> None:
    if not _HARDWARE_ID.fullmatch(hardware_id):
        raise RepositoryInputError(
            f"hardware id {hardware_id!r} is not usable in a target path; "
            "expected lower-case letters, digits, '.', '_' or '-'"
        )


_ADVISORY_ID = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+){1,5}")


def target_custom(
    facts: ImageFacts, *, sbom: str | None = None, advisories: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``custom`` object of a firmware target (read by the device before downloading).

    ``sbom`` is the target path of the release's CycloneDX SBOM (itself a signed
    target); ``advisories`` are the CSAF advisory ids this release fixes, so a
    device running an older version learns it is affected, and by what.
    """
    return {
        "kind": "firmware",
        "hardware_id": facts.hardware_id,
        "version": facts.version,
        "security_counter": facts.security_counter,
        "sbom": sbom,
        "advisories": list(advisories),
    }


def new_rollout_rule(percent: float, *, halt: bool = False) -> dict[str, Any]:
    """A staged rollout rule for a target's ``custom`` (device.update.rollout reads it); canonical
    JSON has no floats, so the share travels as basis points (1/100 of a percent)."""
    if not (isinstance(percent, (int, float)) and 0 <= percent <= 100):
        raise RepositoryInputError(f"rollout percent {percent} must be between 0 and 100")
    return {"salt": secrets.token_hex(16), "basis_points": round(percent * 100), "halted": bool(halt)}


def replace_delegation_key(targets: Targets, old: str, new: Key | None) -> list[str]:
    """In every role ``targets`` delegates to with key ``old``: put ``new`` in its place
    (or only remove ``old`` when ``new`` is None). Returns the roles changed."""
    if targets.delegations is None or targets.delegations.roles is None:
        return []
    changed = [name for name, role in targets.delegations.roles.items() if old in role.keyids]
    for name in changed:
        targets.revoke_key(old, name)
        if new is not None:
            targets.add_key(new, name)
    return changed


def _check_removal(role: str, info: Role, keyid: str, *, revoked_from: str | None = None) -> None:
    """Refuse to take ``keyid`` from ``role`` if fewer keys than its threshold would remain."""
    left = len(info.keyids) - 1
    if left < info.threshold:
        where = f" from {revoked_from}" if revoked_from else ""
        raise RepositoryInputError(
            f"revoking {keyid[:12]}{where} would leave {role} with {left} key(s), below its "
            f"threshold {info.threshold}; use 'refcam repo rotate {role} REPO' to replace the key"
        )


def utc_seconds(now: datetime) -> datetime:
    """``now`` in UTC without microseconds (TUF expiry has second precision)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)


# --------------------------------------------------------------------------- keys


def load_private_key(path: Path, passphrase: bytes | None) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 TUF role key from a PKCS#8 PEM file (``bootloader.keys`` format)."""
    key = keys.load_private_key(path, passphrase)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise RepositoryStateError(f"{path} holds a {type(key).__name__}; TUF role keys are Ed25519")
    return key


def public_key_for(private_key: ed25519.Ed25519PrivateKey) -> SSlibKey:
    return SSlibKey.from_crypto(private_key.public_key())


def write_key_pair(path: Path, key: ed25519.Ed25519PrivateKey, passphrase: bytes | None) -> None:
    """Write a new private key ``path`` (0600, never overwriting) and its ``.pub.pem``."""
    keys.write_private_key(path, key, passphrase)
    pub_path = path.with_name(path.name.replace(".key.pem", ".pub.pem"))
    pub_path.write_bytes(keys.public_pem(key.public_key()))


@dataclass
class Keyring:
    """Signers loaded on demand from the key directory; offline keys may be absent."""

    keys_dir: Path
    key_files: dict[str, str]  # keyid -> path relative to keys_dir
    passphrase: bytes | None = None
    _signers: dict[str, CryptoSigner] = field(default_factory=dict)

    def signer(self, keyid: str) -> CryptoSigner | None:
        if keyid in self._signers:
            return self._signers[keyid]
        rel = self.key_files.get(keyid)
        if rel is None or not (self.keys_dir / rel).exists():
            return None
        private = load_private_key(self.keys_dir / rel, self.passphrase)
        public = public_key_for(private)
        if public.keyid != keyid:
            raise RepositoryStateError(
                f"key file {rel} holds key {public.keyid[:12]}, expected {keyid[:12]}"
            )
        signer = CryptoSigner(private, public)
        self._signers[keyid] = signer
        return signer

    def add(self, rel: str, private: ed25519.Ed25519PrivateKey) -> SSlibKey:
        public = public_key_for(private)
        self.key_files[public.keyid] = rel
        self._signers[public.keyid] = CryptoSigner(private, public)
        return public

    def describe(self, keyid: str) -> str:
        return self.key_files.get(keyid, f"key {keyid[:12]} (no key file recorded)")


# --------------------------------------------------------------------------- repository


class TUFRepository(Repository):
    """A python-tuf :class:`Repository` over ``REPO``; changes stay in memory until commit()."""

    def __init__(
        self,
        repo_dir: Path,
        keyring: Keyring,
        *,
        now: datetime,
        expiry: ExpiryPolicy | None = None,
        passphrase_env: str | None = None,
    ) -> None:
        self.repo_dir = repo_dir
        self.metadata_dir = repo_dir / "metadata"
        self.targets_dir = repo_dir / "targets"
        self.keyring = keyring
        self.now = utc_seconds(now)
        self.expiry = expiry or ExpiryPolicy()
        self.passphrase_env = passphrase_env
        self._staged: dict[str, list[tuple[Metadata[Any], bytes]]] = {}  # role -> new versions
        self._staged_targets: dict[str, bytes] = {}  # relative path under targets/ -> bytes
        self._disk_cache: dict[str, Metadata[Any] | None] = {}

    # ---------------------------------------------------------------- construction

    @classmethod
    def open_dir(
        cls,
        repo_dir: Path,
        *,
        now: datetime,
        passphrase: bytes | None = None,
        keys_dir: Path | None = None,
        expiry: ExpiryPolicy | None = None,
    ) -> TUFRepository:
        """Open an initialised repository (``refcam repo init`` made it)."""
        config_path = repo_dir / CONFIG_NAME
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RepositoryStateError(
                f"{repo_dir} is not a refcam repository (no {CONFIG_NAME}); run 'refcam repo init'"
            ) from None
        except (OSError, ValueError) as exc:
            raise RepositoryStateError(f"cannot read {config_path}: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise RepositoryStateError(f"{config_path} is not a {FORMAT} configuration")
        key_files = config.get("key_files")
        if not isinstance(key_files, dict):
            raise RepositoryStateError(f"{config_path} has no key_files map")
        keyring = Keyring(
            keys_dir=keys_dir or Path(str(config["keys_dir"])),
            key_files={str(k): str(v) for k, v in key_files.items()},
            passphrase=passphrase,
        )
        repo = cls(
            repo_dir, keyring, now=now, expiry=expiry, passphrase_env=config.get("passphrase_env")
        )
        if repo._latest_on_disk(Root.type) is None:
            raise RepositoryStateError(f"{repo.metadata_dir} has no root metadata")
        return repo

    @classmethod
    def initialise(
        cls,
        repo_dir: Path,
        keys_dir: Path,
        *,
        now: datetime,
        passphrase: bytes | None = None,
        passphrase_env: str | None = None,
        expiry: ExpiryPolicy | None = None,
    ) -> TUFRepository:
        """Create root (2 of 3), targets, snapshot and timestamp v1 in memory; commit() writes."""
        if (repo_dir / CONFIG_NAME).exists() or any((repo_dir / "metadata").glob("*.json")):
            raise RepositoryInputError(f"{repo_dir} already holds a repository; refusing to overwrite it")
        keyring = Keyring(keys_dir=keys_dir.resolve(), key_files={}, passphrase=passphrase)
        publics: dict[str, list[Key]] = {}
        for role, files in INITIAL_KEY_FILES.items():
            publics[role] = []
            for rel in files:
                if not (keys_dir / rel).exists():
                    raise RepositoryStateError(
                        f"key directory {keys_dir} has no {rel}; run 'refcam keys init --dir {keys_dir}'"
                    )
                publics[role].append(keyring.add(rel, load_private_key(keys_dir / rel, passphrase)))
        repo = cls(repo_dir, keyring, now=now, expiry=expiry, passphrase_env=passphrase_env)
        with repo.edit_root() as root:
            root.consistent_snapshot = True
            for role, keys in publics.items():
                for key in keys:
                    root.add_key(key, role)
            root.roles[Root.type].threshold = ROOT_THRESHOLD
        with repo.edit_targets():
            pass
        repo.do_snapshot()
        repo.do_timestamp()
        return repo

    # ---------------------------------------------------------------- storage

    def _versions_on_disk(self, role: str) -> list[int]:
        versions = []
        if self.metadata_dir.is_dir():
            for path in self.metadata_dir.iterdir():
                match = _VERSIONED.fullmatch(path.name)
                if match and match.group(2) == role:
                    versions.append(int(match.group(1)))
        return sorted(versions)

    def _read_metadata(self, path: Path) -> Metadata[Any]:
        try:
            return Metadata.from_bytes(path.read_bytes())
        except OSError as exc:
            raise RepositoryStateError(f"cannot read {path}: {exc.strerror}") from exc
        except RepositoryError as exc:
            raise RepositoryStateError(f"{path} is not valid TUF metadata: {exc}") from exc
        except ValueError as exc:
            raise RepositoryStateError(f"{path} is not valid TUF metadata: {exc}") from exc

    def _latest_on_disk(self, role: str) -> Metadata[Any] | None:
        if role in self._disk_cache:
            return self._disk_cache[role]
        md: Metadata[Any] | None = None
        if role == Timestamp.type:
            path = self.metadata_dir / "timestamp.json"
            md = self._read_metadata(path) if path.exists() else None
        else:
            versions = self._versions_on_disk(role)
            if versions:
                md = self._read_metadata(self.metadata_dir / f"{versions[-1]}.{role}.json")
        self._disk_cache[role] = md
        return md

    def _current(self, role: str) -> Metadata[Any] | None:
        staged = self._staged.get(role)
        if staged:
            return staged[-1][0]
        return self._latest_on_disk(role)

    def open(self, role: str) -> Metadata[Any]:
        current = self._current(role)
        if current is not None:
            return copy.deepcopy(current)
        signed: Signed
        if role == Root.type:
            signed = Root(consistent_snapshot=True)
        elif role == Snapshot.type:
            signed = Snapshot()
        elif role == Timestamp.type:
            signed = Timestamp()
        else:
            signed = Targets()
        signed.version = 0  # close() bumps it to 1
        return Metadata(signed)

    def _delegator(self, role: str) -> Root | Targets:
        if role in TOP_LEVEL_ROLES:
            return self.root()
        targets = self.targets()
        if targets.delegations is None or targets.delegations.roles is None or (
            role not in targets.delegations.roles
        ):
            raise RepositoryStateError(f"role {role} is not delegated by targets")
        return targets

    def _signers_for(self, role: str, md: Metadata[Any]) -> list[CryptoSigner]:
        keyids: list[str] = []
        if role == Root.type:
            assert isinstance(md.signed, Root)
            keyids.extend(md.signed.roles[Root.type].keyids)
            previous = self._current(Root.type)
            if previous is not None:  # TUF 5.3.4: old AND new root keys sign a new root
                assert isinstance(previous.signed, Root)
                keyids.extend(previous.signed.roles[Root.type].keyids)
        else:
            keyids.extend(self._delegator(role).get_delegated_role(role).keyids)
        signers = []
        for keyid in dict.fromkeys(keyids):
            signer = self.keyring.signer(keyid)
            if signer is not None:
                signers.append(signer)
        return signers

    def close(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.signed.expires = self.now + self.expiry.lifetime(role)
        md.signatures.clear()
        for signer in self._signers_for(role, md):
            md.sign(signer, append=True)
        self._check_threshold(role, md)
        data = md.to_bytes()
        self._staged.setdefault(role, []).append((md, data))

    def _check_threshold(self, role: str, md: Metadata[Any]) -> None:
        if role == Root.type:
            assert isinstance(md.signed, Root)
            previous = self._current(Root.type)
            prev_root = previous.signed if previous is not None else None
            assert prev_root is None or isinstance(prev_root, Root)
            result = md.signed.get_root_verification_result(prev_root, md.signed_bytes, md.signatures)
            if not result.verified:
                missing = set(md.signed.roles[Root.type].keyids)
                if prev_root is not None:
                    missing |= set(prev_root.roles[Root.type].keyids)
                raise SigningError(
                    f"root v{md.signed.version} is not signed by a threshold of the old and the new "
                    f"root keys ({len(result.first.signed)} of {result.first.threshold} and "
                    f"{len(result.second.signed)} of {result.second.threshold}); root key files: "
                    + ", ".join(sorted(self.keyring.describe(k) for k in missing))
                )
            return
        result2 = self._delegator(role).get_verification_result(role, md.signed_bytes, md.signatures)
        if not result2.verified:
            wanted = ", ".join(self.keyring.describe(k) for k in result2.unsigned)
            raise SigningError(
                f"{role} v{md.signed.version} has {len(result2.signed)} of {result2.threshold} "
                f"required signatures; missing key files: {wanted} (offline key not available?)"
            )

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        infos: dict[str, MetaFile] = {}
        for role in self.targets_roles():
            current = self._current(role)
            if current is not None:
                infos[f"{role}.json"] = MetaFile(current.signed.version)
        return infos

    @property
    def snapshot_info(self) -> MetaFile:
        staged = self._staged.get(Snapshot.type)
        if staged:
            md, data = staged[-1]
        else:
            versions = self._versions_on_disk(Snapshot.type)
            if not versions:
                return MetaFile(0)
            path = self.metadata_dir / f"{versions[-1]}.snapshot.json"
            data = path.read_bytes()
            md = Metadata.from_bytes(data)
        # length and hash let the client bound and check the snapshot download (TUF 5.5.2)
        return MetaFile(
            md.signed.version, len(data), {HASH_ALGORITHM: hashlib.sha256(data).hexdigest()}
        )

    def targets_roles(self) -> list[str]:
        roles = [Targets.type]
        current = self._current(Targets.type)
        if current is not None:
            assert isinstance(current.signed, Targets)
            delegations = current.signed.delegations
            if delegations is not None and delegations.roles:
                roles.extend(delegations.roles)
        return roles

    # ---------------------------------------------------------------- operations

    def publish(
        self,
        file_name: str,
        data: bytes,
        facts: ImageFacts,
        *,
        sbom: bytes | None = None,
        advisories: Sequence[str] = (),
        rollout_percent: float | None = None,
    ) -> TargetFile:
        """Add a firmware image as target ``<hardware_id>/<file_name>`` of its model role,
        with its SBOM (if given) as a second signed target beside it."""
        if not _FILE_NAME.fullmatch(file_name):
            raise RepositoryInputError(
                f"file name {file_name!r} is not usable as a target name; "
                "expected letters, digits, '.', '_', '+' or '-' (max 128)"
            )
        for advisory in advisories:
            if not _ADVISORY_ID.fullmatch(advisory):
                raise RepositoryInputError(f"advisory id {advisory!r} is malformed (e.g. REFCAM-SA-2026-0001)")
        role = model_role_name(facts.hardware_id)
        target_path = f"{facts.hardware_id}/{file_name}"
        sbom_target = None
        if sbom is not None:
            sbom_path = f"{facts.hardware_id}/{file_name.rsplit('.', 1)[0]}.cdx.json"
            sbom_target = TargetFile.from_data(sbom_path, sbom, [HASH_ALGORITHM])
            sbom_target.unrecognized_fields["custom"] = {"kind": "sbom", "describes": target_path}
        target = TargetFile.from_data(target_path, data, [HASH_ALGORITHM])
        target.unrecognized_fields["custom"] = target_custom(
            facts, sbom=sbom_target.path if sbom_target else None, advisories=advisories
        )
        if rollout_percent is not None:  # staged from the start: no unit sees it unstaged
            target.unrecognized_fields["custom"]["rollout"] = new_rollout_rule(rollout_percent)

        top = self.targets()
        delegated = top.delegations is not None and top.delegations.roles is not None and (
            role in top.delegations.roles
        )
        if not delegated:
            targets_keyids = self.root().roles[Targets.type].keyids
            with self.edit_targets() as targets:
                if targets.delegations is None:
                    targets.delegations = Delegations(keys={}, roles={})
                assert targets.delegations.roles is not None
                # terminating: a path under <hw>/ is only ever searched in this role
                targets.delegations.roles[role] = DelegatedRole(
                    role, [], 1, True, paths=[f"{facts.hardware_id}/*"]
                )
                for keyid in targets_keyids:  # the model role is signed with the targets key
                    targets.add_key(self.root().get_key(keyid), role)
        existing = self.targets(role).targets.get(target_path) if self._current(role) else None
        if existing is not None:
            raise RepositoryInputError(
                f"target {target_path} is already published "
                f"({existing.custom.get('version') if isinstance(existing.custom, dict) else '?'}); "
                "publish a new image under a new file name"
            )
        for other in (self.targets(role).targets.values() if self._current(role) else ()):
            custom = other.custom if isinstance(other.custom, dict) else {}
            if custom.get("version") == facts.version:
                raise RepositoryInputError(
                    f"version {facts.version} for {facts.hardware_id} is already published "
                    f"as {other.path}"
                )
        with self.edit_targets(role) as model:
            model.targets[target_path] = target
            if sbom_target is not None:
                model.targets[sbom_target.path] = sbom_target
        self.do_snapshot()
        self.do_timestamp()
        digest = target.hashes[HASH_ALGORITHM]
        self._staged_targets[f"{facts.hardware_id}/{digest}.{file_name}"] = data
        if sbom_target is not None and sbom is not None:
            sbom_digest = sbom_target.hashes[HASH_ALGORITHM]
            sbom_name = sbom_target.path.split("/", 1)[1]
            self._staged_targets[f"{facts.hardware_id}/{sbom_digest}.{sbom_name}"] = sbom
        return target

    def set_rollout(self, version: str, *, percent: float, halt: bool = False) -> tuple[TargetFile, dict[str, Any]]:
        """Stage release ``version``: the rule (salt, percent, halted) goes into its signed
        target's ``custom.rollout`` (device.update.rollout); widening keeps the salt, so
        every unit admitted before stays admitted. Re-signs its model role, snapshot and
        timestamp."""
        if not (isinstance(percent, (int, float)) and 0 <= percent <= 100):
            raise RepositoryInputError(f"--percent {percent} must be between 0 and 100")
        found: list[tuple[str, TargetFile]] = []
        for role in self.delegated_roles():
            for target in self.targets(role).targets.values():
                custom = target.custom if isinstance(target.custom, dict) else {}
                if custom.get("kind", "firmware") == "firmware" and custom.get("version") == version:
                    found.append((role, target))
        if not found:
            raise RepositoryInputError(f"no published firmware has version {version}; publish it first")
        if len(found) > 1:
            names = ", ".join(t.path for _r, t in found)
            raise RepositoryInputError(f"version {version} is published for several models ({names})")
        role, target = found[0]
        custom = dict(target.custom) if isinstance(target.custom, dict) else {}
        found_rule = custom.get("rollout")
        previous: dict[str, Any] = found_rule if isinstance(found_rule, dict) else {}
        rule = new_rollout_rule(percent, halt=halt)
        if isinstance(previous.get("salt"), str):
            rule["salt"] = previous["salt"]  # the same cohort order: admitted units stay admitted
        custom["rollout"] = rule
        with self.edit_targets(role) as model:
            staged = model.targets[target.path]
            staged.unrecognized_fields["custom"] = custom
        self.do_snapshot()
        self.do_timestamp()
        return self.targets(role).targets[target.path], rule

    def refresh(self, *, force: bool = False) -> RefreshResult:
        """Re-sign snapshot and timestamp when they are within their margin of expiry."""
        resigned: list[str] = []
        snapshot = self.snapshot()
        if force or snapshot.expires - self.now <= self.expiry.snapshot_refresh_margin:
            self.do_snapshot(force=True)
            resigned.append(Snapshot.type)
        timestamp = self.timestamp()
        if resigned or force or (
            timestamp.expires - self.now <= self.expiry.timestamp_refresh_margin
        ):
            self.do_timestamp(force=True)
            resigned.append(Timestamp.type)
        warnings = []
        for role in (Root.type, *self.targets_roles()):
            expires = self.open(role).signed.expires
            if expires - self.now <= timedelta(days=30):
                warnings.append(
                    f"{role} expires {expires:%Y-%m-%d}; re-sign it with its offline key"
                )
        return RefreshResult(
            snapshot_version=self.snapshot().version,
            timestamp_version=self.timestamp().version,
            resigned=tuple(resigned),
            warnings=tuple(warnings),
        )

    def delegated_roles(self) -> list[str]:
        """The roles the top-level targets role delegates to (``models-<hw>``)."""
        return self.targets_roles()[1:]

    def role_keys(self, role: str) -> Role:
        """Key ids and threshold of ``role`` as its delegator lists them: root for the
        top-level roles, the DELEGATIONS of the top-level targets role (TUF 4.5).

        Raises :class:`RepositoryInputError` for a role that is neither.
        """
        if role in TOP_LEVEL_ROLES:
            return self.root().roles[role]
        delegated = self.delegated_roles()
        if role not in delegated:
            known = ", ".join(delegated) or "none yet: 'refcam repo publish' creates models-<hw>"
            raise RepositoryInputError(
                f"role {role!r} is unknown; expected root, targets, snapshot, timestamp "
                f"or a role delegated by targets ({known})"
            )
        return self.targets().get_delegated_role(role)

    def delegator_of(self, role: str) -> str:
        """``root`` for a top-level role, ``targets`` for a delegated one."""
        self.role_keys(role)
        return Root.type if role in TOP_LEVEL_ROLES else Targets.type

    def rotate(self, role: str, *, replace_keyid: str | None = None) -> SSlibKey:
        """Replace one key of ``role`` with a new key written to the key directory.

        Top-level role: a new root version lists the new key; for root it is
        signed by a threshold of the old root keys AND of the new ones (TUF
        5.3.4), so a client that trusts the old root follows the rotation.
        Rotating the targets key also moves every ``models-<hw>`` delegation
        that listed the old targets key to the new one, so the retired key
        signs nothing a client would still accept.

        Delegated role (``models-<hw>``): its keys are listed in the top-level
        targets metadata, so a new targets version (signed with the targets
        key) lists the new key instead of the old one.

        Either way the rotated role then gets a new version signed by the new
        key, and snapshot and timestamp follow, so a client walks to it.
        """
        info = self.role_keys(role)
        old = self._resolve_keyid(role, replace_keyid or info.keyids[0])
        stamp = self.now.strftime("%Y%m%dT%H%M%SZ")
        rel = f"tuf/{role}-{stamp}.key.pem"
        if (self.keyring.keys_dir / rel).exists():
            raise RepositoryInputError(f"{rel} already exists; rotate at most once per second")
        private = ed25519.Ed25519PrivateKey.generate()
        new_key = self.keyring.add(rel, private)
        if role in TOP_LEVEL_ROLES:
            with self.edit_root() as root:
                root.revoke_key(old, role)
                root.add_key(new_key, role)
            self._resign_after_root_change(role, old, new_key)
        else:
            with self.edit_targets() as targets:
                targets.revoke_key(old, role)
                targets.add_key(new_key, role)
            self._resign_delegated([role])
        write_key_pair(self.keyring.keys_dir / rel, private, self.keyring.passphrase)
        return new_key

    def revoke_key(self, role: str, keyid: str) -> None:
        """Remove a key from ``role`` (top-level or delegated); refused if ``role``, or a
        delegated role that shares the key, could no longer meet its threshold."""
        info = self.role_keys(role)
        keyid = self._resolve_keyid(role, keyid)
        _check_removal(role, info, keyid)
        if role == Targets.type:
            for name in self.delegated_roles():
                delegated = self.targets().get_delegated_role(name)
                if keyid in delegated.keyids:
                    _check_removal(name, delegated, keyid, revoked_from=role)
        if role in TOP_LEVEL_ROLES:
            with self.edit_root() as root:
                root.revoke_key(keyid, role)
            self._resign_after_root_change(role, keyid, None)
        else:
            with self.edit_targets() as targets:
                targets.revoke_key(keyid, role)
            self._resign_delegated([role])

    def _resolve_keyid(self, role: str, prefix: str) -> str:
        keyids = self.role_keys(role).keyids
        matches = [k for k in keyids if k.startswith(prefix.lower())] if len(prefix) >= 8 else []
        if len(matches) != 1:
            raise RepositoryInputError(
                f"key {prefix!r} does not name exactly one {role} key; {role} keys: "
                + ", ".join(k[:16] for k in keyids)
            )
        return matches[0]

    def _resign_after_root_change(self, role: str, old: str, new: Key | None) -> None:
        if role == Targets.type:
            with self.edit_targets() as targets:
                moved = replace_delegation_key(targets, old, new)
            self._resign_delegated(moved)
            return
        self.do_snapshot(force=role == Snapshot.type)
        self.do_timestamp(force=True)

    def _resign_delegated(self, roles: Iterable[str]) -> None:
        """New versions of ``roles`` signed with the keys the (staged) targets lists for
        them, then snapshot and timestamp, so a client walks to the new versions."""
        for role in roles:
            with self.edit_targets(role):
                pass
        self.do_snapshot()
        self.do_timestamp(force=True)

    # ---------------------------------------------------------------- inspection

    def status(self) -> list[RoleStatus]:
        out = []
        for role in (*TOP_LEVEL_ROLES, *self.delegated_roles()):
            signed = self.open(role).signed
            info = self.role_keys(role)
            out.append(
                RoleStatus(
                    role,
                    signed.version,
                    signed.expires,
                    tuple(info.keyids),
                    info.threshold,
                    delegated_by=self.delegator_of(role),
                    paths=tuple(getattr(info, "paths", None) or ()),
                )
            )
        return out

    def trusted_root_bytes(self) -> bytes:
        """The newest root metadata as served (what a device's firmware embeds)."""
        staged = self._staged.get(Root.type)
        if staged:
            return staged[-1][1]
        versions = self._versions_on_disk(Root.type)
        if not versions:
            raise RepositoryStateError(f"{self.metadata_dir} has no root metadata")
        return (self.metadata_dir / f"{versions[-1]}.root.json").read_bytes()

    # ---------------------------------------------------------------- commit

    def commit(self) -> list[Path]:
        """Write staged targets and metadata; ``timestamp.json`` last. Returns the paths."""
        written: list[Path] = []
        for rel, data in self._staged_targets.items():
            written.append(_atomic_write(self.targets_dir / rel, data, immutable=True))
        ordered = [r for r in self._staged if r not in (Root.type, Snapshot.type, Timestamp.type)]
        for role in (*ordered, Snapshot.type, Root.type):
            for md, data in self._staged.get(role, []):
                written.append(
                    _atomic_write(self.metadata_dir / f"{md.signed.version}.{role}.json", data)
                )
        if Root.type in self._staged:
            written.append(_atomic_write(self.metadata_dir / "root.json", self._staged[Root.type][-1][1]))
        config = {
            "format": FORMAT,
            "keys_dir": str(self.keyring.keys_dir),
            "passphrase_env": self.passphrase_env,
            "key_files": dict(sorted(self.keyring.key_files.items())),
        }
        written.append(
            _atomic_write(
                self.repo_dir / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode()
            )
        )
        if Timestamp.type in self._staged:
            written.append(
                _atomic_write(self.metadata_dir / "timestamp.json", self._staged[Timestamp.type][-1][1])
            )
        self._staged.clear()
        self._staged_targets.clear()
        self._disk_cache.clear()
        return written

    @property
    def has_changes(self) -> bool:
        return bool(self._staged or self._staged_targets)


def _atomic_write(path: Path, data: bytes, *, immutable: bool = False) -> Path:
    """Write ``data`` to ``path`` all or nothing; an ``immutable`` (versioned) file that
    exists must already hold exactly ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if immutable and path.exists():
        if path.read_bytes() != data:
            raise RepositoryStateError(f"{path} exists with other content; versioned files never change")
        return path
    write_atomic(path, data)
    return path

