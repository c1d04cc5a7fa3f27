"""The probe's own ONVIF client: SOAP 1.2 envelopes, WS-Security UsernameToken, fault reading.

Independent of any camera's code (the probe imports nothing of refcam's): SOAP
1.2 envelopes built with lxml, WS-Security UsernameToken PasswordDigest
(``Base64(SHA-1(nonce + created + password))``, OASIS WSS UsernameToken
Profile 1.0), and fault reading with a parser that resolves no entities and
loads no DTD. Shared by the ONVIF cases (``conformance.cases.onvif``) and the
ONVIF target adapter (``conformance.onvif_adapter``).

A refusal counts only when it is definite: a SOAP fault with the
``ter:NotAuthorized`` subcode, or HTTP 401.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os

from lxml import etree
from lxml.builder import ElementMaker

from .http import Exchange, ProbeHTTP

DEVICE_SERVICE = "/onvif/device_service"
MEDIA_SERVICE = "/onvif/media_service"
NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
DIGEST_TYPE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
SOAP_HEADERS = {"Content-Type": "application/soap+xml; charset=utf-8", "Accept": "application/soap+xml"}

_ENV = ElementMaker(namespace=NS["env"], nsmap=NS)
_WSSE = ElementMaker(namespace=NS["wsse"], nsmap=NS)
_WSU = ElementMaker(namespace=NS["wsu"], nsmap=NS)


def _created(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def username_token(user: str, password: str, *, now: float, nonce: bytes | None = None) -> etree._Element:
    nonce = nonce if nonce is not None else os.urandom(16)
    created = _created(now)
    digest = hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324 - the WSS profile's digest
    return _WSSE.Security(
        _WSSE.UsernameToken(
            _WSSE.Username(user),
            _WSSE.Password(base64.b64encode(digest).decode(), Type=DIGEST_TYPE),
            _WSSE.Nonce(base64.b64encode(nonce).decode()),
            _WSU.Created(created),
        )
    )


def envelope(service: str, operation: str, *children: etree._Element, token: etree._Element | None = None) -> bytes:
    body = ElementMaker(namespace=NS[service], nsmap=NS)(operation, *children)
    header = [_ENV.Header(token)] if token is not None else []
    return bytes(etree.tostring(_ENV.Envelope(*header, _ENV.Body(body)), xml_declaration=True, encoding="UTF-8"))


def soap(http: ProbeHTTP, service: str, operation: str, *children: etree._Element, token: etree._Element | None = None,
         path: str | None = None) -> Exchange:
    target = path or (MEDIA_SERVICE if service == "trt" else DEVICE_SERVICE)
    return http.request("POST", target, raw_body=envelope(service, operation, *children, token=token), headers=SOAP_HEADERS)


def parse_answer(ex: Exchange) -> etree._Element | None:
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        return etree.fromstring(ex.body, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None


def fault_codes(ex: Exchange) -> list[str] | None:
    """The fault's code and subcodes (local names), or None when the answer is no SOAP fault."""
    root = parse_answer(ex)
    if root is None:
        return None
    node = root.find("env:Body/env:Fault", NS)
    if node is None:
        return None
    return [(v.text or "").strip().rpartition(":")[2] for v in node.iter(f"{{{NS['env']}}}Value")]


def fault_reason(ex: Exchange) -> str:
    root = parse_answer(ex)
    return "" if root is None else (root.findtext(".//env:Fault/env:Reason/env:Text", namespaces=NS) or "")


def answered(ex: Exchange) -> bool:
    """A 200 with a SOAP body that is no fault: the operation ran."""
    return ex.status == 200 and parse_answer(ex) is not None and fault_codes(ex) is None


def refused(ex: Exchange) -> bool:
    """A definite authentication refusal: 401, or a fault with ter:NotAuthorized."""
    if ex.status == 401:
        return True
    codes = fault_codes(ex)
    return ex.status in (400, 403) and codes is not None and "NotAuthorized" in codes
