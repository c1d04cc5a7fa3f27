"""Run by tests/device/test_onvif_clients.py in a subprocess with onvif-python first on the path.

``python onvif_python_flow.py PORT USER PASSWORD before|after`` prints one JSON line.
TLS is verified: ``verify_ssl=True`` and ``REQUESTS_CA_BUNDLE`` (set by the test) names
the manufacturer root, so requests checks the chain and the host name.
"""

from __future__ import annotations

import json
import sys

from onvif import ONVIFClient  # onvif-python (not onvif-zeep-async): see the test


def main() -> None:
    port, user, password, phase = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    client = ONVIFClient("127.0.0.1", port, user, password, use_https=True, verify_ssl=True, cache=_no_cache())
    device = client.devicemgmt()
    out: dict[str, object] = {"onvif": __import__("onvif").__file__}
    when = device.GetSystemDateAndTime()
    out["year"] = int(when.UTCDateTime.Date.Year)
    if phase == "before":
        try:
            device.GetDeviceInformation()
            out["info"] = "answered"
        except Exception as exc:  # the library wraps the SOAP fault
            out["info_error"] = str(exc)
        device.SetUser(User=[{"Username": user, "Password": sys.argv[5], "UserLevel": "Administrator"}])
        out["set_user"] = "ok"
    else:
        info = device.GetDeviceInformation()
        out["serial"] = info.SerialNumber
        media = client.media()
        profiles = media.GetProfiles()
        out["profiles"] = [p.token for p in profiles]
        out["snapshot_uri"] = media.GetSnapshotUri(ProfileToken=profiles[0].token).Uri
        out["users"] = sorted(u.Username for u in device.GetUsers())
    print(json.dumps(out))


def _no_cache() -> object:
    from onvif import CacheMode

    return CacheMode.NONE


if __name__ == "__main__":
    main()
