"""``geoattest audit``: check a verifier's audit log offline, and prove a result is in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geoattest.errors import ConfigError

if TYPE_CHECKING:
    from geoattest.crypto import VerifyingKey

app = typer.Typer(
    help="The verifier's tamper-evident audit log: verify it, prove a result is in it.",
    no_args_is_help=True,
)

LogOption = Annotated[
    Path, typer.Option("--log", help="The audit log ('verifier serve --audit-log').")
]
CheckpointsOption = Annotated[
    Path | None,
    typer.Option(help="Signed checkpoints (default: the log's FILE.checkpoints)."),
]
KeyOption = Annotated[
    Path,
    typer.Option(
        "--public-key",
        help="The verifier's result key, public half (public.pem of 'verifier keygen').",
    ),
]


def _key(path: Path) -> VerifyingKey:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    from geoattest.crypto import VerifyingKey  # noqa: PLC0415
    from geoattest.files import read_pem  # noqa: PLC0415

    try:
        loaded = serialization.load_pem_public_key(read_pem(path, "public key"))
        der = loaded.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except FileNotFoundError:
        raise ConfigError(f"public key {path} does not exist") from None
    except ValueError:
        raise ConfigError(f"{path} is not a PEM public key") from None
    return VerifyingKey.from_der(der)


def _checkpoints_path(log: Path, checkpoints: Path | None) -> Path:
    """Where the log's checkpoints are. A log that is not there is the operator's mistake
    (a wrong path), not evidence of tampering, so it is refused as such here.

    Raises:
        ConfigError: ``log`` does not exist or is not a file.
    """
    from geoattest.verifier.audit_log import CHECKPOINTS_SUFFIX  # noqa: PLC0415

    if not log.exists():
        raise ConfigError(f"audit log {log} does not exist")
    if not log.is_file():
        raise ConfigError(f"audit log {log} is not a file")
    return checkpoints or log.with_name(log.name + CHECKPOINTS_SUFFIX)


@app.command("verify")
def audit_verify(
    log: LogOption, public_key: KeyOption, checkpoints: CheckpointsOption = None
) -> None:
    """Check every entry's chain and every signed checkpoint; name the first entry altered,
    removed or reordered (exit 2), or say how much verified."""
    from geoattest.verifier.audit_log import (  # noqa: PLC0415
        read_checkpoints,
        read_entries,
        verify_log,
    )

    key = _key(public_key)
    notes = read_checkpoints(_checkpoints_path(log, checkpoints), key)
    verified = verify_log(read_entries(log), notes)
    unsigned = (
        f"; entries {verified.signed} to {verified.entries - 1} are signed by no checkpoint yet"
        if verified.signed < verified.entries
        else ""
    )
    typer.echo(
        f"audit log {log}: {verified.entries} entries chained, "
        f"{verified.checkpoints} signed checkpoints match{unsigned}"
    )


@app.command("prove")
def audit_prove(
    log: LogOption,
    public_key: KeyOption,
    token: Annotated[str, typer.Option(help="The result token (EAR JWT) to find.")],
    checkpoints: CheckpointsOption = None,
) -> None:
    """Print (JSON) an inclusion proof, at the newest signed checkpoint, of the appraisal
    that issued the result token: its entry, its audit path and the checkpoint's note."""
    from geoattest.verifier.audit_log import (  # noqa: PLC0415
        prove_token,
        read_checkpoints,
        read_entries,
    )

    notes = read_checkpoints(_checkpoints_path(log, checkpoints), _key(public_key))
    if not notes:
        raise ConfigError("no signed checkpoint yet: nothing to prove against")
    newest = max(notes, key=lambda c: c.size)
    proof = prove_token(read_entries(log), newest, token)
    typer.echo(json.dumps({**proof.document(), "checkpoint": newest.note}, indent=2))
