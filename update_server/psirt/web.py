"""aiohttp routes for vulnerability disclosure: intake, PSIRT API, security.txt, CSAF.

Three route adders, usable on any ``web.Application`` (the vendor update
server, or this module's standalone app):

* :func:`add_disclosure_routes` -- ``/.well-known/security.txt`` (RFC 9116,
  Expires renewed on every request) and ``/security/policy`` (the disclosure
  policy, timelines taken from the SLA policy data). Public.
* :func:`add_psirt_routes` -- ``POST /api/v1/reports`` (anonymous, rate
  limited per source, size limited, every field validated) returning a
  tracking id and a reporter token; the reporter reads status and exchanges
  messages with ``Authorization: Bearer <reporter_token>``. PSIRT-side routes
  under ``/api/v1/psirt/`` (list, show, messages to the reporter, workflow
  ``actions``, SLA figures) and the HTML views under ``/psirt/`` need the
  operator token from configuration.
* :func:`add_csaf_routes` -- ``/.well-known/csaf/provider-metadata.json`` and
  the TLP:WHITE directory (``index.txt``, ``changes.csv``, advisories).

:func:`disclosure_extension` bundles all three for
``update_server.server.create_app(config, extensions=[...])``.

Domain errors map to JSON ``{"error": ...}`` with 400/401/404/409/413/429;
never a 500 for bad input.

Example::

    extension = disclosure_extension(store=PSIRTStore.open(db), policy=load_policy(),
                                     clock=lambda: datetime.now(UTC), psirt_token=token,
                                     base_url="https://vendor.example")
    app = update_server.server.create_app(config, extensions=[extension])
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from common.securitytxt import security_txt_for
from update_server import csaf
from update_server.openapi import add_openapi_route
from update_server.openpgp import OpenPGPSigner

from .errors import (
    PSIRTError,
    PSIRTInputError,
    PSIRTStoreError,
    ReporterAuthError,
)
from .model import (
    IntakeLimits,
    Report,
    add_message,
    apply_action,
    check_report_id,
    parse_message,
    parse_submission,
    report_to_json,
)
from .policy import REPORT_FORM_PATH, SLAPolicy, disclosure_policy_html, disclosure_policy_text
from .sla import evaluate
from .store import PSIRTStore

if TYPE_CHECKING:  # python-gnupg is loaded only by a server that signs
    from update_server.openpgp import OpenPGPSigner

_log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



@dataclass(frozen=True)
class WebLimits:
    """Bounds of the public intake endpoint."""

    max_body: int = 2 * 2**20  # bytes of one request body (4 attachments of 256 KiB in base64)
    reports_per_window: int = 5  # new reports per source address ...
    messages_per_window: int = 30  # ... and reporter messages per source ...
    window: timedelta = timedelta(hours=1)  # ... in this sliding window
    max_tracked_sources: int = 10_000  # memory bound of the limiter


class _TooLarge(Exception):
    pass


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` per source, with an injected ``now``."""

    def __init__(self, limit: int, window: timedelta, max_sources: int) -> None:
        self._limit, self._window, self._max_sources = limit, window, max_sources
        self._events: OrderedDict[str, deque[datetime]] = OrderedDict()

    def hit(self, source: str, now: datetime) -> None:
        """Count one event; raise _RateLimited if the source is over its limit."""
        events = self._events.pop(source, deque())
        while events and events[0] <= now - self._window:
            events.popleft()
        self._events[source] = events  # most recently used last
        while len(self._events) > self._max_sources:
            self._events.popitem(last=False)
        if len(events) >= self._limit:
            wait = events[0] + self._window - now
            raise _RateLimited(max(1, int(wait.total_seconds()) + 1))
        events.append(now)


