"""``geoattest admin``: change a running verifier's licences, revocations, landmark registry
and exclusions through its admin API (operator role); each change holds from the next proof
and is recorded in the verifier's audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geoattest.address import parse_address
from geoattest.cli.tls import call_verifier, check_transport, party_credentials
from geoattest.errors import ConfigError

if TYPE_CHECKING:
    from google.protobuf.message import Message

app = typer.Typer(
    help="Change a running verifier (operator role): licences, devices, landmarks.",
    no_args_is_help=True,
)
licence_app = typer.Typer(help="Set or withdraw a device's licence.", no_args_is_help=True)
device_app = typer.Typer(help="Revoke or restore a device.", no_args_is_help=True)
landmark_app = typer.Typer(
    help="Register, revoke or exclude a landmark; lift an exclusion.", no_args_is_help=True
)
app.add_typer(licence_app, name="licence")
app.add_typer(device_app, name="device")
app.add_typer(landmark_app, name="landmark")

TargetOption = Annotated[str, typer.Option(help="Verifier address HOST:PORT.")]
TlsOption = Annotated[
    Path | None, typer.Option(help="The operator's TLS directory ('tls issue --role operator').")
]
PlaintextOption = Annotated[
    bool, typer.Option(help="Call without TLS: a loopback verifier serving --plaintext only.")
]
WhyOption = Annotated[str, typer.Option(help="Why, for the audit log.")]
DEFAULT_TARGET = "127.0.0.1:50051"


def _call(target: str, tls: Path | None, plaintext: bool, method: str, request: Message) -> None:
    from geoattest.wire.client import VerifierClient  # noqa: PLC0415

    parse_address(target, "--target")
    check_transport(target, "--target", tls, plaintext=plaintext)
    credentials = party_credentials(tls)

    async def call() -> str:
        async with VerifierClient(target, credentials=credentials) as client:
            return await client.admin(method, request)

    typer.echo(call_verifier(target, call()))


@licence_app.command("set")
def licence_set(
    device_id: Annotated[str, typer.Option(help="The device.")],
    region: Annotated[str, typer.Option(help="A region of the verifier's policy (e.g. SG).")],
    valid_until: Annotated[
        str, typer.Option(help="Expiry, ISO 8601 (e.g. 2027-01-01); UTC where no zone is given.")
    ],
    licence_id: Annotated[str, typer.Option(help="The licence's name (default: device id).")] = "",
    target: TargetOption = DEFAULT_TARGET,
    tls: TlsOption = None,
    plaintext: PlaintextOption = False,
) -> None:
    """Put a licence in force for a device (new, narrowed, widened or renewed)."""
    from geoattest.v1 import admin_service_pb2  # noqa: PLC0415

    try:
        until = dt.datetime.fromisoformat(valid_until)
    except ValueError:
        raise ConfigError(f"--valid-until {valid_until!r} is not an ISO 8601 date") from None
    if until.tzinfo is None:
        until = until.replace(tzinfo=dt.UTC)
    request = admin_service_pb2.SetLicenceRequest(
        device_id=device_id,
        region=region,
        valid_until_s=int(until.timestamp()),
        licence_id=licence_id,
    )
    _call(target, tls, plaintext, "SetLicence", request)


def _device(method: str) -> Callable[..., None]:
    """The command for a device request to ``method``."""

    def command(
        device_id: Annotated[str, typer.Option(help="The device.")],
        why: WhyOption = "",
        target: TargetOption = DEFAULT_TARGET,
        tls: TlsOption = None,
        plaintext: PlaintextOption = False,
    ) -> None:
        from geoattest.v1 import admin_service_pb2  # noqa: PLC0415

        request = admin_service_pb2.DeviceRequest(device_id=device_id, why=why)
        _call(target, tls, plaintext, method, request)

    return command


def _landmark(method: str) -> Callable[..., None]:
    """The command for a landmark request to ``method``."""

    def command(
        landmark_id: Annotated[str, typer.Option("--id", help="The landmark.")],
        why: WhyOption = "",
        target: TargetOption = DEFAULT_TARGET,
        tls: TlsOption = None,
        plaintext: PlaintextOption = False,
    ) -> None:
        from geoattest.v1 import admin_service_pb2  # noqa: PLC0415

        request = admin_service_pb2.LandmarkRequest(landmark_id=landmark_id, why=why)
        _call(target, tls, plaintext, method, request)

    return command


licence_app.command("withdraw", help="Withdraw a device's licence.")(_device("WithdrawLicence"))
device_app.command("revoke", help="Revoke a device: every call it makes is refused.")(
    _device("RevokeDevice")
)
device_app.command(
    "restore", help="Lift a device's revocation made through the admin API (not a file's)."
)(_device("RestoreDevice"))
landmark_app.command("revoke", help="Revoke a landmark and its key for good.")(
    _landmark("RevokeLandmark")
)
landmark_app.command("exclude", help="Exclude a landmark until the exclusion is lifted.")(
    _landmark("ExcludeLandmark")
)
landmark_app.command("lift", help="Lift a landmark's exclusion.")(_landmark("LiftExclusion"))


@landmark_app.command("register")
def landmark_register(
    key: Annotated[
        Path,
        typer.Option(help="The landmark's key directory ('landmark keygen'): its public half."),
    ],
    target: TargetOption = DEFAULT_TARGET,
    tls: TlsOption = None,
    plaintext: PlaintextOption = False,
) -> None:
    """Register a landmark: its id, operator and site from landmark.json, its public key
    from public.pem (the private key is not read)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    from geoattest.files import read_json, read_pem  # noqa: PLC0415
    from geoattest.pki.landmarks import LANDMARK_FILE  # noqa: PLC0415
    from geoattest.v1 import admin_service_pb2  # noqa: PLC0415

    identity = read_json(key / LANDMARK_FILE, "landmark identity")
    try:
        public = serialization.load_pem_public_key(read_pem(key / "public.pem", "public key"))
        request = admin_service_pb2.RegisterLandmarkRequest(
            landmark_id=str(identity["id"]),
            operator=str(identity.get("operator", "")),
            latitude=float(identity["lat"]),
            longitude=float(identity["lon"]),
            name=str(identity.get("name", "")),
            public_key_der=public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"landmark key directory {key}: {exc.filename} is missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"landmark key directory {key} is malformed: {exc!r}") from None
    _call(target, tls, plaintext, "RegisterLandmark", request)
