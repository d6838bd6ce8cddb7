"""PKI commands: manufacturer CA, device provisioning, landmark and verifier keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from geoattest.cli.outputs import writable_file
from geoattest.crypto import DEFAULT_ALGORITHM, Algorithm, VerifyingKey, generate_private_key
from geoattest.errors import ConfigError
from geoattest.pki import (
    LandmarkRecord,
    LandmarkRegistry,
    ManufacturerCA,
    ResultKey,
    RevocationList,
    check_coordinates,
    check_identifier,
    load_landmark_key,
    save_landmark_key,
)

ca_app = typer.Typer(help="The manufacturer root CA (the Endorser).", no_args_is_help=True)
device_app = typer.Typer(help="Provision and revoke devices.", no_args_is_help=True)
landmark_app = typer.Typer(help="Landmark keys and the landmark registry.", no_args_is_help=True)
verifier_app = typer.Typer(help="The verifier: its keys and its service.", no_args_is_help=True)

AlgorithmOption = Annotated[
    Algorithm, typer.Option("--algorithm", help="Signature algorithm of the new key.")
]


MAX_VALIDITY_DAYS = 100 * 365


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@ca_app.command("init")
def ca_init(
    out: Annotated[Path, typer.Option(help="New (or empty) directory for ca.key and ca.crt.")],
    name: Annotated[
        str, typer.Option(help="Manufacturer name in the root certificate (1..52 characters).")
    ] = ("Example Accelerators"),
    algorithm: AlgorithmOption = DEFAULT_ALGORITHM,
    validity_days: Annotated[
        int, typer.Option(min=1, max=MAX_VALIDITY_DAYS, help="Root validity in days.")
    ] = 3650,
) -> None:
    """Create a manufacturer root CA (refuses an existing non-empty --out)."""
    ca = ManufacturerCA.create(name, _now(), algorithm, dt.timedelta(days=validity_days))
    ca.save(out)
    typer.echo(f"manufacturer root written to {out}")


@device_app.command("provision")
def device_provision(
    ca: Annotated[Path, typer.Option(help="CA directory made by 'geoattest ca init'.")],
    device_id: Annotated[
        str,
        typer.Option(
            help="Device id: the certificate serialNumber, 1..64 of letters, digits, "
            "space and '()+,-.:=?."
        ),
    ],
    model: Annotated[str, typer.Option(help="Chip model, e.g. H100.")],
    out: Annotated[Path, typer.Option(help="New (or empty) directory for the key store.")],
    algorithm: AlgorithmOption = DEFAULT_ALGORITHM,
    validity_days: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_VALIDITY_DAYS,
            help="Certificate validity in days (cut at the root's expiry).",
        ),
    ] = 5 * 365,
) -> None:
    """Make a device key inside a new key store and a device certificate chained to the CA.

    Refuses a missing or broken CA directory and an existing non-empty --out.
    """
    from geoattest.attestor.keystore import DeviceKeyStore  # noqa: PLC0415  (CLI edge only)

    authority = ManufacturerCA.load(ca)
    store = DeviceKeyStore.provision(
        out,
        authority,
        device_id=device_id,
        model=model,
        now=_now(),
        algorithm=algorithm,
        validity=dt.timedelta(days=validity_days),
    )
    typer.echo(f"device {store.device_id} ({store.model}) provisioned in {out}")


def _load_or_new_revocations(path: Path) -> RevocationList:
    return RevocationList.load(path) if path.exists() else RevocationList()


RevocationsOption = Annotated[Path, typer.Option(help="Revocation list JSON (created if missing).")]


@device_app.command("revoke")
def device_revoke(
    revocations: RevocationsOption,
    device_id: Annotated[str, typer.Option(help="Device id to revoke.")],
) -> None:
    """Add a device to the revocation list (its version increases)."""
    updated = _load_or_new_revocations(revocations).with_device(device_id)
    updated.save(revocations)
    typer.echo(f"device {device_id} revoked ({revocations} version {updated.version})")


@landmark_app.command("keygen")
def landmark_keygen(
    landmark_id: Annotated[str, typer.Option("--id", help="Landmark id.")],
    lat: Annotated[float, typer.Option(help="Surveyed latitude, degrees.")],
    lon: Annotated[float, typer.Option(help="Surveyed longitude, degrees.")],
    out: Annotated[Path, typer.Option(help="New (or empty) directory for the landmark key.")],
    operator: Annotated[
        str,
        typer.Option(
            help="Who runs the landmark (holds its key and host). Landmarks of one operator "
            "count as one towards the quorum and the landmark faults the policy tolerates."
        ),
    ],
    registry: Annotated[
        Path | None, typer.Option(help="Landmark registry JSON to add it to (created if missing).")
    ] = None,
    name: Annotated[str, typer.Option(help="Human-readable site name.")] = "",
    algorithm: AlgorithmOption = DEFAULT_ALGORITHM,
) -> None:
    """Make a landmark's receipt-signing key and register it."""
    check_identifier(landmark_id, "landmark id")
    check_identifier(operator, "landmark operator")
    check_coordinates(lat, lon)
    if registry is not None:  # the key is made only where it can be registered as asked
        writable_file(registry, "--registry")
    loaded = LandmarkRegistry.load(registry) if registry and registry.exists() else None
    if loaded is not None and loaded.get(landmark_id) is not None:
        raise ConfigError(f"landmark {landmark_id} is already registered in {registry}")
    key = generate_private_key(algorithm)
    record = LandmarkRecord(
        landmark_id, lat, lon, VerifyingKey.from_public_key(key.public_key()), name, operator
    )
    save_landmark_key(out, key, record)
    if registry is not None:
        updated = loaded or LandmarkRegistry()
        updated.add(record)
        updated.save(registry)
    typer.echo(f"landmark {landmark_id} key written to {out}")


