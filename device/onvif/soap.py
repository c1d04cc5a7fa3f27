"""SOAP 1.2 envelopes for ONVIF: a hardened parser and lxml-built answers.

:func:`parse_envelope` reads a request body with an lxml parser that resolves
no entities, loads no DTD, never touches the network and refuses huge trees
(``MAX_BODY`` bytes, ``MAX_DEPTH`` levels); a DOCTYPE at all is refused, so
"billion laughs" and external entities never expand. It returns the header
and the one operation element of the body, or raises
:class:`~.errors.OnvifFault` (``env:Sender/ter:WellFormed``, or
``env:VersionMismatch`` for a SOAP 1.1 envelope).

:func:`envelope` and :func:`fault_envelope` build answers with element makers
(never string templates) under the WSDL namespaces::

    env = parse_envelope(body)
    reply = envelope(TDS.GetSystemDateAndTimeResponse(...))
"""

from __future__ import annotations

import copy
import functools
import threading
from dataclasses import dataclass

from lxml import etree
from lxml.builder import ElementMaker

from .errors import OnvifFault, well_formed

MAX_BODY = 256 * 1024  # bytes of a SOAP request (StartFirmwareUpgrade carries no image)
MAX_DEPTH = 32  # element nesting we accept

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "soap11": "http://schemas.xmlsoap.org/soap/envelope/",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "xml": "http://www.w3.org/XML/1998/namespace",
}
NSMAP = {k: NS[k] for k in ("env", "tds", "trt", "tr2", "tt", "ter")}

# The makers declare no namespaces of their own: every answer goes into :func:`envelope`,
# whose root declares all of NSMAP, and lxml reuses those declarations when an element is
# put in the tree. (A maker with ``nsmap`` makes each element carry six declarations that
# the tree then has to reconcile: twice the cost of a GetDeviceInformation answer.)
ENV = ElementMaker(namespace=NS["env"])
TDS = ElementMaker(namespace=NS["tds"])
TRT = ElementMaker(namespace=NS["trt"])
TR2 = ElementMaker(namespace=NS["tr2"])
TT = ElementMaker(namespace=NS["tt"])

CONTENT_TYPE = "application/soap+xml"


@dataclass(frozen=True)
class Envelope:
    """A parsed request: its SOAP header (or None) and its one operation element."""

    header: etree._Element | None
    operation: etree._Element

    @functools.cached_property
    def namespace(self) -> str:
        return str(etree.QName(self.operation).namespace or "")

    @functools.cached_property
    def name(self) -> str:
        return str(etree.QName(self.operation).localname)


_PARSERS = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's hardened parser (an lxml parser is reusable but not shared between threads)."""
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = _new_parser()
    return parser


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


# True when an element sits deeper than MAX_DEPTH levels (precompiled: one C-level walk).
_TOO_DEEP = etree.XPath("boolean(/*" + "/*" * MAX_DEPTH + ")")


_ENVELOPE_TAG = f"{{{NS['env']}}}Envelope"
_HEADER_TAG = f"{{{NS['env']}}}Header"
_BODY_TAG = f"{{{NS['env']}}}Body"


def parse_envelope(body: bytes) -> Envelope:
    """The header and operation of a SOAP 1.2 request; raise :class:`OnvifFault` on anything else."""
    if len(body) > MAX_BODY:
        raise well_formed(f"SOAP request of {len(body)} bytes is over the {MAX_BODY}-byte limit")
    if not body or body.isspace():
        raise well_formed("empty request body; expected a SOAP 1.2 envelope")
    try:
        root = etree.fromstring(body, parser=_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise well_formed(f"request is not well-formed XML: {str(exc)[:120]}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise well_formed("a DOCTYPE is not allowed in a SOAP message (SOAP 1.2 part 1, 5)")
    # Every level opens with a "<", so a body with at most MAX_DEPTH of them (most requests)
    # cannot nest deeper: the walk is only needed beyond that.
    if body.count(b"<") > MAX_DEPTH and _TOO_DEEP(root):
        raise well_formed(f"XML nested deeper than {MAX_DEPTH} levels")
    if root.tag != _ENVELOPE_TAG:
        qname = etree.QName(root)
        if qname.namespace == NS["soap11"]:
            raise OnvifFault("VersionMismatch", (), "SOAP 1.1 is not supported; send a SOAP 1.2 envelope")
        raise OnvifFault("VersionMismatch", (), f"root element {qname.localname!r} is not a SOAP 1.2 Envelope")
    children = [c for c in root if isinstance(c.tag, str)]
    header = None
    if children and children[0].tag == _HEADER_TAG:
        header = children.pop(0)
    if len(children) != 1 or children[0].tag != _BODY_TAG:
        raise well_formed("a SOAP 1.2 Envelope holds an optional Header and then one Body")
    operations = [c for c in children[0] if isinstance(c.tag, str)]
    if len(operations) != 1:
        raise well_formed(f"the SOAP Body holds {len(operations)} elements; expected one operation")
    return Envelope(header=header, operation=operations[0])


# The empty answer, built once with lxml and copied per answer (a copy is C-level work;
# the element makers cost far more than the rest of a GetDeviceInformation).
_ENVELOPE = ElementMaker(namespace=NS["env"], nsmap=NSMAP).Envelope(ENV.Body())


def envelope(*body: etree._Element, header: etree._Element | None = None) -> bytes:
    """A serialised SOAP 1.2 envelope holding ``body``."""
    root = copy.deepcopy(_ENVELOPE)
    if header is not None:
        root.insert(0, header)
    root[-1].extend(body)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class Prepared:
    """An answer serialised once, in its envelope, for an operation whose answer depends only
    on what does not change while the firmware runs (GetDeviceInformation): an operation
    handler may return it instead of an element."""

    body: bytes

    @classmethod
    def of(cls, *body: etree._Element) -> Prepared:
        return cls(envelope(*body))


def serialised(answer: etree._Element | Prepared) -> bytes:
    """The SOAP envelope of an operation's answer."""
    return answer.body if isinstance(answer, Prepared) else envelope(answer)


def fault_envelope(fault: OnvifFault) -> bytes:
    """The SOAP 1.2 fault for ``fault`` with nested ONVIF ``ter:`` subcodes (SOAP 1.2 part 1, 5.4)."""
    inner: etree._Element | None = None
    for subcode in reversed(fault.subcodes):
        value = ENV.Value(f"ter:{subcode}")
        inner = ENV.Subcode(value) if inner is None else ENV.Subcode(value, inner)
    code = ENV.Code(ENV.Value(f"env:{fault.code}"), *([inner] if inner is not None else []))
    text = ENV.Text(xml_safe(fault.reason))
    text.set(f"{{{NS['xml']}}}lang", "en")
    return envelope(ENV.Fault(code, ENV.Reason(text)))


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry escaped (``\\xNN``), so building never fails."""
    return "".join(
        c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") or c >= "\U00010000"
        else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def text_of(parent: etree._Element, path: str) -> str | None:
    """The text of the first ``path`` (namespace prefixes of :data:`NS`) under ``parent``."""
    found = parent.find(path, namespaces=NS)
    if found is None:
        return None
    return (found.text or "").strip()