_DEFAULT_INTAKE = IntakeLimits()


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def psirt_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The vendor server's one mapping of disclosure errors to answers; each error class
    carries its ``http_status`` (``update_server.psirt.errors``)."""
    try:
        return await handler(request)
    except _TooLarge as exc:
        return _error(413, str(exc))
    except _RateLimited as exc:
        return _error(
            429,
            f"too many requests; retry after {exc.retry_after} s",
            **{"Retry-After": str(exc.retry_after)},
        )
    except PSIRTStoreError as exc:
        # Storage detail (paths, SQLite messages) goes to the log, not to the public.
        _log.error("PSIRT storage failed: %s", exc)
        return _error(exc.http_status, "the vulnerability database is unavailable; try again later")
    except PSIRTError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
        return _error(exc.http_status, str(exc), **headers)


def _with_error_middleware(app: web.Application) -> None:
    if psirt_error_middleware not in app.middlewares:
        app.middlewares.append(psirt_error_middleware)


async def _read_json(request: web.Request, max_body: int) -> Any:
    if request.content_type != "application/json":
        raise PSIRTInputError(
            f"Content-Type is {request.content_type!r}; expected 'application/json'"
        )
    if request.content_length is not None and request.content_length > max_body:
        raise _TooLarge(f"request body is {request.content_length} bytes, at most {max_body}")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(64 * 2**10)
        if not chunk:
            break
        size += len(chunk)
        if size > max_body:
            raise _TooLarge(f"request body is larger than {max_body} bytes")
        chunks.append(chunk)
    try:
        value = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PSIRTInputError(f"request body is not valid UTF-8 JSON: {str(exc)[:120]}") from exc
    if not _valid_unicode(value):  # "\ud800" is valid JSON, but no text: refused before any effect
        raise PSIRTInputError("request body holds a string that is not valid Unicode (a lone surrogate)")
    return value


def _valid_unicode(value: Any) -> bool:
    """Every string (keys too) in a decoded JSON value encodes as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ReporterAuthError("missing 'Authorization: Bearer <token>' header")
    return token.strip()


def _report_id(request: web.Request) -> str:
    return check_report_id(request.match_info["report_id"])


def _reporter_view(report: Report, policy: SLAPolicy) -> dict[str, Any]:
    """What the reporter may see: status, timeline and messages, not PSIRT internals."""
    return {
        "tracking_id": report.report_id,
        "state": report.state.value,
        "received_at": report.received_at.isoformat(),
        "acknowledge_by": (report.received_at + policy.acknowledge).isoformat(),
        "severity": report.severity,
        "fixed_in": str(report.fixed_in) if report.fixed_in else None,
        "advisory_id": report.advisory_id,
        "history": [
            {"at": e.at.isoformat(), "state": e.kind, "detail": e.detail}
            for e in report.history
            if e.kind
            in {
                "received",
                "acknowledged",
                "triaged",
                "fix_in_progress",
                "fixed",
                "advisory_published",
                "closed",
                "rejected",
                "duplicate",
            }
        ],
        "messages": [
            {"at": m.at.isoformat(), "author": m.author, "body": m.body} for m in report.messages
        ],
    }


def _page(title: str, body: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body></html>\n"
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        },
    )


