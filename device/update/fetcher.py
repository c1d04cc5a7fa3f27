"""The update client's network I/O: a python-tuf ``FetcherInterface`` over ``http.client``.

python-tuf decides *what* to download and verifies it; this module decides
*how*: TLS with the vendor root as the only trust anchor and the host name
checked (``common.tls.client_context``), connect and read timeouts, a hard
size limit on every response, and resumable target downloads.

* Metadata (``download_bytes``) is read into memory, bounded by the length
  python-tuf allows for that role (endless-data attack: TUF 5.4.1 and
  :class:`DownloadLengthMismatchError`).
* Targets (``download_file``) go to a partial file in ``partial_dir``
  named after the URL (hash-prefixed under consistent snapshots, so one URL
  is one content). A cut transfer is resumed with ``Range: bytes=N-``; a
  server that ignores the range restarts the file. The partial file is
  removed once python-tuf has checked length and hashes, or when they do
  not match (never resumed from bad bytes).
* ``download_into`` is the same resumable transfer into any sink; the device
  streams firmware straight into its inactive slot with it
  (``device.update.client``), as MCUboot cameras do.

Plain ``http://`` is refused unless ``allow_plain_http`` is set (only the
``refcam tuf-client`` conformance command does).

Example::

    fetcher = HTTPSFetcher(ssl_context=tls.client_context(vendor_root),
                           partial_dir=data_dir / "update" / "partial")
    updater = build_updater(..., fetcher=fetcher)
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlsplit

from tuf.api import exceptions
from tuf.ngclient import FetcherInterface  # type: ignore[attr-defined]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


class Sink(Protocol):
    """Where a target download goes: a partial file, or the device's inactive slot."""

    def write(self, data: bytes | memoryview, /) -> object:
        """Take ``data`` (copied if kept: a view is valid only during the call)."""
        ...

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class FetcherConfig:
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds without a byte
    max_transfer_seconds: float = 3600.0  # whole-response deadline (slow retrieval)
    chunk_size: int = 256 * 1024  # bytes per read
    max_download: int = 256 * 2**20  # bytes; hard cap on any response
    user_agent: str = "refcam-update/1"


