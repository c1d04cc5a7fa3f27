"""GetStreamUri's MJPEG URI works with the credentials an ONVIF client holds (HTTP Digest, SHA-256)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, PKI, RunningDevice, StartDevice
from onvif_client import NS, digest_authorization, el, fault, parse, tt
from stream_fixtures import device_stream_signer
from test_onvif import call, change_password

from device.onvif import add_onvif_routes
from device.stream.pipeline import PipelineConfig, StreamPipeline
from device.stream.sources import SyntheticSource
from device.stream.web import add_stream_routes


async def streaming_device(start_device: StartDevice, device_pki: PKI) -> RunningDevice:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 15, paced=False),
        device_stream_signer(device_pki.device_ca_key, device_pki.device_ca_cert),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device: RunningDevice = await start_device(
        extensions=[lambda app: add_stream_routes(app, pipeline, reauth_interval=0.05), add_onvif_routes]
    )
    return device


async def stream_path(device: RunningDevice, password: str) -> str:
    status, body = await call(
        device, "trt", "GetStreamUri",
        el("trt", "StreamSetup", tt("Stream", "RTP-Unicast"), tt("Transport", tt("Protocol", "HTTP"))),
        el("trt", "ProfileToken", "mjpeg_main"), password=password,
    )
    assert status == 200, body
    uri = parse(body).findtext(".//tt:Uri", namespaces=NS) or ""
    parts = urlsplit(uri)
    assert parts.scheme == "https" and parts.port == device.port, uri
    return parts.path


async def test_the_stream_uri_answers_digest_and_streams_jpeg(start_device: StartDevice, device_pki: PKI) -> None:
    device = await streaming_device(start_device, device_pki)
    await change_password(device)
    path = await stream_path(device, NEW_PASSWORD)
    async with device.client() as s:
        async with s.get(device.url(path)) as r:
            assert r.status == 401
            challenge = r.headers["WWW-Authenticate"]
            assert "algorithm=SHA-256" in challenge
        wrong = digest_authorization(challenge, user="admin", password="not the password", method="GET", uri=path)
        async with s.get(device.url(path), headers={"Authorization": wrong}) as r:
            assert r.status == 401
            challenge = r.headers["WWW-Authenticate"]  # a fresh nonce: the last one's nc 1 is spent
        device.clock.advance(5)  # past the one-second back-off of that failure
        auth = digest_authorization(challenge, user="admin", password=NEW_PASSWORD, method="GET", uri=path)
        async with s.get(device.url(path), headers={"Authorization": auth}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Content-Type"].startswith("multipart/")
            seen = b""
            while b"\xff\xd8" not in seen:
                seen += await asyncio.wait_for(r.content.read(4096), 10)
            # the user changes the password: the stream the old password opened ends
            status, body = await call(
                device, "tds", "SetUser",
                el("tds", "User", tt("Username", "admin"), tt("Password", "a later passphrase for the harbour"),
                   tt("UserLevel", "Administrator")), password=NEW_PASSWORD,
            )
            assert status == 200, body

            async def drain() -> None:
                while await r.content.read(65536):
                    pass

            await asyncio.wait_for(drain(), 10)


async def test_the_label_password_gets_the_forced_change_fault(start_device: StartDevice, device_pki: PKI) -> None:
    device = await streaming_device(start_device, device_pki)
    path = "/onvif/stream.mjpeg"
    async with device.client() as s:
        async with s.get(device.url(path)) as r:
            challenge = r.headers["WWW-Authenticate"]
        auth = digest_authorization(challenge, user="admin", password=INITIAL_PASSWORD, method="GET", uri=path)
        async with s.get(device.url(path), headers={"Authorization": auth}) as r:
            assert r.status == 400
            assert "password must be changed" in (fault(await r.read()) or ([], ""))[1]
