"""Everything the demo's parties need on disk: keys, certificates, registry, policy, licences."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from geoattest.attestor.keystore import DeviceKeyStore
from geoattest.crypto import VerifyingKey, generate_private_key
from geoattest.demo.scenario import DemoScenario
from geoattest.pki import (
    LandmarkRecord,
    LandmarkRegistry,
    ManufacturerCA,
    ResultKey,
    save_landmark_key,
)
from geoattest.pki.tls import TLS_CA_CERT_FILE, OperatorCA, Role

VERIFIER_ID = "geoattest-demo-verifier"
LICENCE_DAYS = 30


@dataclass(frozen=True)
class Workspace:
    root: Path
    ca_certificate: Path
    registry: Path
    policy: Path
    licences: Path
    result_key: Path
    database: Path
    verifier_tls: Path
    """The verifier's server certificate and key, from the operator's TLS CA."""
    operator_tls: Path
    """The demo's own client certificate, in the operator role (it watches the alerts)."""
    tls_ca_certificate: Path
    """The operator's TLS CA, which the chips check the verifier against."""

    def landmark_key(self, landmark_id: str) -> Path:
        return self.root / "landmarks" / landmark_id

    def chip_dir(self, device_id: str) -> Path:
        return self.root / "chips" / device_id


def provision(scenario: DemoScenario, root: Path, now: dt.datetime) -> Workspace:
    """Make a manufacturer, chips, landmarks, a verifier key, the policy and licences."""
    root.mkdir(parents=True, exist_ok=True)
    ca = ManufacturerCA.create("Demo Accelerators", now)
    ca.save(root / "ca")
    for chip in scenario.chips:
        DeviceKeyStore.provision(
            root / "chips" / chip.device_id / "keys",
            ca,
            device_id=chip.device_id,
            model="H100",
            now=now,
        )
    registry = LandmarkRegistry()
    for site in scenario.landmarks:
        key = generate_private_key()
        record = LandmarkRecord(
            site.landmark_id,
            site.latitude,
            site.longitude,
            VerifyingKey.from_public_key(key.public_key()),
            site.name,
            site.operator,
        )
        save_landmark_key(root / "landmarks" / site.landmark_id, key, record)
        registry.add(record)
    registry.save(root / "landmarks.json")
    ResultKey.generate().save(root / "result-key")
    tls_ca = OperatorCA.create("Demo Operator", now)
    tls_ca.save(root / "tls-ca")
    tls_ca.issue_to(root / "tls" / "verifier", Role.SERVER, "verifier", now, hosts=["127.0.0.1"])
    tls_ca.issue_to(root / "tls" / "operator", Role.OPERATOR, "demo-console", now)
    (root / "policy.json").write_text(json.dumps(scenario.policy_document, indent=2) + "\n")
    until = (now + dt.timedelta(days=LICENCE_DAYS)).isoformat()
    licences = {
        chip.device_id: {"region": chip.licensed_region, "valid_until": until}
        for chip in scenario.chips
    }
    (root / "licences.json").write_text(json.dumps({"licences": licences}, indent=2) + "\n")
    return Workspace(
        root=root,
        ca_certificate=root / "ca" / "ca.crt",
        registry=root / "landmarks.json",
        policy=root / "policy.json",
        licences=root / "licences.json",
        result_key=root / "result-key",
        database=root / "verifier.db",
        verifier_tls=root / "tls" / "verifier",
        operator_tls=root / "tls" / "operator",
        tls_ca_certificate=root / "tls-ca" / TLS_CA_CERT_FILE,
    )
