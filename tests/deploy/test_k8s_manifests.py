"""deploy/k8s: every manifest validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: no unknown fields), and the fleet StatefulSet runs `refcam fleet run` against the vendor Service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[name for name, _ in documents()])
def test_manifest_is_valid_kubernetes(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_fleet_pods_run_the_fleet_against_the_vendor_service() -> None:
    docs = {name.split(":", 1)[1]: doc for name, doc in documents()}
    fleet = docs["StatefulSet/refcam-fleet"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert fleet[:2] == ["fleet", "run"]
    service = docs["Service/refcam-vendor"]["spec"]["ports"][0]["port"]
    assert f"https://refcam-vendor:{service}" in fleet
    vendor = docs["Deployment/refcam-vendor"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert vendor[vendor.index("--name") + 1] == "refcam-vendor"  # the TLS leaf names the Service
