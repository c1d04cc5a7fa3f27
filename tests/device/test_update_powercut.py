"""Power cuts through the whole update: download -> install -> trial boot -> confirm.

The injector counts every flash and fuse operation of one complete update of
a simulated camera (boot 1.0.0, stream 2.0.0 into slot b through the real
update client, set pending, reboot into the trial, confirm, reboot), then the
scenario is replayed with the power cut at each of those operations, once
cleanly and once torn (half the sector lands). After every cut:

* the camera boots a verified image: 1.0.0, or 2.0.0 as a trial, or 2.0.0
  confirmed; never anything else, never a brick;
* the fused counter is consistent: it reads 2 only once 2.0.0 is confirmed;
* the update then completes from there (install again, which starts over or
  resumes; or just confirm the trial) and ends in 2.0.0 confirmed, counter 2.

Resumption is pinned separately: after a power loss mid-download, and after a
connection that drops mid-target, the next install asks the server only for
the bytes the flash does not hold yet.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from update_fixtures import (
    NOW,
    Vendor,
    app_server,
    make_camera,
    make_vendor,
    server_context,
    update_client,
    update_server,
)

from bootloader.chain import boot
from bootloader.hardware import PowerCutInjector
from bootloader.unit import Device
from common.errors import PowerCut
from device.update import state as update_state
from device.update.errors import UpdateTransportError

GOOD_STATES = {("1.0.0", False, 1), ("2.0.0", True, 1), ("2.0.0", False, 2)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vendor, Device, str]]:
    tmp = tmp_path_factory.mktemp("powercut")
    vendor = make_vendor(tmp)
    camera = make_camera(tmp, vendor, vendor.image("1.0.0", 1))
    vendor.publish(vendor.image("2.0.0", 2, padding=8 * 1024), "rc-2.0.0.img")
    with update_server(vendor) as url:
        yield vendor, camera.device, url


def full_update(device: Device, vendor: Vendor, url: str, injector: PowerCutInjector) -> None:
    """What a camera does from 1.0.0 to 2.0.0 confirmed, across two reboots."""
    update_client(boot(device.power_on(injector=injector), now=NOW), vendor, url).install()
    trial = boot(device.power_on(injector=injector), now=NOW).handoff
    assert (trial.firmware.version, trial.trial) == ("2.0.0", True)
    trial.services.confirm()  # what the health check does once the firmware is up
    boot(device.power_on(injector=injector), now=NOW)



def state_after_power_on(device: Device) -> tuple[str, bool, int]:
    handoff = boot(device.power_on(), now=NOW).handoff
    return handoff.firmware.version, handoff.trial, handoff.fuses.firmware_counter


def finish_update(device: Device, vendor: Vendor, url: str) -> None:
    """From any good state, complete the update with the power on."""
    outcome = boot(device.power_on(), now=NOW)
    handoff = outcome.handoff
    if handoff.firmware.version == "1.0.0":
        update_client(outcome, vendor, url).install()
        handoff = boot(device.power_on(), now=NOW).handoff
    if handoff.trial:
        handoff.services.confirm()
    assert state_after_power_on(device) == ("2.0.0", False, 2)


def count_operations(golden: Device, vendor: Vendor, url: str) -> int:
    counter = PowerCutInjector()
    device = copy.deepcopy(golden)
    full_update(device, vendor, url, counter)
    assert state_after_power_on(device) == ("2.0.0", False, 2)
    return counter.operations


@pytest.mark.parametrize("torn", [False, True], ids=["clean", "torn"])
def test_a_power_cut_at_every_operation_of_an_update_leaves_a_bootable_camera_that_finishes(
    world: tuple[Vendor, Device, str], torn: bool
) -> None:
    vendor, golden, url = world
    total = count_operations(golden, vendor, url)
    assert total > 20  # streaming 2.0.0 into slot b alone is dozens of sector operations
    seen: set[tuple[str, bool, int]] = set()
    for cut_at in range(1, total + 1):
        device = copy.deepcopy(golden)
        injector = PowerCutInjector(cut_at, torn=torn)
        with pytest.raises(PowerCut):
            full_update(device, vendor, url, injector)
        state = state_after_power_on(device)
        assert state in GOOD_STATES, f"cut at operation {cut_at}/{total} ({'torn' if torn else 'clean'})"
        seen.add(state)
        finish_update(device, vendor, url)
    assert seen == GOOD_STATES  # the sweep crossed download, trial and confirm


def test_a_download_cut_by_a_power_loss_resumes_where_the_flash_says(
    world: tuple[Vendor, Device, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor, golden, url = world
    monkeypatch.setattr(update_state.SlotDownload, "SAVE_EVERY", 512)  # record every sector
    monkeypatch.setattr(update_state.SlotDownload, "SAVE_INTERVAL", 0.0)
    counter = PowerCutInjector()
    boot(copy.deepcopy(golden).power_on(injector=counter), now=NOW)
    # six sectors into slot b (an erase and a write each), then the power goes
    injector = PowerCutInjector(counter.operations + 13)
    device = copy.deepcopy(golden)
    with pytest.raises(PowerCut):
        update_client(boot(device.power_on(injector=injector), now=NOW), vendor, url).install()
    record = json.loads((device.state_dir / "data" / "update" / "slot-download.json").read_text())
    assert record["durable"] == 6 * 512  # the sixth sector was on flash when the power went
    client = update_client(boot(device.power_on(), now=NOW), vendor, url)
    offsets: list[int] = []
    download_into = client.fetcher.download_into

    def spy(url: str, max_length: int, **kwargs: Any) -> None:
        offsets.append(kwargs["offset"])
        download_into(url, max_length, **kwargs)

    monkeypatch.setattr(client.fetcher, "download_into", spy)
    client.install()
    assert offsets == [6 * 512]  # asked the server only for what the flash lacked
    handoff = boot(device.power_on(), now=NOW).handoff
    assert (handoff.firmware.version, handoff.trial) == ("2.0.0", True)


def test_a_transfer_cut_by_the_network_resumes_at_the_next_install(
    world: tuple[Vendor, Device, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops mid-target: the next install asks only for the rest."""
    vendor, golden, _url = world
    monkeypatch.setattr(update_state.SlotDownload, "SAVE_EVERY", 512)
    ranges: list[str | None] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        path = vendor.repo_dir / request.match_info["path"]
        if not path.is_file():
            raise web.HTTPNotFound()
        if request.match_info["path"].startswith("targets/"):
            ranges.append(request.headers.get("Range"))
            if len(ranges) == 1:  # the first attempt dies after 5000 bytes
                body = path.read_bytes()
                response = web.StreamResponse(headers={"Content-Length": str(len(body))})
                await response.prepare(request)
                await response.write(body[:5000])
                assert request.transport is not None
                request.transport.close()
                return response
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/{path:.+}", serve)
    device = copy.deepcopy(golden)
    with app_server(app, server_context(vendor)) as url:
        with pytest.raises(UpdateTransportError, match="missing|5000"):
            update_client(boot(device.power_on(), now=NOW), vendor, url).install()
        assert state_after_power_on(device) == ("1.0.0", False, 1)
        update_client(boot(device.power_on(), now=NOW), vendor, url).install()
    assert ranges == [None, f"bytes={5000 // 512 * 512}-"]  # whole sectors on flash are kept
    handoff = boot(device.power_on(), now=NOW).handoff
    assert (handoff.firmware.version, handoff.trial) == ("2.0.0", True)


def test_a_whole_download_is_not_read_back_but_a_resumed_one_is(
    world: tuple[Vendor, Device, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pass: the TUF hash and the image hash come from the write itself."""
    vendor, golden, url = world
    device = copy.deepcopy(golden)
    client = update_client(boot(device.power_on(), now=NOW), vendor, url)
    reads: list[int] = []
    read_slot = client.handoff.services.read_slot

    def spy(slot: str, length: int) -> bytes:
        reads.append(length)
        return read_slot(slot, length)  # type: ignore[arg-type]

    monkeypatch.setattr(client.handoff.services, "read_slot", spy)
    client.install()
    assert reads == []
    handoff = boot(device.power_on(), now=NOW).handoff
    assert (handoff.firmware.version, handoff.trial) == ("2.0.0", True)
