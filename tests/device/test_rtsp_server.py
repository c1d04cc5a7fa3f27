"""The RTSPS server against hostile and careless clients: auth, order, limits, hijack, slow and dead viewers."""

from __future__ import annotations

import asyncio
import base64

import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD
from rtsp_fixtures import RawRtsp, digest_authorization, rtsp_args, rtsp_extensions, server_of

from device.appkeys import AUDIT_KEY
from device.rtsp.media import MediaFrame, Subscriber


async def _device(start_device, handoff, *, change_password: bool = True, **changes):  # type: ignore[no-untyped-def]
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args(**changes)))
    if change_password:
        await device.admin_token()
    return device


class Client:
    """RawRtsp plus Digest: answers each 401 with a fresh response (SHA-256, the first challenge)."""

    def __init__(self, raw: RawRtsp, port: int, user: str = "admin", password: str = NEW_PASSWORD) -> None:
        self.raw, self.port, self.user, self.password = raw, port, user, password
        self.cseq = 0
        self.challenge: str | None = None
        self.nc = 0

    @classmethod
    async def open(cls, device, **kwargs) -> Client:  # type: ignore[no-untyped-def]
        port = server_of(device).port
        return cls(await RawRtsp.connect(port, device.client_ssl), port, **kwargs)

    def url(self, path: str = "/h264") -> str:
        return f"rtsps://127.0.0.1:{self.port}{path}"

    async def request(self, method: str, uri: str, headers: dict[str, str] | None = None, *, auth: bool = True):  # type: ignore[no-untyped-def]
        headers = dict(headers or {})
        for _ in range(2):
            self.cseq += 1
            sent = dict(headers)
            if auth and self.challenge is not None:
                self.nc += 1
                sent["Authorization"] = digest_authorization(
                    self.challenge, method=method, uri=uri, user=self.user, password=self.password, nc=self.nc
                )
            status, response_headers, body = await self.raw.request(method, uri, self.cseq, sent)
            if status == 401 and auth and self.challenge is None:
                self.challenge = response_headers["www-authenticate"].split("\n")[0]
                continue
            return status, response_headers, body
        return status, response_headers, body

    async def setup(self, path: str = "/h264") -> str:
        await self.request("DESCRIBE", self.url(path), {"Accept": "application/sdp"})
        status, headers, _ = await self.request(
            "SETUP", self.url(path) + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        )
        assert status == 200, status
        return headers["session"].split(";")[0]


async def test_describe_needs_digest_and_basic_is_refused(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff)
    client = await Client.open(device)
    status, headers, _ = await client.request("OPTIONS", "*", auth=False)
    assert status == 200 and "DESCRIBE" in headers["public"]
    status, headers, _ = await client.request("DESCRIBE", client.url(), auth=False)
    assert status == 401
    assert headers["www-authenticate"].startswith("Digest ") and "SHA-256" in headers["www-authenticate"]
    assert "Basic" not in headers["www-authenticate"]
    basic = base64.b64encode(f"admin:{NEW_PASSWORD}".encode()).decode()
    status, _, _ = await client.request("DESCRIBE", client.url(), {"Authorization": f"Basic {basic}"}, auth=False)
    assert status == 401
    status, headers, body = await client.request("DESCRIBE", client.url(), {"Accept": "application/sdp"})
    assert status == 200 and b"sprop-parameter-sets=" in body and b"packetization-mode=1" in body
    await client.raw.close()


async def test_digest_replay_is_refused(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff)
    client = await Client.open(device)
    await client.request("DESCRIBE", client.url())
    assert client.challenge is not None
    header = digest_authorization(client.challenge, method="DESCRIBE", uri=client.url(), user="admin",
                                  password=NEW_PASSWORD, nc=50)
    status, _, _ = await client.raw.request("DESCRIBE", client.url(), 90, {"Authorization": header})
    assert status == 200
    status, _, _ = await client.raw.request("DESCRIBE", client.url(), 91, {"Authorization": header})
    assert status == 401  # the same nc with the same nonce: a replay
    await client.raw.close()