class HTTPSFetcher(FetcherInterface):
    """TLS-only (by default) fetcher with size limits and resumable target downloads."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None,
        partial_dir: Path | None = None,
        config: FetcherConfig | None = None,
        allow_plain_http: bool = False,
        progress: Progress | None = None,
        unsafe_no_tls_validation: bool = False,
    ) -> None:
        if unsafe_no_tls_validation:
            # Flaw profile update-client-no-tls-validation: any certificate, any host.
            ssl_context = ssl.create_default_context()
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        elif ssl_context is not None and (
            ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname
        ):
            raise ValueError("the update fetcher needs a context that verifies chain and host name")
        self._ssl_context = ssl_context
        self._partial_dir = partial_dir
        self.config = config or FetcherConfig()
        self._allow_plain_http = allow_plain_http
        self.progress = progress
        self.bytes_received = 0  # every body byte received, for measurement
        self.requests = 0
        self.connections = 0  # TCP (+ TLS) connections opened
        # One idle keep-alive connection per origin (a TUF refresh asks one origin for five
        # documents, then the target): (connection, when it went idle). Only a response read
        # to its end leaves its connection here; one idle longer than KEEP_IDLE is dropped.
        self._idle: dict[tuple[str, str, int | None], tuple[http.client.HTTPConnection, float]] = {}

    # ------------------------------------------------------------------ HTTP

    def _connect(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise exceptions.DownloadError(f"URL {url!r} has no host")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if parts.scheme == "https":
            if self._ssl_context is None:
                raise exceptions.DownloadError("no TLS context configured for https URLs")
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname,
                parts.port or 443,
                timeout=self.config.connect_timeout,
                context=self._ssl_context,
            )
        elif parts.scheme == "http" and self._allow_plain_http:
            conn = http.client.HTTPConnection(
                parts.hostname, parts.port or 80, timeout=self.config.connect_timeout
            )
        else:
            raise exceptions.DownloadError(
                f"refusing {parts.scheme!r} URL {url}: updates are fetched over https only"
            )
        return conn, path

    KEEP_IDLE = 10.0  # seconds an idle connection is kept for the next request

    @staticmethod
    def _origin(url: str) -> tuple[str, str, int | None]:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port

    def _release(self, url: str, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        """Keep ``conn`` for the next request to the same origin if its response was read to
        the end and the server keeps it open; otherwise close it."""
        read_to_end = response.isclosed() or response.length == 0
        if read_to_end and not response.will_close and conn.sock is not None:
            response.close()  # the body's reader, not the socket: the connection is free again
            old = self._idle.pop(self._origin(url), None)
            if old is not None:
                old[0].close()
            self._idle[self._origin(url)] = (conn, time.monotonic())
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle keep-alive connections."""
        for conn, _since in self._idle.values():
            conn.close()
        self._idle.clear()

    def _reuse(self, url: str, headers: dict[str, str]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse] | None:
        """The request on the origin's idle connection, or None when there is none or the
        server had closed it (a GET is safely sent again on a new connection)."""
        idle = self._idle.pop(self._origin(url), None)
        if idle is None:
            return None
        conn, since = idle
        if time.monotonic() - since > self.KEEP_IDLE:
            conn.close()
            return None
        _conn, path = self._connect(url)  # the same checks on the URL as a new connection
        try:
            conn.request("GET", path, headers={"User-Agent": self.config.user_agent, **headers})
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()  # closed by the server meanwhile: not an error of this request
            return None
        self.requests += 1
        return conn, response

    def _request(
        self, url: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        reused = self._reuse(url, headers)
        if reused is not None:
            return reused
        conn, path = self._connect(url)
        try:
            self.connections += 1
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.config.read_timeout)
            conn.request("GET", path, headers={"User-Agent": self.config.user_agent, **headers})
            response = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise exceptions.DownloadError(
                f"TLS certificate of {urlsplit(url).hostname} not trusted: {exc.verify_message}"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise exceptions.DownloadError(f"cannot fetch {url}: {exc}") from exc
        self.requests += 1
        return conn, response

    def _chunks(
        self, response: http.client.HTTPResponse, url: str, limit: int
    ) -> Iterator[bytes]:
        deadline = time.monotonic() + self.config.max_transfer_seconds
        received = 0
        while True:
            try:
                chunk = response.read1(self.config.chunk_size)
            except (OSError, http.client.HTTPException) as exc:
                raise exceptions.DownloadError(f"transfer of {url} failed: {exc}") from exc
            if not chunk:
                missing = response.length  # http.client: bytes still due by Content-Length
                if missing:
                    raise exceptions.DownloadError(
                        f"{url}: connection closed with {missing} announced bytes missing"
                    )
                return
            received += len(chunk)
            self.bytes_received += len(chunk)
            if received > limit:
                raise exceptions.DownloadLengthMismatchError(
                    f"{url}: received more than the allowed {limit} bytes"
                )
            if time.monotonic() > deadline:
                raise exceptions.SlowRetrievalError(
                    f"{url}: transfer exceeded {self.config.max_transfer_seconds} s"
                )
            yield chunk

    @staticmethod
    def _check_status(response: http.client.HTTPResponse, url: str, ok: tuple[int, ...]) -> None:
        if response.status not in ok:
            raise exceptions.DownloadHTTPError(
                f"{url}: HTTP {response.status} {response.reason}", response.status
            )

    def _check_declared_length(self, response: http.client.HTTPResponse, url: str, limit: int) -> None:
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise exceptions.DownloadLengthMismatchError(
                f"{url}: server announces {declared} bytes, at most {limit} allowed"
            )

    # ------------------------------------------------------------------ FetcherInterface

    def _fetch(self, url: str) -> Iterator[bytes]:
        conn, response = self._request(url, {})
        try:
            self._check_status(response, url, (200,))
        except exceptions.DownloadHTTPError:
            conn.close()
            raise
        return self._closing(conn, self._chunks(response, url, self.config.max_download))

    @staticmethod
    def _closing(conn: http.client.HTTPConnection, chunks: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            conn.close()

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """Metadata: into memory, never more than ``max_length`` bytes."""
        limit = min(max_length, self.config.max_download)
        conn, response = self._request(url, {})
        if response.status != 200:
            # A short error answer (the 404 for the next root version that ends every TUF
            # root update) is read to its end: its connection serves the next request.
            try:
                drained = self._drain_small(response, url)
            except BaseException:
                conn.close()
                raise
            if drained:
                self._release(url, conn, response)
            else:
                conn.close()
            self._check_status(response, url, (200,))
        try:
            self._check_declared_length(response, url, limit)
            body = b"".join(self._chunks(response, url, limit))
        except BaseException:
            conn.close()
            raise
        self._release(url, conn, response)
        return body

    ERROR_BODY_KEPT = 4096  # bytes: an error answer up to this long is read to keep its connection

    def _drain_small(self, response: http.client.HTTPResponse, url: str) -> bool:
        """Read an error answer's body to its end if it announces at most ERROR_BODY_KEPT
        bytes; True when it was (its connection may then be kept)."""
        declared = response.getheader("Content-Length")
        if declared is None or not declared.isdigit() or int(declared) > self.ERROR_BODY_KEPT:
            return False
        for _ in self._chunks(response, url, self.ERROR_BODY_KEPT):
            pass
        return True

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        """Targets: resumable into a partial file; removed after python-tuf's checks."""
        if self._partial_dir is None:
            with super().download_file(url, max_length) as handle:
                yield handle
            return
        self._partial_dir.mkdir(parents=True, exist_ok=True)
        partial = self._partial_dir / (hashlib.sha256(url.encode()).hexdigest() + ".part")
        offset = partial.stat().st_size if partial.exists() else 0

        @contextmanager
        def into_partial(start: int) -> Iterator[IO[bytes]]:
            with partial.open("ab" if start else "wb") as out:
                yield out

        try:
            self.download_into(url, max_length, offset=offset, open_sink=into_partial)
        except exceptions.DownloadLengthMismatchError:
            partial.unlink(missing_ok=True)  # more than the signed length: never resume it
            raise
        try:
            with partial.open("rb") as handle:
                yield handle
        finally:
            # Verified (and copied by the Updater) or rejected: either way never resume it.
            partial.unlink(missing_ok=True)

    def download_into(
        self,
        url: str,
        max_length: int,
        *,
        offset: int,
        open_sink: Callable[[int], AbstractContextManager[Sink]],
    ) -> None:
        """A resumable target download into ``open_sink(start)``.

        ``offset`` bytes are already held (a cut transfer): ask for the rest with
        ``Range: bytes=offset-``. ``start`` is ``offset`` when the server honours
        the range and 0 when the sink must start over (a server that ignores
        ranges, or a partial longer than the file). At most ``max_length`` bytes
        in all; the caller verifies length and hashes afterwards (python-tuf's
        ``TargetFile.verify_length_and_hashes``).
        """
        limit = min(max_length, self.config.max_download)
        if offset > limit:
            offset = 0
        if offset == limit:
            return  # complete already; verified next
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        conn, response = self._request(url, headers)
        try:
            if offset and response.status == 206:
                match = _CONTENT_RANGE.match(response.getheader("Content-Range") or "")
                if match is None or int(match.group(1)) != offset:
                    raise exceptions.DownloadError(
                        f"{url}: server answered range {response.getheader('Content-Range')!r}, "
                        f"asked for bytes={offset}-"
                    )
                log.info("resuming %s at byte %d", url, offset)
            else:
                if offset and response.status == 416:
                    conn.close()  # what we hold is longer than the file: start over
                    self.download_into(url, max_length, offset=0, open_sink=open_sink)
                    return
                self._check_status(response, url, (200,))
                offset = 0
            self._check_declared_length(response, url, limit - offset)
            with open_sink(offset) as sink:
                self._copy(conn, response, url, sink, offset, limit)
        except BaseException:
            conn.close()
            raise
        self._release(url, conn, response)

    def _copy(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        url: str,
        out: Sink,
        offset: int,
        limit: int,
    ) -> None:
        """Copy the body into ``out`` through one reused buffer.

        ``readinto`` fills the buffer in one call (the TLS records of a chunk
        are read in C, not one Python iteration per 16 KiB record: a sixteenth
        of the sink calls, flash programs and hash updates), and ``out`` is
        handed a view of it: a sink copies what it keeps (flash programming, a
        file write) and never holds the view past ``write``. (Writing in a
        helper thread beside the next read was measured slower on two cores:
        the TLS server, the reads and the hashing then compete for them.)

        The limits of :meth:`_chunks` hold: never more than one byte read past
        ``limit - offset`` (each read asks for at most that), and a body cut
        short of its length is an error. A read that fills the buffer may take
        many TLS records, so the whole-transfer deadline (slow retrieval) is
        kept by a watchdog that shuts the socket down when it passes.
        """
        allowed = limit - offset
        received = 0
        overdue = threading.Event()
        sock = conn.sock

        def cut() -> None:  # the deadline passed with the transfer still running
            overdue.set()
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the blocked read returns

        watchdog = threading.Timer(self.config.max_transfer_seconds, cut)
        watchdog.daemon = True
        watchdog.start()
        buffer = bytearray(self.config.chunk_size)
        try:
            with memoryview(buffer) as whole:
                while True:
                    want = min(len(whole), allowed - received + 1)  # one byte past: detects "more"
                    try:
                        with whole[:want] as into:
                            n = response.readinto(into)
                    except (OSError, http.client.HTTPException) as exc:
                        if overdue.is_set():
                            raise self._overdue(url) from exc
                        raise exceptions.DownloadError(f"transfer of {url} failed: {exc}") from exc
                    if overdue.is_set():
                        raise self._overdue(url)
                    if not n:
                        missing = response.length  # http.client: bytes still due by Content-Length
                        if missing:
                            raise exceptions.DownloadError(
                                f"{url}: connection closed with {missing} announced bytes missing"
                            )
                        return
                    received += n
                    self.bytes_received += n
                    if received > allowed:
                        raise exceptions.DownloadLengthMismatchError(
                            f"{url}: received more than the allowed {allowed} bytes"
                        )
                    with whole[:n] as chunk:
                        out.write(chunk)
                    if self.progress is not None:
                        self.progress(offset + received, limit)
        finally:
            watchdog.cancel()

    def _overdue(self, url: str) -> exceptions.SlowRetrievalError:
        return exceptions.SlowRetrievalError(
            f"{url}: transfer exceeded {self.config.max_transfer_seconds} s"
        )
