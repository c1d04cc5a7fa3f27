"""Errors of the ONVIF services: each one is a SOAP 1.2 fault with its ONVIF subcodes.

``OnvifFault(code, subcodes, reason)``: ``code`` is the SOAP 1.2 fault code
(``env:Sender`` or ``env:Receiver``), ``subcodes`` the ONVIF ``ter:`` subcodes
from outermost to innermost (ONVIF Core 5.11.2), ``reason`` the one line a
person reads. The web adapter turns every fault into a SOAP envelope.
"""

from __future__ import annotations

from typing import Literal

from ..errors import DeviceError

FaultCode = Literal["Sender", "Receiver", "VersionMismatch", "MustUnderstand", "DataEncodingUnknown"]


class OnvifFault(DeviceError):
    """A SOAP fault to send back (never a traceback, never a 500)."""

    def __init__(
        self, code: FaultCode, subcodes: tuple[str, ...], reason: str, *, http_status: int = 400
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = subcodes
        self.reason = reason
        self.http_status = http_status


def not_authorized(reason: str = "the sender is not authorized to perform this action") -> OnvifFault:
    """``env:Sender / ter:NotAuthorized`` (ONVIF Core 5.11.2.5)."""
    return OnvifFault("Sender", ("NotAuthorized",), reason)


def action_not_supported(action: str) -> OnvifFault:
    """``env:Receiver / ter:ActionNotSupported``: the operation is not implemented."""
    return OnvifFault("Receiver", ("ActionNotSupported",), f"optional action {action} not implemented")


def invalid_arg(reason: str, *subcodes: str) -> OnvifFault:
    """``env:Sender / ter:InvalidArgVal / ...``: an argument the device refuses."""
    return OnvifFault("Sender", ("InvalidArgVal", *subcodes), reason)


def operation_prohibited(reason: str, *subcodes: str) -> OnvifFault:
    """``env:Sender / ter:OperationProhibited / ...``."""
    return OnvifFault("Sender", ("OperationProhibited", *subcodes), reason)


def well_formed(reason: str) -> OnvifFault:
    """``env:Sender / ter:WellFormed``: the message is not well-formed XML or SOAP."""
    return OnvifFault("Sender", ("WellFormed",), reason)