async def test_wrong_password_is_audited_and_label_password_needs_a_change(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff, change_password=False)
    client = await Client.open(device, password=INITIAL_PASSWORD)
    status, _, body = await client.request("DESCRIBE", client.url())
    assert status == 403  # the label password is right, but it must be changed first
    assert b"password change required" in body
    wrong = await Client.open(device, password="not the password at all")
    status, _, _ = await wrong.request("DESCRIBE", wrong.url())
    assert status == 401
    failures = [e for e in device.app[AUDIT_KEY].entries() if e.event == "login_failure"]
    assert any(e.detail.get("route") == "rtsp" for e in failures), failures
    await client.raw.close()
    await wrong.raw.close()


async def test_wrong_order_and_another_clients_session(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff)
    a = await Client.open(device)
    status, _, _ = await a.request("PLAY", a.url())
    assert status == 455  # PLAY before SETUP
    session = await a.setup()
    b = await Client.open(device)
    status, _, _ = await b.request("PLAY", b.url(), {"Session": session})
    assert status == 454  # a's session is not b's to play
    status, _, _ = await b.request("TEARDOWN", b.url(), {"Session": session})
    assert status == 454
    status, _, _ = await a.request("PLAY", a.url(), {"Session": session, "Range": "npt=0-"})
    assert status == 200
    status, _, _ = await a.request("GET_PARAMETER", a.url(), {"Session": session})
    assert status == 200
    status, _, _ = await a.request("PAUSE", a.url(), {"Session": session})
    assert status == 200
    status, _, _ = await a.request("TEARDOWN", a.url(), {"Session": session})
    assert status == 200
    assert server_of(device).sessions == {}
    await a.raw.close()
    await b.raw.close()


async def test_session_caps_answer_453_then_503(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff, rtsp_max_sessions=3, rtsp_max_sessions_per_client=2)
    client = await Client.open(device)
    for _ in range(2):
        await client.setup()
    status, _, _ = await client.request(
        "SETUP", client.url() + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=2-3"}
    )
    assert status == 453  # per client
    server = server_of(device)
    server.config = type(server.config)(**{**server.config.__dict__, "max_sessions_per_client": 10})
    await client.setup()
    status, _, _ = await client.request(
        "SETUP", client.url() + "/trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=4-5"}
    )
    assert status == 503  # in total
    status, _, _ = await client.request(
        "SETUP", client.url() + "/trackID=0", {"Transport": "RTP/AVP/UDP;unicast;client_port=5000-5001"}
    )
    assert status in (461, 503)
    await client.raw.close()
    await asyncio.sleep(0.1)
    assert server.sessions == {}  # the connection's sessions ended with it


@pytest.mark.parametrize(
    "wire",
    [
        b"GARBAGE\r\n\r\n",
        b"DESCRIBE rtsps://x/h264 RTSP/1.0\r\n\r\n",  # no CSeq
        b"DESCRIBE rtsps://x/h264 RTSP/2.0\r\nCSeq: 1\r\n\r\n",
        b"DESCRIBE rtsps://x/h264 RTSP/1.0\r\nCSeq: 1\r\nCSeq: 2\r\n\r\n",
        b"DESCRIBE rtsps://x/h264 RTSP/1.0\r\nCSeq: 1\r\nX: \xff\xfe\r\n\r\n",
        b"DESCRIBE rtsps://x/h264 RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n",
        b"DESCRIBE rtsps://x/h264 RTSP/1.0\r\nCSeq: 1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"DESCRIBE rtsps://x/h264 RTSP/1.0\r\nCSeq: 1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(80)) + b"\r\n",
        b"DESCRIBE " + b"/" * 3000 + b" RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    ],
)
async def test_malformed_requests_get_a_4xx_or_5xx_status_never_a_crash(start_device, handoff, wire: bytes) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff, change_password=False)
    raw = await RawRtsp.connect(server_of(device).port, device.client_ssl)
    await raw.send(wire)
    status, _, _ = await raw.response()
    assert 400 <= status < 506
    await raw.close()
    ok = await Client.open(device)  # the server still serves
    status, _, _ = await ok.request("OPTIONS", "*", auth=False)
    assert status == 200
    await ok.raw.close()


