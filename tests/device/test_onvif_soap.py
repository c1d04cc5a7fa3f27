"""The hardened SOAP parser's limits and the once-serialised answers (device/onvif/soap.py)."""

from __future__ import annotations

import pytest

from device.onvif.errors import OnvifFault
from device.onvif.soap import MAX_DEPTH, NS, TDS, Prepared, envelope, parse_envelope, serialised

ENV = NS["env"]


def _nested(levels: int) -> bytes:
    """A request whose operation holds ``levels`` nested elements below the Envelope's three."""
    inner = "<x>" * levels + "</x>" * levels
    return (f'<e:Envelope xmlns:e="{ENV}"><e:Body><t:GetHostname xmlns:t="{NS["tds"]}">{inner}'
            f"</t:GetHostname></e:Body></e:Envelope>").encode()


def test_nesting_beyond_the_limit_is_refused_and_the_limit_itself_is_accepted() -> None:
    assert parse_envelope(_nested(MAX_DEPTH - 3)).name == "GetHostname"  # 3 + (MAX_DEPTH - 3) levels
    with pytest.raises(OnvifFault, match=f"deeper than {MAX_DEPTH}"):
        parse_envelope(_nested(MAX_DEPTH - 2))


def test_a_doctype_and_an_empty_body_are_refused() -> None:
    with pytest.raises(OnvifFault, match="DOCTYPE"):
        parse_envelope(b'<!DOCTYPE e [<!ENTITY a "b">]>' + _nested(1))
    for body in (b"", b"  \r\n "):
        with pytest.raises(OnvifFault, match="empty request body"):
            parse_envelope(body)


def test_a_prepared_answer_is_the_envelope_of_its_element_and_is_serialised_once() -> None:
    element = TDS.GetHostnameResponse(TDS.HostnameInformation())
    prepared = Prepared.of(element)
    assert prepared.body == envelope(TDS.GetHostnameResponse(TDS.HostnameInformation()))
    assert serialised(prepared) is prepared.body
    assert serialised(TDS.GetHostnameResponse(TDS.HostnameInformation())) == prepared.body
