"""Fixtures of the device tests; the helpers live in device_fixtures.py.

Test modules import helpers from ``device_fixtures`` (a unique module name),
never from ``conftest``: several test folders have a conftest.py, and which
one a bare ``import conftest`` finds depends on the collection order.
"""

from device_fixtures import clock, device, device_pki, handoff, initial_hash, oms_tool, start_device

__all__ = ["clock", "device", "device_pki", "handoff", "initial_hash", "oms_tool", "start_device"]
