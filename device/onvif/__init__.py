"""ONVIF Profile S/T services over the management TLS server, secure by default.

* :mod:`.soap`: hardened SOAP 1.2 parsing and lxml-built answers and faults;
* :mod:`.wsse`: WS-Security UsernameToken PasswordDigest, replay and clock checks;
* :mod:`.services`: the Device, Media and Media2 operations and their levels;
* :mod:`.media`: the media profiles the frame pipeline really produces;
* :mod:`.web`: the aiohttp endpoints (``add_onvif_routes``), mounted by
  ``device.server.builtin_extensions``.

See docs/ONVIF.md.
"""

from __future__ import annotations

from .web import add_onvif_routes

__all__ = ["add_onvif_routes"]
