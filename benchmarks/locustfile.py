"""Locust profile: a fleet's TUF update checks and downloads against the vendor side.

Each Locust user plays one camera's update client, as ``device.update`` does
it through python-tuf over HTTPS, verified against the vendor TLS root:

1. ``GET /metadata/<root+1>.root.json`` (404 while there is no new root),
2. ``GET /metadata/timestamp.json`` (never cached),
3. when the timestamp names a new snapshot: ``<v>.snapshot.json``, then the
   changed ``<v>.targets.json`` and ``<v>.models-<hw>.json`` (consistent
   snapshots: versioned names, immutable),
4. when the model role offers a firmware newer than the user's, and its signed
   rollout rule (``custom.rollout``) admits the user's serial: download the
   hash-prefixed target once, as the device writes it into its inactive slot.

Checks are paced like the devices' (``REFCAM_CHECK_INTERVAL`` seconds, +/- 10 %).
This profile only loads the server: the signature checks a device does are
measured by ``benchmarks/update.py``, not here.

Run against the vendor server (``refcam update-server run``) or against the
same repository served by nginx (docs/UPDATES.md); in Locust's distributed mode
for loads beyond one process::

    REFCAM_CA=keys/vendor/root-ca.pem locust -f benchmarks/locustfile.py --master \\
        --host https://localhost:9443 --headless -u 1000 -r 100 -t 60s
    REFCAM_CA=keys/vendor/root-ca.pem locust -f benchmarks/locustfile.py --worker   # one per core

Environment: ``REFCAM_CA`` (vendor TLS root, required), ``REFCAM_HARDWARE_ID``
(default refcam-rc1080-v1), ``REFCAM_RUNNING_VERSION`` (default 1.0.0),
``REFCAM_CHECK_INTERVAL`` (default 1.0 second).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import secrets
from typing import Any

from locust import HttpUser, task

HARDWARE_ID = os.environ.get("REFCAM_HARDWARE_ID", "refcam-rc1080-v1")
RUNNING = os.environ.get("REFCAM_RUNNING_VERSION", "1.0.0")
INTERVAL = float(os.environ.get("REFCAM_CHECK_INTERVAL", "1.0"))
MODEL_ROLE = f"models-{HARDWARE_ID}"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("+", 1)[0].split("."))


def _admitted(custom: dict[str, Any], serial: str) -> bool:
    """The device's rule (device.update.rollout), repeated here: Locust users are not devices."""
    rule = custom.get("rollout")
    if not isinstance(rule, dict):
        return True
    digest = hmac.new(bytes.fromhex(rule["salt"]), serial.encode(), hashlib.sha256).digest()
    point = int.from_bytes(digest[:8], "big") * 100.0 / 2**64
    return not rule.get("halted", False) and point < rule["basis_points"] / 100


class Camera(HttpUser):
    def wait_time(self) -> float:
        return INTERVAL * random.uniform(0.9, 1.1)

    def on_start(self) -> None:
        ca = os.environ.get("REFCAM_CA")
        if not ca:
            raise RuntimeError("set REFCAM_CA to the vendor TLS root (keys/vendor/root-ca.pem)")
        self.client.verify = ca  # TLS verified, as on a device
        self.serial = "RC" + secrets.token_hex(5).upper()
        self.running = RUNNING
        self.root_version = 1
        self.snapshot_version = 0
        self.role_versions: dict[str, int] = {}
        self.model: dict[str, Any] = {}

    def _get_json(self, path: str, name: str) -> dict[str, Any]:
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{path}: {response.status_code}")
                return {}
            doc: dict[str, Any] = response.json()
            return doc

    @task
    def check(self) -> None:
        with self.client.get(f"/metadata/{self.root_version + 1}.root.json", name="/metadata/[N+1].root.json",
                             catch_response=True) as response:
            if response.status_code == 200:
                self.root_version += 1
            elif response.status_code == 404:
                response.success()
            else:
                response.failure(f"root: {response.status_code}")
        timestamp = self._get_json("/metadata/timestamp.json", "/metadata/timestamp.json")
        snapshot_version = int(timestamp.get("signed", {}).get("meta", {}).get("snapshot.json", {}).get("version", 0))
        if snapshot_version and snapshot_version != self.snapshot_version:
            snapshot = self._get_json(f"/metadata/{snapshot_version}.snapshot.json", "/metadata/[v].snapshot.json")
            self.snapshot_version = snapshot_version
            for role in ("targets", MODEL_ROLE):
                version = int(snapshot.get("signed", {}).get("meta", {}).get(f"{role}.json", {}).get("version", 0))
                if version and version != self.role_versions.get(role):
                    doc = self._get_json(f"/metadata/{version}.{role}.json", f"/metadata/[v].{role}.json")
                    self.role_versions[role] = version
                    if role == MODEL_ROLE:
                        self.model = doc.get("signed", {}).get("targets", {})
        self._maybe_download()

    def _maybe_download(self) -> None:
        newest: tuple[tuple[int, ...], str, dict[str, Any]] | None = None
        for path, info in self.model.items():
            custom = info.get("custom") or {}
            if custom.get("kind", "firmware") != "firmware" or "version" not in custom:
                continue
            version = _version(custom["version"])
            newer = version > _version(self.running) and (newest is None or version > newest[0])
            if newer and _admitted(custom, self.serial):
                newest = (version, path, info)
        if newest is None:
            return
        _version_tuple, path, info = newest
        directory, _, name = path.rpartition("/")
        url = f"/targets/{directory}/{info['hashes']['sha256']}.{name}"
        with self.client.get(url, name="/targets/[firmware]", stream=True, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"target: {response.status_code}")
                return
            digest = hashlib.sha256()
            for chunk in response.iter_content(64 * 1024):
                digest.update(chunk)
            if digest.hexdigest() != info["hashes"]["sha256"]:
                response.failure("target hash mismatch")
                return
        self.running = self.model[path]["custom"]["version"]  # "installed": checks go on from it
