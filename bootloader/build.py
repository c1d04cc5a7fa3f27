"""Signed images from a key directory: the bootloader image (signed by a
root-of-trust key, naming the code of the bootloader stage) and firmware slot
images (signed by the firmware-signing key, carrying the key manifest).

The bootloader stage's code is every module of ours that the stage imports:
:func:`bootloader_stage_modules` walks the imports of :mod:`bootloader.chain`
(``bootloader`` and the ground package ``common``), so a module the ROM runs
as the bootloader is always one whose source it measured.

Example::

    image = build_firmware_image(keys=KeySet(Path("K")), payload=payload,
                                 version="1.0.0", security_counter=1)
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from bootloader.keys import KeySet, load_private_key
from common.errors import ImageFormatError, KeyStoreError
from common.image import SigningKey, sign_image
from common.verify import DEFAULT_HARDWARE_ID, bootloader_manifest

BOOTLOADER_ENTRY = "bootloader.chain"  # the stage the ROM hands control to
_STAGE_PACKAGES = ("bootloader", "common")


def _imports_of(name: str, source: bytes, *, is_package: bool) -> set[str]:
    """Module names of ours that ``source`` imports at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in _STAGE_PACKAGES}


def _module_file(name: str) -> tuple[Path, bool] | None:
    """The source file of module ``name`` of ours, found without importing it."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None  # a name imported from a module (a class, a function), not a module


@functools.cache
def bootloader_stage_modules(entry: str = BOOTLOADER_ENTRY) -> tuple[str, ...]:
    """Every module of ``bootloader`` and ``common`` that ``entry`` imports, transitively
    (packages included: their ``__init__`` runs too), sorted."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        found = _module_file(name)
        if found is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports_of(name, found[0].read_bytes(), is_package=found[1]))
    return tuple(sorted(seen))


# The code of the bootloader stage, hashed into the bootloader image's payload.
DEFAULT_BOOTLOADER_MODULES: tuple[str, ...] = bootloader_stage_modules()



def _module_source(name: str) -> bytes:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImageFormatError(f"bootloader module {name!r} cannot be found")
    return Path(spec.origin).read_bytes()


def build_bootloader_image(
    *,
    version: str,
    security_counter: int,
    rot_key: SigningKey | None = None,
    keys: KeySet | None = None,
    passphrase: bytes | None = None,
    rot_slot: int = 0,
    modules: Sequence[str] = DEFAULT_BOOTLOADER_MODULES,
    hardware_id: str = DEFAULT_HARDWARE_ID,
) -> bytes:
    """A bootloader image signed by a RoT key, with its public key in a PUBKEY TLV.

    Give the RoT private key either as ``rot_key`` or as ``keys`` (the key
    directory; ``rot-<rot_slot>.key.pem`` is loaded with ``passphrase``).
    ``modules`` are the import names of the bootloader stage; their sources
    are hashed into the payload, so changed bootloader code changes the
    bootloader's measurement.
    """
    if (rot_key is None) == (keys is None):
        raise KeyStoreError("give exactly one of rot_key or keys to sign the bootloader image")
    if rot_key is None:
        assert keys is not None
        rot_key = load_private_key(keys.rot_key(rot_slot), passphrase)
    payload = bootloader_manifest(
        version=version, module_sources={m: _module_source(m) for m in modules}
    )
    return sign_image(
        payload,
        version=version,
        security_counter=security_counter,
        hardware_id=hardware_id,
        signing_key=rot_key,
        key_format="full",
    )


def build_firmware_image(
    *,
    keys: KeySet,
    payload: bytes,
    version: str,
    security_counter: int,
    hardware_id: str = DEFAULT_HARDWARE_ID,
    algorithm: str = "ed25519",
    passphrase: bytes | None = None,
    build_time: int | None = None,
) -> bytes:
    """A slot image signed by the key directory's firmware-signing key, with its key manifest."""
    if algorithm == "ed25519":
        key_path = keys.firmware_signing_key
    elif algorithm == "ecdsa-p256":
        key_path = keys.firmware_signing_p256_key
    else:
        raise ImageFormatError(f"algorithm {algorithm!r} is not 'ed25519' or 'ecdsa-p256'")
    signing_key = load_private_key(key_path, passphrase)
    try:
        manifest = keys.key_manifest.read_bytes()
    except OSError as exc:
        raise KeyStoreError(
            f"cannot read key manifest {keys.key_manifest}: {exc.strerror}"
        ) from exc
    return sign_image(
        payload,
        version=version,
        security_counter=security_counter,
        hardware_id=hardware_id,
        signing_key=signing_key,
        key_manifest=manifest,
        build_time=build_time,
    )
