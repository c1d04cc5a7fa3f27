"""Commands of the vendor TUF repository, the update server and the TUF test client.

::

    refcam repo init --dir REPO --keys K [--passphrase-env VAR]
    refcam repo publish REPO FILE [--keys K]
    refcam repo refresh REPO [--force]
    refcam repo rollout REPO --version V --percent P [--halt]   staged rollout (signed rule)
    refcam repo rotate ROLE REPO [--keys K] [--keyid ID]     ROLE: root, targets, snapshot,
    refcam repo revoke-key REPO --role ROLE --keyid ID           timestamp or models-<hw>
    refcam repo status REPO
    refcam update-server run --repo REPO --keys K [--host 127.0.0.1] [--port 9443]
    refcam tuf-client --metadata-dir D init ROOT
    refcam tuf-client --metadata-url U --metadata-dir D refresh
    refcam tuf-client --metadata-url U --metadata-dir D --target-name P \\
        --target-dir T --target-base-url U download

``tuf-client`` implements the tuf-conformance client CLI (exit 0 on success,
1 on any failure) with the device's own ``Updater`` construction and fetcher
(:func:`device.update.tufclient.build_updater`); ``--ca-file`` gives the TLS
trust anchor, ``--allow-plain-http`` (this command only) permits ``http://``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tuf.ngclient import Updater  # type: ignore[attr-defined]

from common import tls as device_tls
from common.atomicfile import write_atomic
from common.flaws import UnsafeFlaws
from device.update.errors import UpdateError, UpdateTransportError
from device.update.fetcher import HTTPSFetcher
from device.update.tufclient import build_updater, translate
from refcam.i18n import _
from update_server.errors import RepositoryInputError, RepositoryStateError, ServerConfigError
from update_server.psirt.errors import SBOMError
from update_server.repo import TUFRepository, facts_from_image
from update_server.sbom import validate_sbom
from update_server.server import UpdateServerConfig, run
from update_server.vendor import DEFAULT_PSIRT_DB, utc_now, vendor_extensions

if TYPE_CHECKING:
    from .openpgp import OpenPGPSigner


def _now() -> datetime:
    return datetime.now(UTC)


def _passphrase(var: str | None) -> bytes | None:
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise RepositoryInputError(_("environment variable {var} (the key passphrase) is not set").format(var=var))
    return value.encode()


def _open(args: argparse.Namespace) -> TUFRepository:
    repo_dir = Path(args.repo)
    var = getattr(args, "passphrase_env", None)
    keys_dir = Path(args.keys) if getattr(args, "keys", None) else None
    if var is None:
        # the variable named at init time, if any
        probe = TUFRepository.open_dir(repo_dir, now=_now(), keys_dir=keys_dir)
        var = probe.passphrase_env
    return TUFRepository.open_dir(
        repo_dir, now=_now(), passphrase=_passphrase(var), keys_dir=keys_dir
    )


def cmd_init(args: argparse.Namespace) -> int:
    repo = TUFRepository.initialise(
        Path(args.dir),
        Path(args.keys),
        now=_now(),
        passphrase=_passphrase(args.passphrase_env),
        passphrase_env=args.passphrase_env,
    )
    repo.commit()
    root = repo.root()
    print(
        _("repository {dir}: root v{version} (threshold {threshold} of {len}), targets, snapshot, timestamp v1").format(dir=args.dir, version=root.version, threshold=root.roles['root'].threshold, len=len(root.roles['root'].keyids))
    )
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RepositoryInputError(_("cannot read {path}: {strerror}").format(path=path, strerror=exc.strerror)) from exc
    repo = _open(args)
    keys_dir = repo.keyring.keys_dir
    facts = facts_from_image(
        data,
        signing_keys=(
            keys_dir / "firmware-signing.pub.pem",
            keys_dir / "firmware-signing-p256.pub.pem",
        ),
    )
    sbom = _release_sbom(path, args.sbom, facts.version)
    if args.rollout is not None and not (math.isfinite(args.rollout) and 0 <= args.rollout <= 100):
        raise RepositoryInputError(_("--rollout {rollout} must be a percentage between 0 and 100").format(rollout=args.rollout))
    target = repo.publish(path.name, data, facts, sbom=sbom, advisories=args.fixes, rollout_percent=args.rollout)
    repo.commit()
    custom = target.custom if isinstance(target.custom, dict) else {}
    print(
        _("published {path} (version {version}, security counter {security_counter}, {length} bytes); timestamp v{version2}").format(path=target.path, version=facts.version, security_counter=facts.security_counter, length=target.length, version2=repo.timestamp().version)
    )
    if custom.get("sbom"):
        print(_("published {sbom} (CycloneDX SBOM of {path})").format(sbom=custom['sbom'], path=target.path))
    if args.fixes:
        print(_("release fixes {join}").format(join=', '.join(args.fixes)))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    if not math.isfinite(args.percent) or not 0 <= args.percent <= 100:
        raise RepositoryInputError(_("--percent {percent} must be between 0 and 100").format(percent=args.percent))
    repo = _open(args)
    target, rule = repo.set_rollout(args.version, percent=args.percent, halt=args.halt)
    repo.commit()
    state = "halted: no further installs" if rule["halted"] else f"offered to {rule['basis_points'] / 100:g} % of units"
    print(_("rollout of {version} ({path}): {state}; timestamp v{version2}").format(version=args.version, path=target.path, state=state, version2=repo.timestamp().version))
    return 0


def _release_sbom(image: Path, explicit: str | None, version: str) -> bytes | None:
    """The SBOM `refcam firmware build` wrote beside the image (or --sbom), checked."""
    path = Path(explicit) if explicit else image.with_suffix(".cdx.json")
    if not path.exists():
        if explicit:
            raise RepositoryInputError(_("--sbom {path}: no such file").format(path=path))
        return None
    try:
        text = path.read_text("utf-8")
        validate_sbom(text)
        described = json.loads(text)["metadata"]["component"]["version"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, SBOMError) as exc:
        raise RepositoryInputError(_("{path} is not a valid CycloneDX SBOM: {exc}").format(path=path, exc=exc)) from exc
    if described != version:
        raise RepositoryInputError(_("{path} describes firmware {described}, the image is {version}").format(path=path, described=described, version=version))
    return text.encode("utf-8")


def cmd_refresh(args: argparse.Namespace) -> int:
    repo = _open(args)
    result = repo.refresh(force=args.force)
    if repo.has_changes:
        repo.commit()
    for warning in result.warnings:
        print(_("warning: {warning}").format(warning=warning), file=sys.stderr)
    done = ", ".join(result.resigned) or "nothing (not close to expiry; --force to re-sign)"
    print(_("re-signed {done}; snapshot v{snapshot_version}, timestamp v{timestamp_version}").format(done=done, snapshot_version=result.snapshot_version, timestamp_version=result.timestamp_version))
    return 0


def _changed_versions(repo: TUFRepository, role: str) -> str:
    """``root v2`` for a top-level role; ``targets v3, models-<hw> v2`` for a delegated one."""
    if repo.delegator_of(role) == "root":
        return f"root v{repo.root().version}"
    return f"targets v{repo.targets().version}, {role} v{repo.targets(role).version}"


def cmd_rotate(args: argparse.Namespace) -> int:
    repo = _open(args)
    key = repo.rotate(args.role, replace_keyid=args.keyid)
    repo.commit()
    key_file = repo.keyring.describe(key.keyid)
    print(_("{role}: new key {value} ({key_file}); {changed_versions}").format(role=args.role, value=key.keyid[:16], key_file=key_file, changed_versions=_changed_versions(repo, args.role)))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    repo = _open(args)
    repo.revoke_key(args.role, args.keyid)
    repo.commit()
    print(_("{role}: key {keyid} revoked; {changed_versions}").format(role=args.role, keyid=args.keyid, changed_versions=_changed_versions(repo, args.role)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    repo = _open(args)
    for role in repo.status():
        keys = ",".join(f"{k[:8]} ({repo.keyring.describe(k)})" for k in role.keyids)
        line = (
            f"{role.role:<32} v{role.version:<5} expires {role.expires:%Y-%m-%dT%H:%M:%SZ}  "
            f"threshold {role.threshold} keys {keys}"
        )
        if role.delegated_by != "root":
            line += f"  delegated by {role.delegated_by} for {','.join(role.paths)}"
        print(line)
    return 0


def cmd_server_run(args: argparse.Namespace) -> int:
    os.umask(0o077)  # the vendor's state (PSIRT database, token) is the owner's only
    if not 0 <= args.port <= 65535:
        raise RepositoryInputError(_("--port {port} is not a TCP port").format(port=args.port))
    repo_dir = Path(args.repo)
    probe = TUFRepository.open_dir(repo_dir, now=_now(), keys_dir=Path(args.keys))
    var = args.passphrase_env or probe.passphrase_env
    names = ("localhost", "127.0.0.1", "::1", *args.name)
    config = UpdateServerConfig(
        repo_dir=repo_dir,
        keys_dir=Path(args.keys),
        host=args.host,
        port=args.port,
        tls_profile=args.tls_profile,
        names=tuple(dict.fromkeys(names)),
        refresh_interval=args.refresh_interval,
        passphrase=_passphrase(var),
    )
    flaws = UnsafeFlaws.parse(args.flaw, host=args.host)
    if flaws:
        print(flaws.banner(), flush=True)
    host = "localhost" if args.host in ("127.0.0.1", "::1", "localhost") else args.host
    extensions, token_at = vendor_extensions(
        base_url=f"https://{host}:{args.port}",
        psirt_db=Path(args.psirt_db),
        clock=utc_now,
        policy_file=Path(args.sla_policy) if args.sla_policy else None,
        flaws=flaws,
        signer=_openpgp_signer(args),
    )
    print(_("PSIRT operator token: {token_at}").format(token_at=token_at), flush=True)
    run(config, extensions=extensions)
    return 0


def _openpgp_signer(args: argparse.Namespace) -> OpenPGPSigner | None:
    if (args.openpgp_home is None) != (args.openpgp_key is None):
        raise ServerConfigError(_("--openpgp-home and --openpgp-key go together"))
    if args.openpgp_home is None:
        return None
    from update_server.openpgp import OpenPGPSigner  # python-gnupg, only when signing

    return OpenPGPSigner(gnupghome=Path(args.openpgp_home), fingerprint=args.openpgp_key)


# --------------------------------------------------------------------------- tuf-client


def _tuf_fetcher(args: argparse.Namespace) -> HTTPSFetcher:
    context = device_tls.client_context(Path(args.ca_file)) if args.ca_file else None
    return HTTPSFetcher(ssl_context=context, allow_plain_http=args.allow_plain_http)


def _trusted_root(metadata_dir: Path) -> bytes:
    try:
        return (metadata_dir / "root.json").read_bytes()
    except OSError as exc:
        raise RepositoryStateError(
            _("no trusted root in {metadata_dir} ({strerror}); run 'refcam tuf-client init' first").format(metadata_dir=metadata_dir, strerror=exc.strerror)
        ) from exc


def _require(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if not getattr(args, name):
            raise RepositoryInputError(_("--{replace} is required for this command").format(replace=name.replace('_', '-')))


def cmd_tuf_init(args: argparse.Namespace) -> int:
    metadata_dir = Path(args.metadata_dir)
    try:
        data = Path(args.trusted_root).read_bytes()
        metadata_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(metadata_dir / "root.json", data)
    except OSError as exc:
        raise RepositoryInputError(_("cannot initialise {metadata_dir}: {exc}").format(metadata_dir=metadata_dir, exc=exc)) from exc
    print(_("refcam tuf-client: trusted root installed in {metadata_dir}").format(metadata_dir=metadata_dir))
    return 0


def _updater_for(args: argparse.Namespace, *, with_targets: bool) -> Updater:
    metadata_dir = Path(args.metadata_dir)
    return build_updater(
        metadata_dir=metadata_dir,
        metadata_base_url=args.metadata_url,
        target_base_url=args.target_base_url if with_targets else None,
        target_dir=Path(args.target_dir) if with_targets else None,
        bootstrap_root=_trusted_root(metadata_dir),
        fetcher=_tuf_fetcher(args),
    )


def cmd_tuf_refresh(args: argparse.Namespace) -> int:
    _require(args, "metadata_url")
    updater = _updater_for(args, with_targets=False)
    try:
        updater.refresh()
    except UpdateError:
        raise
    except Exception as exc:
        raise translate(exc) from exc
    print(_("refcam tuf-client: metadata in {metadata_dir} is up to date").format(metadata_dir=args.metadata_dir))
    return 0


def cmd_tuf_download(args: argparse.Namespace) -> int:
    _require(args, "metadata_url", "target_name", "target_dir", "target_base_url")
    updater = _updater_for(args, with_targets=True)
    for name in args.target_name:
        try:
            info = updater.get_targetinfo(name)
            if info is None:
                raise UpdateTransportError(_("target {name!r} is not in the repository").format(name=name))
            cached = updater.find_cached_target(info)
            path = cached or updater.download_target(info)
        except UpdateError:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        print(_("refcam tuf-client: {name} -> {path}{value}").format(name=name, path=path, value=' (cached)' if cached else ''))
    return 0


# --------------------------------------------------------------------------- registration

ROLE_HELP = "root, targets, snapshot, timestamp, or a delegated models-<hw> role ('repo status' lists them)"


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    repo = groups["repo"]
    p = repo.add_parser("init", help=_("create a TUF repository (root 2-of-3, offline targets)"))
    p.add_argument("--dir", required=True, help=_("repository directory to create"))
    p.add_argument("--keys", required=True, help=_("key directory made by 'refcam keys init'"))
    p.add_argument("--passphrase-env", help=_("environment variable holding the key passphrase"))
    p.set_defaults(handler=cmd_init)

    p = repo.add_parser("publish", help=_("add a signed firmware image as a target"))
    p.add_argument("repo", help=_("repository directory"))
    p.add_argument("file", help=_("signed image ('refcam firmware build')"))
    p.add_argument("--keys", help=_("key directory (default: the one recorded at init)"))
    p.add_argument("--passphrase-env", help=_("environment variable holding the key passphrase"))
    p.add_argument("--sbom", help=_("CycloneDX SBOM of the image (default: FILE with .cdx.json, if present)"))
    p.add_argument("--fixes", action="append", default=[], metavar="ADVISORY",
                   help=_("a CSAF advisory id this release fixes (repeatable)"))
    p.add_argument("--rollout", type=float, metavar="PERCENT",
                   help=_("publish staged: offered to PERCENT %% of units (widen with 'repo rollout')"))
    p.set_defaults(handler=cmd_publish)

    p = repo.add_parser("rollout", help=_("stage a release: offer it to a share of the units (signed rule)"))
    p.add_argument("repo", help=_("repository directory"))
    p.add_argument("--version", required=True, help=_("the published firmware version to stage"))
    p.add_argument("--percent", required=True, type=float, help=_("share of units admitted, 0..100"))
    p.add_argument("--halt", action="store_true", help=_("stop further installs of this release"))
    p.add_argument("--keys", help=_("key directory (default: the one recorded at init)"))
    p.add_argument("--passphrase-env", help=_("environment variable holding the key passphrase"))
    p.set_defaults(handler=cmd_rollout)

    p = repo.add_parser("refresh", help=_("re-sign snapshot and timestamp before they expire"))
    p.add_argument("repo")
    p.add_argument("--keys")
    p.add_argument("--passphrase-env")
    p.add_argument("--force", action="store_true", help=_("re-sign even if not close to expiry"))
    p.set_defaults(handler=cmd_refresh)

    p = repo.add_parser(
        "rotate", help=_("replace a key of a role (top-level: new root; models-<hw>: new targets)")
    )
    p.add_argument("role", help=ROLE_HELP)
    p.add_argument("repo")
    p.add_argument("--keys")
    p.add_argument("--passphrase-env")
    p.add_argument("--keyid", help=_("key to replace (prefix, >= 8 hex digits); default: the first"))
    p.set_defaults(handler=cmd_rotate)

    p = repo.add_parser("revoke-key", help=_("remove a key from a role (refused below its threshold)"))
    p.add_argument("repo")
    p.add_argument("--role", required=True, help=ROLE_HELP)
    p.add_argument("--keyid", required=True, help=_("key id (prefix, >= 8 hex digits)"))
    p.add_argument("--keys")
    p.add_argument("--passphrase-env")
    p.set_defaults(handler=cmd_revoke)

    p = repo.add_parser("status", help=_("versions, expiries and keys of every role"))
    p.add_argument("repo")
    p.add_argument("--keys")
    p.set_defaults(handler=cmd_status, passphrase_env="")

    server = groups["update-server"]
    p = server.add_parser("run", help=_("serve REPO over TLS and keep its online roles fresh"))
    p.add_argument("--repo", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9443)
    p.add_argument("--tls-profile", choices=device_tls.PROFILES, default="intermediate")
    p.add_argument("--name", action="append", default=[], help=_("extra host name for the TLS leaf"))
    p.add_argument("--refresh-interval", type=float, default=3600.0, help=_("seconds; 0 disables"))
    p.add_argument("--passphrase-env")
    p.add_argument("--psirt-db", default=str(DEFAULT_PSIRT_DB), help=_("PSIRT database (SQLite)"))
    p.add_argument("--sla-policy", help=_("TOML overriding the default SLA policy"))
    p.add_argument("--flaw", action="append", default=[], help=_("UNSAFE vendor flaw (sla-breached)"))
    p.add_argument("--openpgp-home", help=_("GnuPG home holding the key that signs security.txt"))
    p.add_argument("--openpgp-key", metavar="FINGERPRINT", help=_("that key's fingerprint (with --openpgp-home)"))
    p.set_defaults(handler=cmd_server_run)

    p = groups[""].add_parser("tuf-client", help=_("TUF client (tuf-conformance CLI protocol)"))
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append")
    p.add_argument("--target-dir")
    p.add_argument("--target-base-url")
    p.add_argument("--ca-file", help=_("PEM trust anchor for https (the vendor root)"))
    p.add_argument(
        "--allow-plain-http", action="store_true", help=_("permit http:// (testing only)")
    )
    sub = p.add_subparsers(dest="tuf_command", metavar="SUBCOMMAND")
    sub.required = True
    q = sub.add_parser("init", help=_("install the trusted root"))
    q.add_argument("trusted_root")
    q.set_defaults(handler=cmd_tuf_init)
    q = sub.add_parser("refresh", help=_("update top-level metadata"))
    q.set_defaults(handler=cmd_tuf_refresh)
    q = sub.add_parser("download", help=_("download and verify targets"))
    q.set_defaults(handler=cmd_tuf_download)
