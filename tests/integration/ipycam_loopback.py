"""Run the PyPI ``ipycam`` virtual camera on loopback only, as the probe's foreign target.

ipycam binds its HTTP server (web UI, REST API, ONVIF) and native RTSP server
to every interface and answers WS-Discovery multicast; tests talk to loopback
only, so this launcher binds both to 127.0.0.1 and leaves discovery off. It
is otherwise ipycam as shipped: its own handlers, authentication off by
default, plaintext HTTP. It feeds generated frames and prints one ready line::

    python tests/integration/ipycam_loopback.py HTTP_PORT RTSP_PORT
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ipycam import CameraConfig, IPCamera
from ipycam import camera as camera_module
from ipycam import rtsp as rtsp_module

LOOPBACK = "127.0.0.1"


class _LoopbackTCPServer(camera_module.ReusableThreadingTCPServer):  # type: ignore[misc,name-defined]
    def __init__(self, address: tuple[str, int], handler: type) -> None:
        super().__init__((LOOPBACK, address[1]), handler)


class _NoDiscovery:
    """WS-Discovery answers multicast on the LAN: not on a test machine."""

    def __init__(self, *args: object) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def main() -> int:
    http_port, rtsp_port = int(sys.argv[1]), int(sys.argv[2])
    camera_module.ReusableThreadingTCPServer = _LoopbackTCPServer
    camera_module.WSDiscoveryServer = _NoDiscovery
    native = rtsp_module.NativeRTSPServer

    class _LoopbackRTSP(native):  # type: ignore[misc,valid-type]
        def __init__(self, port: int = 8554, host: str = LOOPBACK) -> None:
            super().__init__(port=port, host=LOOPBACK)

    camera_module.NativeRTSPServer = _LoopbackRTSP
    workdir = Path(tempfile.mkdtemp(prefix="ipycam-"))
    config = CameraConfig.load(str(workdir / "camera_config.json"))
    config.local_ip = LOOPBACK
    config.onvif_port = http_port
    config.web_port = http_port
    config.rtsp_port = rtsp_port
    config.go2rtc_api_port = rtsp_port + 1  # nothing listens there: native streaming
    config.main_width, config.main_height, config.main_fps = 320, 240, 5
    config.sub_width, config.sub_height = 160, 120
    camera = IPCamera(config)
    if not camera.start():
        print("ipycam did not start", flush=True)
        return 1
    print(f"ipycam serving http://{LOOPBACK}:{http_port}", flush=True)
    frame = np.zeros((config.main_height, config.main_width, 3), dtype=np.uint8)
    try:
        while camera.is_running:
            camera.stream(frame)
            time.sleep(1.0 / config.main_fps)
    except KeyboardInterrupt:
        pass
    finally:
        camera.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