def add_psirt_routes(
    app: web.Application,
    *,
    store: PSIRTStore,
    policy: SLAPolicy,
    clock: Clock,
    psirt_token: str,
    intake_limits: IntakeLimits = _DEFAULT_INTAKE,
    web_limits: WebLimits | None = None,
    publisher: csaf.Publisher | None = None,
    product: csaf.ProductInfo | None = None,
) -> None:
    """Register report intake, reporter and PSIRT routes on ``app``.

    ``publisher`` enables the ``publish`` action (CSAF advisory); ``product``
    names the vendor and camera model in advisories (default refcam RC-1080).
    """
    _with_error_middleware(app)
    product = product or csaf.ProductInfo.default()
    web_limits = web_limits or WebLimits()
    if len(psirt_token) < 16:
        raise PSIRTInputError("the PSIRT operator token must be at least 16 characters")
    report_limiter = SlidingWindowLimiter(
        web_limits.reports_per_window, web_limits.window, web_limits.max_tracked_sources
    )
    message_limiter = SlidingWindowLimiter(
        web_limits.messages_per_window, web_limits.window, web_limits.max_tracked_sources
    )

    def operator(request: web.Request) -> None:
        if not hmac.compare_digest(_bearer(request).encode(), psirt_token.encode()):
            raise ReporterAuthError("operator token is not valid")

    async def submit(request: web.Request) -> web.StreamResponse:
        now = clock()
        report_limiter.hit(request.remote or "unknown", now)
        submission = parse_submission(await _read_json(request, web_limits.max_body), intake_limits)
        report, token = store.create_report(submission, now=now)
        return web.json_response(
            {
                "tracking_id": report.report_id,
                "reporter_token": token,
                "status_url": f"/api/v1/reports/{report.report_id}",
                "acknowledge_by": (report.received_at + policy.acknowledge).isoformat(),
            },
            status=201,
        )

    async def submit_form(request: web.Request) -> web.StreamResponse:
        """The policy page's report form (``application/x-www-form-urlencoded``): a report from a
        person with a browser, answered with a page that shows the tracking id and token once."""
        now = clock()
        try:
            report_limiter.hit(request.remote or "unknown", now)
        except _RateLimited as exc:
            return _page("Too many reports", f"<p>Too many reports from here; try again in {exc.retry_after} s.</p>",
                         status=429, headers={"Retry-After": str(exc.retry_after)})  # fmt: skip
        if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return _page("Not a form", "<p>Send the report with the form on the policy page.</p>", status=415)
        form = await request.post()
        fields = {k: str(form[k]) for k in ("title", "description", "product", "version") if k in form}
        contact = str(form.get("reporter_contact", "")).strip()
        if contact:
            fields["reporter_contact"] = contact
        try:
            submission = parse_submission(fields, intake_limits)
            report, token = store.create_report(submission, now=now)
        except PSIRTStoreError as exc:
            _log.error("PSIRT storage failed: %s", exc)
            return _page("Try again later", "<p>The vulnerability database is unavailable.</p>", status=503)
        except PSIRTError as exc:
            return _page("The report was not sent", f"<p>{html.escape(str(exc))}</p>", status=400)
        e = html.escape
        return _page(
            f"Report {report.report_id} received",
            f"<p>Tracking id: <b>{e(report.report_id)}</b>. We acknowledge it by "
            f"{e((report.received_at + policy.acknowledge).isoformat())}.</p>"
            f"<p>Your reporter token (shown once; keep it to read the status and to write to us): "
            f"<code>{e(token)}</code></p>"
            f"<p>Status: <code>GET /api/v1/reports/{e(report.report_id)}</code> with "
            "<code>Authorization: Bearer &lt;token&gt;</code>.</p>",
            status=201,
        )

    async def reporter_status(request: web.Request) -> web.StreamResponse:
        report_id = _report_id(request)
        store.verify_reporter_token(report_id, _bearer(request))
        return web.json_response(_reporter_view(store.get(report_id), policy))

    async def reporter_message(request: web.Request) -> web.StreamResponse:
        report_id = _report_id(request)
        store.verify_reporter_token(report_id, _bearer(request))
        now = clock()
        message_limiter.hit(request.remote or "unknown", now)
        body = parse_message(await _read_json(request, web_limits.max_body), intake_limits)
        report = store.update(report_id, lambda r: add_message(r, "reporter", body, now=now))
        return web.json_response(_reporter_view(report, policy), status=201)

    async def psirt_list(request: web.Request) -> web.StreamResponse:
        operator(request)
        return web.json_response(
            [
                {
                    "report_id": r.report_id,
                    "state": r.state.value,
                    "title": r.submission.title,
                    "severity": r.severity,
                    "received_at": r.received_at.isoformat(),
                }
                for r in store.all()
            ]
        )

    async def psirt_show(request: web.Request) -> web.StreamResponse:
        operator(request)
        return web.json_response(report_to_json(store.get(_report_id(request))))

    async def psirt_message(request: web.Request) -> web.StreamResponse:
        operator(request)
        report_id = _report_id(request)
        now = clock()
        body = parse_message(await _read_json(request, web_limits.max_body), intake_limits)
        report = store.update(report_id, lambda r: add_message(r, "psirt", body, now=now))
        return web.json_response(report_to_json(report), status=201)

    async def psirt_action(request: web.Request) -> web.StreamResponse:
        operator(request)
        report_id = _report_id(request)
        now = clock()
        body = await _read_json(request, web_limits.max_body)
        if isinstance(body, dict) and body.get("action") == "publish":
            if publisher is None:
                raise PSIRTInputError("publishing advisories is not configured on this server")
            cve = body.get("cve")
            if set(body) - {"action", "cve"} or not (cve is None or isinstance(cve, str)):
                raise PSIRTInputError("action 'publish' takes one optional parameter: cve")
            report, _ = store.publish(
                report_id,
                publisher=publisher,
                vendor=product.vendor,
                model_name=product.model,
                now=now,
                cve=cve,
            )
        else:
            report = store.update(report_id, lambda r: apply_action(r, body, now=now))
        return web.json_response(report_to_json(report))

    def sla_now() -> Any:
        now = clock()
        status = evaluate(store.all(), policy, now=now)
        store.record_breaches(list(status.breached), now=now)
        return status

    async def psirt_sla(request: web.Request) -> web.StreamResponse:
        operator(request)
        return web.json_response(sla_now().to_json())

    async def public_sla(request: web.Request) -> web.StreamResponse:
        """The published SLA (KS X 3020 C7): policy, figures and breached deadlines.

        Public and without report contents: only tracking ids, deadline kinds and dates.
        """
        status = sla_now()
        figures = status.to_json()
        return web.json_response(
            {
                "policy": policy.to_json(),
                "figures": {
                    k: figures[k]
                    for k in (
                        "now",
                        "open_reports",
                        "breach_count",
                        "median_time_to_acknowledge_hours",
                        "median_time_to_fix_hours",
                    )
                },
                "breached": [
                    {"report": d.report_id, "deadline": d.kind, "due": d.due.isoformat()}
                    for d in status.breached
                ],
            }
        )

    async def status_page(request: web.Request) -> web.StreamResponse:
        operator(request)
        status = sla_now()
        e = html.escape
        titles = {r.report_id: r.submission.title for r in store.all()}
        rows = "\n".join(
            f"<tr><td>{e(d.report_id)}</td><td>{e(titles.get(d.report_id, ''))}</td>"
            f"<td>{e(d.kind)}</td><td>{e(d.due.isoformat())}</td><td>{e(d.status)}</td></tr>"
            for d in status.deadlines
        )
        ack = status.median_time_to_acknowledge
        figures = (
            f"<p>Open reports: {status.open_reports}. Breaches: {status.breach_count}. "
            f"At risk: {len(status.at_risk)}. Median time to acknowledge: "
            f"{e(str(ack)) if ack is not None else 'n/a'}.</p>"
        )
        table = (
            "<table><tr><th>report</th><th>title</th><th>deadline</th><th>due</th>"
            f"<th>status</th></tr>\n{rows}</table>"
        )
        return _page("PSIRT SLA status", figures + table)

    async def report_page(request: web.Request) -> web.StreamResponse:
        operator(request)
        report = store.get(_report_id(request))
        e = html.escape
        sub = report.submission
        items = [
            ("State", report.state.value),
            ("Product", f"{sub.product} {sub.version}"),
            ("Reporter contact", sub.reporter_contact or "anonymous"),
            ("Severity", report.severity or "not triaged"),
        ]
        body = "".join(f"<p><b>{e(k)}:</b> {e(v)}</p>" for k, v in items)
        body += f"<pre>{e(sub.description)}</pre>"
        body += "".join(
            f"<p><i>{e(m.author)} {e(m.at.isoformat())}</i>: {e(m.body)}</p>"
            for m in report.messages
        )
        return _page(f"{report.report_id}: {sub.title}", body)

    app.router.add_post("/api/v1/reports", submit)
    app.router.add_post(REPORT_FORM_PATH, submit_form)
    app.router.add_get("/api/v1/reports/{report_id}", reporter_status)
    app.router.add_post("/api/v1/reports/{report_id}/messages", reporter_message)
    app.router.add_get("/api/v1/psirt/reports", psirt_list)
    app.router.add_get("/api/v1/psirt/reports/{report_id}", psirt_show)
    app.router.add_post("/api/v1/psirt/reports/{report_id}/messages", psirt_message)
    app.router.add_post("/api/v1/psirt/reports/{report_id}/actions", psirt_action)
    app.router.add_get("/api/v1/psirt/sla", psirt_sla)
    app.router.add_get("/api/v1/sla", public_sla)
    app.router.add_get("/psirt/status", status_page)
    app.router.add_get("/psirt/reports/{report_id}", report_page)
    add_openapi_route(app)  # the description the test suite fuzzes these routes from