@landmark_app.command("register")
def landmark_register(
    key: Annotated[
        Path, typer.Option(help="Landmark key directory ('landmark keygen') to register.")
    ],
    registry: Annotated[Path, typer.Option(help="Landmark registry JSON (created if missing).")],
) -> None:
    """Add an existing landmark key directory to a registry: its id, operator, site and
    public key. A key already registered under any id is refused."""
    record = load_landmark_key(key).record
    updated = LandmarkRegistry.load(registry) if registry.exists() else LandmarkRegistry()
    updated.add(record)
    updated.save(registry)
    typer.echo(f"landmark {record.landmark_id} ({record.operator}) registered in {registry}")


@landmark_app.command("revoke")
def landmark_revoke(
    revocations: RevocationsOption,
    landmark_id: Annotated[str | None, typer.Option("--id", help="Landmark id to revoke.")] = None,
    key_id: Annotated[
        str | None,
        typer.Option(
            "--key-id",
            help="Landmark key id (hex SHA-256 of its public key) to revoke under every id "
            "it is or will be registered under.",
        ),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(
            help="Landmark registry JSON: with --id, revoke the key registered under that "
            "id as well, so it stays untrusted if it is registered again under another id."
        ),
    ] = None,
) -> None:
    """Add a landmark (by id, by key, or both) to the revocation list (its version
    increases)."""
    if landmark_id is None and key_id is None:
        raise typer.BadParameter("give --id, --key-id or both")
    updated = _load_or_new_revocations(revocations)
    if landmark_id is not None:
        registered = LandmarkRegistry.load(registry).get(landmark_id) if registry else None
        if registry is not None and registered is None:
            raise ConfigError(f"landmark {landmark_id} is not registered in {registry}")
        held = registered.verifying_key.key_id if registered else ""
        updated = updated.with_landmark(landmark_id, held)
    if key_id is not None:
        updated = updated.with_landmark_key(key_id)
    updated.save(revocations)
    what = " and ".join(
        part
        for part in (
            f"landmark {landmark_id}" if landmark_id else "",
            f"key {key_id}" if key_id else "",
        )
        if part
    )
    typer.echo(f"{what} revoked ({revocations} version {updated.version})")


@verifier_app.command("keygen")
def verifier_keygen(
    out: Annotated[Path, typer.Option(help="New (or empty) directory for the result key.")],
) -> None:
    """Make the verifier's ES256 result-signing key and its JWKS."""
    key = ResultKey.generate()
    key.save(out)
    typer.echo(f"result key {key.key_id[:16]}... written to {out} (jwks.json beside it)")
