"""A tiny ONVIF SOAP 1.2 client for the device tests (WS-Security UsernameToken, HTTP Digest)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

# the probe's own SOAP/WSSE client serves the device tests too (one client, not two)
from conformance.onvifsoap import envelope
from conformance.onvifsoap import username_token as username_token

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
PATHS = {"tds": "/onvif/device_service", "trt": "/onvif/media_service", "tr2": "/onvif/media2_service"}


def request(service: str, operation: str, *children: Any, token: etree._Element | None = None) -> bytes:
    """A SOAP 1.2 request, built by the probe's own client (conformance.onvifsoap)."""
    return envelope(service, operation, *children, token=token)


def parse(body: bytes) -> etree._Element:
    return etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))


def fault(body: bytes) -> tuple[list[str], str] | None:
    """(codes outermost first, reason) of a SOAP fault; None when not a fault."""
    root = parse(body)
    node = root.find("env:Body/env:Fault", NS)
    if node is None:
        return None
    codes = [v.text or "" for v in node.iter(f"{{{NS['env']}}}Value")]
    return codes, node.findtext("env:Reason/env:Text", namespaces=NS) or ""


def tt(name: str, *children: Any, **attrs: str) -> etree._Element:
    return ElementMaker(namespace=NS["tt"], nsmap=NS)(name, *children, **attrs)


def el(service: str, name: str, *children: Any) -> etree._Element:
    return ElementMaker(namespace=NS[service], nsmap=NS)(name, *children)


def digest_authorization(challenge: str, *, user: str, password: str, method: str, uri: str) -> str:
    """An RFC 7616 SHA-256 (or MD5) ``Authorization`` answering ``challenge``."""
    import re

    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.partition(" ")[2]))
    algorithm = params.get("algorithm", "MD5")
    h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5
    cnonce, nc = os.urandom(8).hex(), "00000001"
    ha1 = h(f"{user}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:{uri}".encode()).hexdigest()
    response = h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
        f'algorithm={algorithm}, response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}", opaque="{params["opaque"]}"'
    )