async def test_no_plaintext_listener_and_slow_header_is_cut(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff, change_password=False)
    server = server_of(device)
    assert server.plaintext_port is None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")  # plaintext RTSP on the TLS port
    await writer.drain()
    data = await asyncio.wait_for(reader.read(100), 15)
    assert not data.startswith(b"RTSP/1.0")  # no RTSP answer without TLS
    writer.close()
    server.config = type(server.config)(**{**server.config.__dict__, "request_timeout": 0.5})
    raw = await RawRtsp.connect(server.port, device.client_ssl)
    await raw.send(b"OPTIONS * RTSP/1.0\r\nCSe")  # and never the rest
    assert await asyncio.wait_for(raw.reader.read(), 10) == b""  # closed by the server
    await raw.close()


async def test_viewer_killed_mid_stream_leaves_no_session(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff)
    client = await Client.open(device)
    session = await client.setup()
    status, _, _ = await client.request("PLAY", client.url(), {"Session": session})
    assert status == 200
    await asyncio.wait_for(client.raw.reader.readexactly(4), 15)  # media flows
    client.raw.writer.transport.abort()  # killed
    server = server_of(device)
    for _ in range(100):
        if not server.sessions and not server.connections:
            break
        await asyncio.sleep(0.05)
    assert server.sessions == {} and server.connections == set()
    stream = server.streams["/h264"]
    for _ in range(100):
        if not stream.subscribers:
            break
        await asyncio.sleep(0.05)
    assert not stream.subscribers  # the encoder stops with its last viewer


async def test_a_viewer_that_does_not_read_does_not_stall_another(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff, stream_source="synthetic:640x480@30")
    stalled = await Client.open(device)
    s1 = await stalled.setup()
    await stalled.request("PLAY", stalled.url(), {"Session": s1})
    stalled.raw.writer.transport.pause_reading()  # it never reads again
    live = await Client.open(device)
    s2 = await live.setup()
    await live.request("PLAY", live.url(), {"Session": s2})
    server = server_of(device)
    await asyncio.sleep(4)
    sessions = {s.id: s for s in server.sessions.values()}
    assert sessions[s2].sent_frames >= 60, sessions[s2].sent_frames  # ~30 fps for the live viewer
    stream = server.streams["/h264"]
    assert all(sub.backlog <= 30 for sub in stream.subscribers)  # bounded per viewer
    await live.raw.close()
    stalled.raw.writer.transport.abort()


def test_slow_subscriber_skips_to_the_next_key_frame() -> None:
    async def scenario() -> None:
        sub = Subscriber(max_queue=3)
        frames = [MediaFrame((b"x",), i, i % 5 == 0, 0) for i in range(12)]
        for frame in frames:
            sub.offer(frame)
        got = []
        while sub.backlog:
            item = await sub.next()
            assert item is not None
            got.append(item.timestamp)
        assert got[0] in (0, 5, 10) and len(got) <= 3
        assert sub.resyncs >= 1

    asyncio.run(scenario())



async def test_a_silent_session_times_out(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await _device(start_device, handoff)
    server = server_of(device)
    server.config = type(server.config)(**{**server.config.__dict__, "session_timeout": 1.0})
    client = await Client.open(device)
    await client.setup()
    assert len(server.sessions) == 1
    for _ in range(60):  # no request, no RTCP: the session and its connection end
        if not server.sessions:
            break
        await asyncio.sleep(0.1)
    assert server.sessions == {} and server.connections == set()
    await client.raw.close()
