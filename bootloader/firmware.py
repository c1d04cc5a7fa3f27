"""The firmware payload: the ``device`` package and the ground package
``common`` packed as a zip, and the loader that runs it from verified memory.

A slot image's payload is a deterministic zip::

    manifest.json        version, hardware id, model, build time, support end,
                         trusted TUF root, vendor TLS root, SHA-256 of every file
    device/__init__.py   the firmware runtime, one entry per file
    device/...
    common/...           the ground package the runtime shares with the bootloader

:func:`build_payload` makes it from the packages on disk (same inputs, same
bytes). :meth:`FirmwarePayload.parse` checks it strictly (every file listed
with its hash, nothing outside ``device/`` and ``common/``, bounded sizes).
:func:`load_firmware` imports the runtime from the *verified in-memory bytes*
through a meta-path importer: the slot is never read again after the
bootloader verified it, so a byte changed in flash after verification cannot
reach the running code. Each load gets fresh module names
(``refcam_fw_<digest>_<n>`` for ``device``, the same with ``_common`` for
``common``); modules in ``device/`` import each other relatively, and an
absolute ``import common...`` in a payload module resolves to the payload's
own copy. A payload module that imports any other package of ours
(``bootloader``, ``refcam``, ...) fails to load, naming the module: the
firmware runs only what the boot chain verified. The bootloader and the
firmware each run their own copy of ``common`` (as a bootloader and an
application each link their own copy of a library); the boot services the
firmware is handed raise its own error classes (:class:`_BootABI`).

Example::

    payload = FirmwarePayload.parse(verified.payload)
    exit_code = start_firmware(payload, handoff, ["--port", "8443"])
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import itertools
import json
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from common import errors as boot_errors
from common.errors import FirmwarePayloadError
from common.handoff import ENTRY_MODULE, BootHandoff, FirmwareManifest

PAYLOAD_FORMAT = "refcam-firmware-payload/1"
MANIFEST_NAME = "manifest.json"
PACKAGE = "device"  # the firmware runtime; holds the entry module
GROUND = "common"  # the ground package, packed beside it
PAYLOAD_PACKAGES = (PACKAGE, GROUND)
# Packages of ours that exist outside the payload: a payload module importing one is refused.
_FOREIGN_PACKAGES = frozenset({"bootloader", "refcam", "update_server", "conformance"})
MAX_PAYLOAD_FILES = 2048
MAX_UNCOMPRESSED = 64 * 2**20  # bytes, all files together (zip-bomb bound)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: reproducible builds
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_load_counter = itertools.count(1)


def _default_source_dir(package: str = PACKAGE) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        raise FirmwarePayloadError(f"cannot find the '{package}' package to pack")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_files(source_dir: Path, package: str = PACKAGE) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for path in sorted(source_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if path.suffix in _EXCLUDED_SUFFIXES or path.name.startswith("."):
            continue
        rel = path.relative_to(source_dir).as_posix()
        files.append((f"{package}/{rel}", path.read_bytes()))
    return files


def _compression_for(data: bytes) -> int:
    """Deflate what deflate shrinks; store the rest (media, already-compressed blobs),
    so the device does not inflate incompressible bytes at every check."""
    sample = data[: 1 << 20]
    if sample and len(zlib.compress(sample, 1)) >= len(sample) * 0.95:
        return zipfile.ZIP_STORED
    return zipfile.ZIP_DEFLATED


def check_manifest_inputs(
    *, support_end: str, tuf_root: bytes | None, vendor_tls_root: bytes | None
) -> None:
    """Refuse what a device could not use before anything is signed: a support end that is
    not a calendar date, a TUF root that is not a JSON root metadata document, a vendor TLS
    root that is not PEM certificates. Raises :class:`FirmwarePayloadError`."""
    import datetime as dt

    from cryptography import x509

    try:
        if len(support_end) != 10:
            raise ValueError("expected YYYY-MM-DD")
        dt.date.fromisoformat(support_end)
    except ValueError as exc:
        raise FirmwarePayloadError(f"support end {support_end!r} is not a date YYYY-MM-DD: {exc}") from exc
    if tuf_root is not None:
        try:
            doc = json.loads(tuf_root)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FirmwarePayloadError(f"TUF root is not JSON: {exc}") from exc
        signed = doc.get("signed") if isinstance(doc, dict) else None
        if not isinstance(signed, dict) or signed.get("_type") != "root" or "signatures" not in doc:
            raise FirmwarePayloadError(
                'TUF root is JSON but not TUF root metadata ({"signed": {"_type": "root", ...}, "signatures": [...]})'
            )
    if vendor_tls_root is not None:
        try:
            x509.load_pem_x509_certificates(vendor_tls_root)
        except ValueError as exc:
            raise FirmwarePayloadError(f"vendor TLS root is not PEM certificates: {exc}") from exc


def build_payload(
    *,
    version: str,
    hardware_id: str,
    model: str,
    build_time: int,
    support_end: str,
    tuf_root: bytes | None = None,
    vendor_tls_root: bytes | None = None,
    source_dir: Path | None = None,
    ground_dir: Path | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> bytes:
    """Pack the ``device`` package (from ``source_dir`` if given), the ground
    package ``common`` (from ``ground_dir`` if given) and the manifest into a
    reproducible zip.

    ``extra_files`` adds build products inside the package (such as
    ``device/sbom.cdx.json``); they are listed and hashed like every other file.
    """
    files = _package_files(source_dir or _default_source_dir())
    files += _package_files(ground_dir or _default_source_dir(GROUND), GROUND)
    for name, data in sorted((extra_files or {}).items()):
        parts = name.split("/")
        if parts[0] != PACKAGE or len(parts) < 2 or ".." in parts or any(n == name for n, _ in files):
            raise FirmwarePayloadError(f"extra payload file {name!r} must be a new file under '{PACKAGE}/'")
        files.append((name, data))
    if not any(name == f"{PACKAGE}/{ENTRY_MODULE}.py" for name, _ in files):
        raise FirmwarePayloadError(f"the '{PACKAGE}' package has no {ENTRY_MODULE}.py entry point")
    manifest = {
        "format": PAYLOAD_FORMAT,
        "version": version,
        "hardware_id": hardware_id,
        "model": model,
        "build_time": int(build_time),
        "support_end": support_end,
        "tuf_root": base64.b64encode(tuf_root).decode() if tuf_root is not None else None,
        "vendor_tls_root": vendor_tls_root.decode("ascii") if vendor_tls_root is not None else None,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = [(MANIFEST_NAME, json.dumps(manifest, sort_keys=True, indent=1).encode()), *files]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = _compression_for(data)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return out.getvalue()


def _manifest_from_json(doc: Any) -> tuple[FirmwareManifest, dict[str, str]]:
    if not isinstance(doc, dict) or doc.get("format") != PAYLOAD_FORMAT:
        raise FirmwarePayloadError(f"payload manifest format is not {PAYLOAD_FORMAT!r}")
    try:
        tuf_root = doc["tuf_root"]
        tls_root = doc["vendor_tls_root"]
        manifest = FirmwareManifest(
            version=_str(doc["version"], "version"),
            hardware_id=_str(doc["hardware_id"], "hardware_id"),
            model=_str(doc["model"], "model"),
            build_time=_int(doc["build_time"], "build_time"),
            support_end=_str(doc["support_end"], "support_end"),
            tuf_root=base64.b64decode(_str(tuf_root, "tuf_root"), validate=True)
            if tuf_root is not None
            else None,
            vendor_tls_root=_str(tls_root, "vendor_tls_root").encode("ascii")
            if tls_root is not None
            else None,
        )
        listed = doc["files"]
    except KeyError as exc:
        raise FirmwarePayloadError(f"payload manifest lacks the field {exc.args[0]!r}") from exc
    except (ValueError, UnicodeEncodeError) as exc:
        raise FirmwarePayloadError(f"payload manifest has a malformed field: {exc}") from exc
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        raise FirmwarePayloadError("payload manifest 'files' must map names to SHA-256 hex digests")
    return manifest, listed


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FirmwarePayloadError(f"payload manifest field {field!r} must be a string")
    return value


def _int(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FirmwarePayloadError(f"payload manifest field {field!r} must be a non-negative integer")
    return value


class _ArchiveReader(io.BufferedIOBase):
    """A read-only, seekable file over immutable bytes, without copying them (for zipfile)."""

    def __init__(self, data: memoryview) -> None:
        super().__init__()
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")  # as a file does (EINVAL)
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else min(self._pos + size, len(self._data))
        chunk = bytes(self._data[self._pos : end]) if end > self._pos else b""
        self._pos = max(self._pos, end)
        return chunk

    read1 = read


def _immutable_view(data: bytes | memoryview) -> memoryview:
    """A byte view that nobody can change after it is verified (copies only if needed)."""
    if isinstance(data, memoryview):
        if isinstance(data.obj, bytes) and data.c_contiguous and data.format == "B":
            return data.toreadonly()
        return memoryview(data.tobytes())
    return memoryview(bytes(data))


_HASH_CHUNK = 1 << 20  # bytes: entries are hashed in pieces, never held twice
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip local file header (APPNOTE 4.3.7), 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"


def _stored_entry(raw: memoryview, info: zipfile.ZipInfo) -> memoryview | None:
    """The bytes of a stored (uncompressed, unencrypted) entry, in place; None for others.

    Hashed where they lie, they cost no copy and no CRC-32 pass (the SHA-256
    checked against the manifest is the stronger check). The local header is
    checked as ``zipfile`` checks it: its magic and the entry's name.
    """
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    at = info.header_offset
    if not 0 <= at <= len(raw) - _LOCAL_HEADER.size:
        raise FirmwarePayloadError(f"payload entry {info.filename!r} starts outside the archive")
    fields = _LOCAL_HEADER.unpack_from(raw, at)
    name_len, extra_len = fields[-2], fields[-1]
    start = at + _LOCAL_HEADER.size + name_len + extra_len
    end = start + info.compress_size
    if fields[0] != _LOCAL_MAGIC or info.compress_size != info.file_size or end > len(raw):
        raise FirmwarePayloadError(f"payload entry {info.filename!r} has a bad local header")
    name = bytes(raw[at + _LOCAL_HEADER.size : at + _LOCAL_HEADER.size + name_len])
    if name.decode("utf-8" if info.flag_bits & 0x800 else "cp437") != info.orig_filename:
        raise FirmwarePayloadError(f"payload entry {info.filename!r} has another name in its local header")
    return raw[start:end]


class _PayloadFiles(Mapping[str, bytes]):
    """The payload's files, read from the verified archive when asked.

    Every entry was hash-checked against the manifest by ``parse``; each read
    checks it again (the archive is immutable, so this is belt and braces).
    """

    def __init__(self, archive: memoryview, listed: Mapping[str, str]) -> None:
        self._zip = zipfile.ZipFile(_ArchiveReader(archive))
        self._listed = dict(listed)

    def __getitem__(self, name: str) -> bytes:
        if name not in self._listed:
            raise KeyError(name)
        data = self._zip.read(name)
        if hashlib.sha256(data).hexdigest() != self._listed[name]:
            raise FirmwarePayloadError(f"payload entry {name!r} does not match its manifest hash")
        return data

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed)

    def __len__(self) -> int:
        return len(self._listed)

    def __contains__(self, name: object) -> bool:
        return name in self._listed


@dataclass(frozen=True)
class FirmwarePayload:
    """A parsed, hash-checked payload; ``files`` maps ``device/...`` names to bytes."""

    manifest: FirmwareManifest
    files: Mapping[str, bytes]
    archive: memoryview = field(repr=False)  # the verified zip (immutable bytes underneath)

    @functools.cached_property
    def digest(self) -> str:
        """Hex SHA-256 of the payload zip (computed when first asked: an update's
        install-time check has no use for it)."""
        return hashlib.sha256(self.archive).hexdigest()

    def open_archive(self) -> zipfile.ZipFile:
        """The verified zip, read in place."""
        return zipfile.ZipFile(_ArchiveReader(self.archive))

    @classmethod
    def parse(cls, data: bytes | memoryview, *, hash_entries: bool = True) -> FirmwarePayload:
        """Check the zip and hash every entry against the manifest (streamed, in pieces).

        ``hash_entries=False`` (an update's install-time check, whose image hash was
        computed as the slot was written and whose signature was just verified over
        it: these very bytes are the vendor's) checks the archive, the manifest, the
        names and that the entries are exactly the listed files, but not each entry's
        content hash: the bootloader checks those over the slot at every boot, and
        every read of :attr:`files` checks its entry again.
        """
        # Without the entry hashes (the install-time check of a slot just written and
        # counted unchanged since) the archive is read in place; verified bytes are copied.
        raw = _immutable_view(data) if hash_entries else memoryview(data).toreadonly()
        try:
            zf = zipfile.ZipFile(_ArchiveReader(raw))
            infos = zf.infolist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise FirmwarePayloadError(f"payload is not a valid zip archive: {exc}") from exc
        if len(infos) > MAX_PAYLOAD_FILES:
            raise FirmwarePayloadError(f"payload has {len(infos)} entries, at most {MAX_PAYLOAD_FILES} allowed")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise FirmwarePayloadError("payload has duplicate zip entries")
        if sum(info.file_size for info in infos) > MAX_UNCOMPRESSED:
            raise FirmwarePayloadError(f"payload expands beyond {MAX_UNCOMPRESSED} bytes")
        if MANIFEST_NAME not in names:
            raise FirmwarePayloadError(f"payload has no {MANIFEST_NAME}")
        digests: dict[str, str] = {}
        manifest_bytes = b""
        try:
            for info in infos:
                is_manifest = info.filename == MANIFEST_NAME
                if not (hash_entries or is_manifest):
                    digests[info.filename] = ""  # listed, not hashed (see above)
                    continue
                stored = None if is_manifest else _stored_entry(raw, info)
                if stored is not None:
                    digests[info.filename] = hashlib.sha256(stored).hexdigest()
                    continue
                digest = hashlib.sha256()
                with zf.open(info) as entry:  # zipfile checks each entry's CRC-32 at its end
                    while chunk := entry.read(_HASH_CHUNK):
                        digest.update(chunk)
                        if is_manifest:
                            manifest_bytes += chunk
                digests[info.filename] = digest.hexdigest()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
            raise FirmwarePayloadError(f"payload entry cannot be read: {exc}") from exc
        try:
            doc = json.loads(manifest_bytes)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FirmwarePayloadError(f"payload {MANIFEST_NAME} is not JSON: {exc}") from exc
        del digests[MANIFEST_NAME]
        manifest, listed = _manifest_from_json(doc)
        if set(listed) != set(digests):
            extra = sorted(set(digests) - set(listed))[:3]
            missing = sorted(set(listed) - set(digests))[:3]
            raise FirmwarePayloadError(
                f"payload files do not match the manifest (unlisted: {extra}, missing: {missing})"
            )
        for name, found in digests.items():
            parts = name.split("/")
            if parts[0] not in PAYLOAD_PACKAGES or ".." in parts or name.startswith("/") or "" in parts[1:]:
                raise FirmwarePayloadError(
                    f"payload entry {name!r} is outside '{PACKAGE}/' and '{GROUND}/'"
                )
            if hash_entries and found != listed[name]:
                raise FirmwarePayloadError(f"payload entry {name!r} does not match its manifest hash")
        if f"{PACKAGE}/{ENTRY_MODULE}.py" not in digests:
            raise FirmwarePayloadError(f"payload has no {PACKAGE}/{ENTRY_MODULE}.py entry point")
        return cls(manifest=manifest, files=_PayloadFiles(raw, listed), archive=raw)


class _PayloadResources(importlib.abc.TraversableResources):
    """importlib.resources support: ``files(__package__)`` walks the verified zip."""

    def __init__(self, zip_file: zipfile.ZipFile, directory: str) -> None:
        self._zip = zip_file
        self._directory = directory

    def files(self) -> Any:
        return zipfile.Path(self._zip, at=self._directory)


class PayloadImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``<alias>`` (``device/``) and ``<alias>_common`` (``common/``) and their
    submodules from a verified payload held in memory."""

    def __init__(self, payload: FirmwarePayload, alias: str) -> None:
        self.payload = payload
        self.alias = alias
        self.roots = {PACKAGE: alias, GROUND: f"{alias}_{GROUND}"}  # payload package -> module name
        self._origin = f"<firmware {payload.manifest.version}>"
        # importlib.resources reads the same verified archive (every entry was hash-checked)
        self._zip = payload.open_archive()
        self._builtins = dict(vars(builtins))
        self._builtins["__import__"] = self._import

    def _import(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> ModuleType:
        """``__import__`` as payload modules see it: ``device``/``common`` are the payload's,
        and no other package of ours exists."""
        if level == 0:
            top, dot, rest = name.partition(".")
            if top in self.roots:
                name = self.roots[top] + dot + rest
            elif top in _FOREIGN_PACKAGES:
                importer = (globals or {}).get("__name__", "?")
                raise ImportError(
                    f"firmware module {importer} imports {name!r}, which is not in the signed "
                    f"payload (only '{PACKAGE}', '{GROUND}', the standard library and "
                    "third-party distributions are)",
                    name=name,
                )
        return _real_import(name, globals, locals, fromlist, level)

    def _locate(self, fullname: str) -> tuple[str, bool] | None:
        for package, root in self.roots.items():
            if fullname == root or fullname.startswith(root + "."):
                rel = fullname[len(root) :].lstrip(".").replace(".", "/")
                base = f"{package}/{rel}" if rel else package
                if f"{base}/__init__.py" in self.payload.files:
                    return f"{base}/__init__.py", True
                if f"{base}.py" in self.payload.files:
                    return f"{base}.py", False
                return None
        return None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        found = self._locate(fullname)
        if found is None:
            return None
        name, is_package = found
        spec = importlib.machinery.ModuleSpec(
            fullname, self, origin=f"{self._origin}/{name}", is_package=is_package
        )
        if is_package:
            spec.submodule_search_locations = [f"{self._origin}/{name.rsplit('/', 1)[0]}"]
        spec.has_location = False
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # default module creation

    def exec_module(self, module: ModuleType) -> None:
        found = self._locate(module.__name__)
        if found is None:
            raise ImportError(f"{module.__name__} is not in the firmware payload")
        name, _ = found
        code = compile(self.payload.files[name], f"{self._origin}/{name}", "exec")
        module.__dict__["__builtins__"] = self._builtins  # imports resolve inside the payload
        exec(code, module.__dict__)  # noqa: S102 - the bytes were verified by the boot chain

    def get_source(self, fullname: str) -> str | None:
        found = self._locate(fullname)
        return None if found is None else self.payload.files[found[0]].decode("utf-8")

    def get_resource_reader(self, fullname: str) -> _PayloadResources | None:
        found = self._locate(fullname)
        if found is None or not found[1]:
            return None
        return _PayloadResources(self._zip, found[0].rsplit("/", 1)[0] + "/")

    def modules(self) -> Iterator[str]:
        roots = tuple(self.roots.values())
        return (
            m for m in list(sys.modules) if m in roots or m.startswith(tuple(r + "." for r in roots))
        )


_real_import = builtins.__import__
_active: list[PayloadImporter] = []


def _same_error_as(cls: type[BaseException], exc: BaseException) -> BaseException:
    """``exc`` as an instance of ``cls`` (its twin from the other copy of ``common``): the
    same args and attributes, without re-running an ``__init__`` whose parameters differ
    from ``args`` (``PowerCut(operation, detail)`` keeps its ``operation``)."""
    twin = cls.__new__(cls)
    twin.args = exc.args
    twin.__dict__.update(vars(exc))
    return twin


class _BootABI:
    """A boot-side object (the services, the attester, a slot writer) as the firmware sees it.

    The bootloader and the firmware each run their own copy of ``common``, so a
    refusal the boot side raises (``common.errors.FlashError``) is not an
    instance of the firmware's class of the same name. Errors cross this line
    by name, as error codes cross a real bootloader's ABI: each is re-raised as
    the firmware's own class (the original chained), and objects handed back
    (a slot writer) are wrapped the same way. Plain values pass unchanged.
    """

    def __init__(self, target: object, errors_module: ModuleType) -> None:
        self._target = target
        self._errors = errors_module

    def _translate(self, exc: BaseException) -> BaseException:
        ours = getattr(self._errors, type(exc).__name__, None)
        if type(exc).__module__ != boot_errors.__name__ or not isinstance(ours, type):
            return exc
        return _same_error_as(ours, exc)

    def _wrap(self, value: object) -> object:
        if callable(getattr(value, "write", None)) and callable(getattr(value, "finish", None)):
            return _BootABI(value, self._errors)  # a SlotImageWriter
        return value

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except Exception as exc:
                translated = self._translate(exc)
                if translated is exc:
                    raise
                raise translated from exc
            return self._wrap(result)

        return call


def _bridged(handoff: BootHandoff, importer: PayloadImporter) -> BootHandoff:
    """``handoff`` with its services and attester speaking the loaded firmware's errors."""
    if not dataclasses.is_dataclass(handoff):  # a bare test entry point given no handoff
        return handoff
    fw_errors = importlib.import_module(f"{importer.roots[GROUND]}.errors")
    return dataclasses.replace(
        handoff,
        services=_BootABI(handoff.services, fw_errors),
        attester=_BootABI(handoff.attester, fw_errors),
    )


def unload_firmware() -> None:
    """Forget every loaded firmware (a reboot): drop its modules and its importer."""
    while _active:
        importer = _active.pop()
        for name in list(importer.modules()):
            del sys.modules[name]
        if importer in sys.meta_path:
            sys.meta_path.remove(importer)


def load_firmware(payload: FirmwarePayload) -> ModuleType:
    """Import the payload's entry module from memory; returns ``<alias>.main``."""
    unload_firmware()
    alias = f"refcam_fw_{payload.digest[:12]}_{next(_load_counter)}"
    importer = PayloadImporter(payload, alias)
    sys.meta_path.insert(0, importer)
    _active.append(importer)
    try:
        return importlib.import_module(f"{alias}.{ENTRY_MODULE}")
    except Exception as exc:
        unload_firmware()
        text = str(exc)
        for package, root in sorted(importer.roots.items(), key=lambda kv: -len(kv[1])):
            text = text.replace(root, package)  # name modules as the payload lists them
        raise FirmwarePayloadError(
            f"firmware {payload.manifest.version} failed to load: {type(exc).__name__}: {text}"
        ) from exc


def start_firmware(payload: FirmwarePayload, handoff: BootHandoff, argv: Sequence[str]) -> int:
    """Hand control to the firmware: ``run(handoff, argv)`` from the verified payload."""
    entry = load_firmware(payload)
    run = getattr(entry, "run", None)
    if not callable(run):
        raise FirmwarePayloadError(f"firmware {ENTRY_MODULE}.py defines no run(handoff, argv)")
    importer = _active[-1]
    try:
        result = run(_bridged(handoff, importer), list(argv))
    except Exception as exc:  # the firmware's own class of a boot error: back to the boot side's
        fw_errors = sys.modules.get(f"{importer.roots[GROUND]}.errors")
        if fw_errors is None or type(exc).__module__ != fw_errors.__name__:
            raise
        ours = getattr(boot_errors, type(exc).__name__, None)
        if not isinstance(ours, type):
            raise
        raise _same_error_as(ours, exc) from exc
    if not isinstance(result, int):
        raise FirmwarePayloadError(f"firmware run() returned {type(result).__name__}, expected int")
    return result


# Fleet mode (``refcam fleet run``): many units in one process, each booted through its
# own chain. Units whose verified payloads are byte-identical share one loaded copy of
# the runtime (code is immutable; every unit's state lives in its own app), so a worker
# holds one copy of the firmware per distinct release, not one per unit.
_shared: dict[str, PayloadImporter] = {}


def load_shared_firmware(payload: FirmwarePayload) -> ModuleType:
    """The entry module for ``payload``, loaded once per payload digest and kept loaded
    beside other releases (unlike :func:`load_firmware`, which unloads the previous one)."""
    importer = _shared.get(payload.digest)
    if importer is None:
        alias = f"refcam_fw_{payload.digest[:12]}_{next(_load_counter)}"
        importer = PayloadImporter(payload, alias)
        sys.meta_path.insert(0, importer)
        try:
            importlib.import_module(f"{alias}.{ENTRY_MODULE}")
        except Exception as exc:
            for name in list(importer.modules()):
                del sys.modules[name]
            sys.meta_path.remove(importer)
            raise FirmwarePayloadError(
                f"firmware {payload.manifest.version} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        _shared[payload.digest] = importer
    return sys.modules[f"{importer.alias}.{ENTRY_MODULE}"]


def shared_firmware_module(payload: FirmwarePayload, name: str) -> ModuleType:
    """Another module (``device.<name>``) of a payload loaded by :func:`load_shared_firmware`."""
    load_shared_firmware(payload)
    return importlib.import_module(f"{_shared[payload.digest].alias}.{name}")


def bridged_handoff(payload: FirmwarePayload, handoff: BootHandoff) -> BootHandoff:
    """``handoff`` as the shared firmware of ``payload`` must see it (its own error classes)."""
    load_shared_firmware(payload)
    return _bridged(handoff, _shared[payload.digest])