def add_disclosure_routes(
    app: web.Application,
    *,
    policy: SLAPolicy,
    base_url: str,
    clock: Clock,
    contacts: Sequence[str] | None = None,
    signer: OpenPGPSigner | None = None,
) -> None:
    """Register ``/.well-known/security.txt`` and ``/security/policy`` (public).

    With ``signer`` the security.txt is served OpenPGP clear-signed (RFC 9116 2.3).
    """
    _with_error_middleware(app)
    base = base_url.rstrip("/")
    report_url = f"{base}/api/v1/reports"
    contact_list = list(contacts) if contacts else [f"{base}/security/policy"]

    async def security_txt(request: web.Request) -> web.StreamResponse:
        def make() -> str:
            return security_txt_for(clock(), base_url=base, contacts=contact_list)

        text = make() if signer is None else await asyncio.to_thread(signer.signed, make)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def policy_page(request: web.Request) -> web.StreamResponse:
        if "text/plain" in request.headers.get("Accept", "") and "html" not in request.headers.get(
            "Accept", ""
        ):
            text = disclosure_policy_text(policy, contacts=contact_list, report_url=report_url)
            return web.Response(text=text, content_type="text/plain", charset="utf-8")
        page = disclosure_policy_html(policy, contacts=contact_list, report_url=report_url)
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers={  # the form posts to this origin only
                "Content-Security-Policy": "default-src 'none'; form-action 'self'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    app.router.add_get("/.well-known/security.txt", security_txt)
    app.router.add_get("/security/policy", policy_page)


def add_csaf_routes(
    app: web.Application,
    *,
    store: PSIRTStore,
    publisher: csaf.Publisher,
    base_url: str,
    clock: Clock,
) -> None:
    """Register the CSAF provider metadata and TLP:WHITE directory distribution."""
    _with_error_middleware(app)

    async def metadata(request: web.Request) -> web.StreamResponse:
        docs = store.advisories()
        dates = [d["document"]["tracking"]["current_release_date"] for d in docs]
        last = datetime.fromisoformat(max(dates).replace("Z", "+00:00")) if dates else clock()
        return web.json_response(
            csaf.provider_metadata(base_url=base_url, publisher=publisher, last_updated=last)
        )

    async def index(request: web.Request) -> web.StreamResponse:
        return web.Response(text=csaf.index_txt(store.advisories()), content_type="text/plain")

    async def changes(request: web.Request) -> web.StreamResponse:
        return web.Response(text=csaf.changes_csv(store.advisories()), content_type="text/csv")

    async def advisory(request: web.Request) -> web.StreamResponse:
        wanted = f"{request.match_info['year']}/{request.match_info['name']}"
        for doc in store.advisories():
            if csaf.advisory_path(doc) == wanted:
                return web.json_response(doc)
        return _error(404, f"no advisory {wanted}")

    async def listing(request: web.Request) -> web.StreamResponse:
        year = request.match_info.get("year")
        entries = csaf.directory_entries(store.advisories(), year)
        if year is not None and not entries:
            return _error(404, f"no advisories in {year}")
        page = csaf.directory_listing(request.path, entries)
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def to_folder(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(request.path + "/")

    app.router.add_get(csaf.PROVIDER_METADATA, metadata)
    app.router.add_get(f"{csaf.DIRECTORY}/", listing)  # CSAF 7.1.14: directory listings
    app.router.add_get(csaf.DIRECTORY, to_folder)
    app.router.add_get(f"{csaf.DIRECTORY}/{{year:\\d{{4}}}}/", listing)
    app.router.add_get(f"{csaf.DIRECTORY}/{{year:\\d{{4}}}}", to_folder)
    app.router.add_get(f"{csaf.DIRECTORY}/index.txt", index)
    app.router.add_get(f"{csaf.DIRECTORY}/changes.csv", changes)
    app.router.add_get(f"{csaf.DIRECTORY}/{{year:\\d{{4}}}}/{{name}}", advisory)


def create_vendor_psirt_app(
    *,
    store: PSIRTStore,
    policy: SLAPolicy,
    clock: Clock,
    psirt_token: str,
    base_url: str,
    publisher: csaf.Publisher | None = None,
    web_limits: WebLimits | None = None,
    intake_limits: IntakeLimits = _DEFAULT_INTAKE,
) -> web.Application:
    """An app holding exactly what the vendor server's :func:`disclosure_extension` adds
    (the one assembly of these routes), without the TUF repository around it (tests)."""
    web_limits = web_limits or WebLimits()
    app = web.Application(client_max_size=web_limits.max_body)
    disclosure_extension(
        store=store, policy=policy, clock=clock, psirt_token=psirt_token, base_url=base_url,
        publisher=publisher, web_limits=web_limits, intake_limits=intake_limits,
    )(app)  # fmt: skip
    return app


def disclosure_extension(
    *,
    store: PSIRTStore,
    policy: SLAPolicy,
    clock: Clock,
    psirt_token: str,
    base_url: str,
    publisher: csaf.Publisher | None = None,
    signer: OpenPGPSigner | None = None,
    web_limits: WebLimits | None = None,
    intake_limits: IntakeLimits = _DEFAULT_INTAKE,
) -> Callable[[web.Application], None]:
    """All disclosure routes as one ``extensions=[...]`` entry for
    :func:`update_server.server.create_app` (the vendor server over TLS)."""
    chosen = publisher or csaf.Publisher.default(base_url)
    store.record_publisher(chosen)  # `refcam psirt publish` then names the same publisher

    def extend(app: web.Application) -> None:
        add_disclosure_routes(app, policy=policy, base_url=base_url, clock=clock, signer=signer)
        add_psirt_routes(
            app, store=store, policy=policy, clock=clock, psirt_token=psirt_token, publisher=chosen,
            web_limits=web_limits, intake_limits=intake_limits,
        )  # fmt: skip
        add_csaf_routes(app, store=store, publisher=chosen, base_url=base_url, clock=clock)

    return extend
