"""``geoattest verifier serve``, the client commands ``enrol`` and ``status``, and the
operator's ``exclusions``, ``lift`` and ``trust list`` over the database.

Every input is checked before the server binds, and every failure (a missing file, a bad
flag value, a port in use, an unreachable verifier) is a one-line error naming it. The
verifier is built by :mod:`geoattest.verifier.wiring` and run, in one process or
``--workers N``, by :mod:`geoattest.verifier.workers`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geoattest.address import parse_address
from geoattest.cli.outputs import one_line
from geoattest.cli.pki import verifier_app
from geoattest.cli.tls import (
    METRICS_TLS_HELP,
    call_verifier,
    check_transport,
    checked_metrics_address,
    metrics_access,
    party_credentials,
)
from geoattest.errors import ConfigError
from geoattest.pki.names import check_identifier
from geoattest.units import SECOND_NS
from geoattest.verifier.pool import POOL_SIZE

WORKERS_PER_CORE = 4
"""The most worker processes 'verifier serve' forks per core: about one per core serves
best, and a mistyped count must not fork thousands of processes."""

if TYPE_CHECKING:
    from geoattest.v1 import verifier_service_pb2
    from geoattest.verifier.licences import ExportLicence
    from geoattest.verifier.store import Synchronous

licences_app = typer.Typer(
    help="The export licences in force at a verifier: each change holds for the next proof.",
    no_args_is_help=True,
)
verifier_app.add_typer(licences_app, name="licences")
trust_app = typer.Typer(
    help="What the database holds of the operator's trust changes (the admin API's and the"
    " peer audits').",
    no_args_is_help=True,
)
verifier_app.add_typer(trust_app, name="trust")

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_VERIFIER_ID = "geoattest-verifier"


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    return path


def _measurements(values: list[str]) -> frozenset[bytes] | None:
    try:
        digests = frozenset(bytes.fromhex(v) for v in values)
    except ValueError as exc:
        raise ConfigError(f"--measurement must be hex: {exc}") from exc
    if any(len(d) != 32 for d in digests):
        raise ConfigError("--measurement must be a SHA-256 digest (64 hex characters)")
    return digests or None


MAX_DEADLINE_S = 3600.0
"""The longest deadline a client command sets on its calls: gRPC turns a deadline past what
its clock holds (``inf``, ``1e308``) into one already expired."""
DB_HELP = "The verifier's database: a SQLite file's path or a postgresql:// URL."


def _existing_database(db: str) -> str:
    """A ``--db`` value for a command that only reads or changes the database: a SQLite
    file must exist and hold something (an empty one would be given a schema by the
    command, which reads nothing from it; a URL is checked when it is opened)."""
    if "://" not in db and _existing(Path(db), "database").stat().st_size == 0:
        raise ConfigError(f"database {db} is empty: it holds no verifier's data")
    return db


def _synchronous(value: str) -> Synchronous:
    from geoattest.verifier.store import Synchronous  # noqa: PLC0415

    try:
        return Synchronous(value.upper())
    except ValueError:
        raise ConfigError(f"--synchronous must be FULL or NORMAL, not {value!r}") from None


@verifier_app.command("serve")
def verifier_serve(
    db: Annotated[
        str,
        typer.Option(
            help="The database: a SQLite file (created if missing) or a postgresql:// URL "
            "(the schema is created in an empty one; an older schema needs 'verifier migrate')."
        ),
    ],
    trust_root: Annotated[
        list[Path], typer.Option(help="Manufacturer root certificate PEM (repeatable).")
    ],
    landmarks: Annotated[Path, typer.Option(help="Landmark registry JSON.")],
    policy: Annotated[Path, typer.Option(help="Region policy JSON.")],
    licences: Annotated[Path, typer.Option(help="Licences JSON (device -> region, expiry).")],
    result_key: Annotated[Path, typer.Option(help="Result key directory ('verifier keygen').")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on (port 0: any).")] = (
        DEFAULT_LISTEN
    ),
    revocations: Annotated[Path | None, typer.Option(help="Revocation list JSON.")] = None,
    verifier_id: Annotated[
        str, typer.Option(help="This verifier's id, as possession proofs must name it.")
    ] = DEFAULT_VERIFIER_ID,
    quorum: Annotated[
        int,
        typer.Option(
            min=1,
            help="Fewest fault domains (operators at separate sites) whose landmarks a proof "
            "needs. Above what the registry holds at start, the verifier still starts (the "
            "admin API may register more landmarks) but warns that no proof can be ALLOWED.",
        ),
    ] = 3,
    landmark_faults: Annotated[
        int,
        typer.Option(
            min=0,
            help="Lying landmark operators an ALLOWED must survive (below --quorum; each one "
            "tolerated means an honest chip needs one more close landmark of another "
            "operator at another site). 0 trusts every registered landmark.",
        ),
    ] = 1,
    measurement: Annotated[
        list[str] | None,
        typer.Option(help="Allowed agent firmware SHA-256, hex (repeatable; none: any)."),
    ] = None,
    cadence_s: Annotated[int, typer.Option(min=1, help="Expected seconds between proofs.")] = 3600,
    stale_after: Annotated[
        int, typer.Option(min=1, help="Missed cadences before a device is STALE.")
    ] = 3,
    synchronous: Annotated[
        str, typer.Option(help="SQLite synchronous: FULL (power-cut safe) or NORMAL.")
    ] = "FULL",
    grace_s: Annotated[
        float, typer.Option(min=0, max=3600, help="Drain time at shutdown, seconds.")
    ] = 5.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes serving one port over one database (about one per core). "
            "An alert stream carries the alerts of every worker.",
        ),
    ] = 1,
    pool_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Database connections each worker process holds at most. On PostgreSQL "
            "each process holds one more for alert notifications: replicas x workers x "
            "(pool size + 1) must stay below the server's max_connections.",
        ),
    ] = POOL_SIZE,
    tls: Annotated[
        Path | None,
        typer.Option(
            help="The server's TLS directory ('tls issue --role server'): mutual TLS, every "
            "caller in the role its certificate names (chips: their device certificate)."
        ),
    ] = None,
    plaintext: Annotated[
        bool,
        typer.Option(help="Serve without TLS, answering anyone: loopback addresses only."),
    ] = False,
    audit_log: Annotated[
        Path | None,
        typer.Option(
            help="Append every appraisal and alert to this tamper-evident log (signed "
            "checkpoints beside it, FILE.checkpoints; 'geoattest audit verify')."
        ),
    ] = None,
    checkpoint_every_s: Annotated[
        float,
        typer.Option(min=0.001, max=86400, help="Seconds between the audit log's checkpoints."),
    ] = 60.0,
    metrics: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT for Prometheus metrics at /metrics, every worker's added up "
            "(port 0: any; the address is printed first)."
        ),
    ] = None,
    metrics_tls: Annotated[
        Path | None,
        typer.Option(help=METRICS_TLS_HELP),
    ] = None,
) -> None:
    """Run the verifier's gRPC service until SIGTERM or SIGINT, then drain and stop.

    The licences file is applied to the database at start and again on SIGHUP (a file that
    does not load is refused in the log; the licences in force stay): the next proof of
    every device is judged against the licence then in force."""
    address = str(parse_address(listen, "--listen", any_port=True))
    check_transport(address, "--listen", tls, plaintext=plaintext)
    metrics_address = checked_metrics_address(metrics, metrics_tls)
    check_identifier(verifier_id, "--verifier-id")
    if landmark_faults >= quorum:
        raise ConfigError(f"--landmark-faults {landmark_faults} must be below --quorum {quorum}")
    cores = os.cpu_count() or 1
    if workers > WORKERS_PER_CORE * cores:
        raise ConfigError(
            f"--workers {workers} is more than {WORKERS_PER_CORE} per core ({cores} cores here)"
        )
    with contextlib.ExitStack() as cleanup:
        if metrics_address:
            from geoattest.verifier.metrics import use_directory  # noqa: PLC0415

            metrics_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory("-metrics")))
            use_directory(metrics_dir)  # before the verifier's modules load prometheus-client
        # Imported here so that the other commands start without gRPC and SQLAlchemy.
        from geoattest.verifier.logs import configure_json_logs  # noqa: PLC0415
        from geoattest.verifier.pipeline import PipelineConfig  # noqa: PLC0415
        from geoattest.verifier.wiring import VerifierFiles, VerifierOptions, load_verifier  # noqa: PLC0415
        from geoattest.verifier.workers import serve  # noqa: PLC0415

        options = VerifierOptions(
            verifier_id,
            PipelineConfig(
                quorum=quorum,
                allowed_measurements=_measurements(measurement or []),
                landmark_faults=landmark_faults,
            ),
            cadence_s=cadence_s,
            stale_after=stale_after,
            synchronous=_synchronous(synchronous),
            pool_size=pool_size,
            checkpoint_every_s=checkpoint_every_s,
        )
        if audit_log is not None:
            _existing(audit_log.absolute().parent, "audit log directory")
        files = VerifierFiles(
            db=db,
            trust_roots=[_existing(p, "trust root") for p in trust_root],
            landmarks=_existing(landmarks, "landmark registry"),
            policy=_existing(policy, "region policy"),
            licences=_existing(licences, "licences file"),
            result_key=_existing(result_key, "result key directory"),
            revocations=_existing(revocations, "revocation list") if revocations else None,
            tls=_existing(tls, "TLS directory") if tls else None,
            audit_log=audit_log,
        )
        verifier = load_verifier(files, options)
        domains = verifier.appraiser.registered_domains()
        if quorum > domains:
            typer.echo(
                f"warning: --quorum {quorum} is more than the {domains} fault domain(s) the "
                "registered landmarks make: no proof can be ALLOWED until landmarks of other "
                "operators at other sites are registered",
                err=True,
            )
        configure_json_logs()
        if metrics_address:
            _serve_metrics(metrics_address, metrics_dir, db, metrics_tls)
        serve(
            verifier.server,
            address,
            workers=workers,
            grace_s=grace_s,
            reload=verifier.reload_licences_logged,
        )


def _serve_metrics(address: str, directory: Path, db: str, tls: Path | None) -> None:
    """Start the metrics endpoint (a thread of this process, the workers' parent) and say
    where it listens, before the verifier's own address line."""
    import time  # noqa: PLC0415

    from geoattest.verifier.fleet_view import FleetView  # noqa: PLC0415
    from geoattest.verifier.metrics import serve_metrics, verifier_registry  # noqa: PLC0415

    view = FleetView.open(db)
    registry = verifier_registry(
        directory,
        view.device_states,
        lambda: view.count_allowed_lapsed_by_licence(time.time_ns()),
    )
    endpoint = serve_metrics(address, registry, access=metrics_access(tls))
    typer.echo(f"verifier metrics on {endpoint.url}")


@licences_app.command("apply")
def verifier_licences_apply(
    db: Annotated[str, typer.Option(help=DB_HELP)],
    policy: Annotated[Path, typer.Option(help="Region policy JSON (the verifier's).")],
    licences: Annotated[Path, typer.Option(help="Licences JSON (device -> region, expiry).")],
) -> None:
    """Put a changed licences file in force for the next proof of every device, on a
    running verifier or a stopped one. A file that does not load changes nothing."""
    from geoattest.geo import load_policy  # noqa: PLC0415
    from geoattest.verifier.wiring import apply_licences  # noqa: PLC0415

    region = load_policy(_existing(policy, "region policy")).appraiser()
    changed = apply_licences(
        _existing_database(db), _existing(licences, "licences file"), region.has_region
    )
    for licence in changed:
        typer.echo(_describe(licence))
    typer.echo(f"{len(changed)} licence(s) changed")


def _describe(licence: ExportLicence) -> str:
    until = dt.datetime.fromtimestamp(licence.valid_until_ns // SECOND_NS, dt.UTC)
    state = "withdrawn" if licence.withdrawn else f"valid until {until.isoformat()}"
    return (
        f"{licence.device_id}: licence {licence.name} version {licence.version}, "
        f"region {licence.region}, {state}"
    )


TargetOption = Annotated[str, typer.Option(help="Verifier address HOST:PORT.")]
PlaintextOption = Annotated[
    bool, typer.Option(help="Call without TLS: a loopback verifier serving --plaintext only.")
]


def status_line(reply: verifier_service_pb2.DeviceStatus) -> str:
    """One line of ``verifier status``: a last verdict that no longer stands says why."""
    from geoattest.v1 import evidence_pb2, verifier_service_pb2  # noqa: PLC0415

    verdict = evidence_pb2.Verdict.Name(reply.last_verdict).removeprefix("VERDICT_")
    standing = verifier_service_pb2.VerdictStanding.Name(reply.standing).removeprefix("STANDING_")
    licence = verifier_service_pb2.LicenceState.Name(reply.licence_state)
    return one_line(
        f"{reply.device_id} {reply.state} region={reply.licensed_region} "
        f"licence={reply.licence_id or '-'} v{reply.licence_version} "
        f"{licence.removeprefix('LICENCE_STATE_')} counter={reply.last_counter} "
        f"verdict={verdict} judged_under=v{reply.verdict_licence_version} "
        f"{'current' if reply.verdict_current else 'not-current:' + standing}"
    )


@verifier_app.command("status")
def verifier_status(
    device_id: Annotated[str, typer.Option(help="Device id.")],
    target: TargetOption = DEFAULT_LISTEN,
    timeout_s: Annotated[
        float, typer.Option(min=0.1, max=MAX_DEADLINE_S, help="Deadline in seconds.")
    ] = 5.0,
    tls: Annotated[
        Path | None,
        typer.Option(help="A relying party's or operator's TLS directory ('tls issue')."),
    ] = None,
    plaintext: PlaintextOption = False,
) -> None:
    """Print a device's state, its licence, and its last verdict with whether it still
    stands ('current', or what took it away: a withdrawn, expired or changed licence, a
    revocation, an untrusted landmark, staleness)."""
    from geoattest.wire.client import VerifierClient  # noqa: PLC0415

    parse_address(target, "--target")
    check_transport(target, "--target", tls, plaintext=plaintext)
    credentials = party_credentials(tls)

    async def status() -> str:
        async with VerifierClient(target, timeout_s=timeout_s, credentials=credentials) as client:
            reply = await client.device_status(device_id)
        return status_line(reply)

    typer.echo(call_verifier(target, status()))


@verifier_app.command("enrol")
def verifier_enrol(
    keystore: Annotated[Path, typer.Option(help="Device key store ('device provision').")],
    target: TargetOption = DEFAULT_LISTEN,
    verifier_id: Annotated[str, typer.Option(help="The verifier's id.")] = DEFAULT_VERIFIER_ID,
    timeout_s: Annotated[
        float, typer.Option(min=0.1, max=MAX_DEADLINE_S, help="Deadline in seconds.")
    ] = 5.0,
    verifier_ca: Annotated[
        Path | None,
        typer.Option(
            help="The operator's TLS CA certificate (ca.crt): enrol over mutual TLS with the "
            "device certificate."
        ),
    ] = None,
    plaintext: PlaintextOption = False,
) -> None:
    """Enrol a provisioned device with a verifier (proof of possession by its key store)."""
    from geoattest.attestor.keystore import DeviceKeyStore  # noqa: PLC0415
    from geoattest.pki import load_certificate_pem  # noqa: PLC0415
    from geoattest.wire.client import VerifierClient, enrolment_request  # noqa: PLC0415

    parse_address(target, "--target")
    check_transport(target, "--target", verifier_ca, plaintext=plaintext, flag="--verifier-ca")
    device = DeviceKeyStore.open(_existing(keystore, "key store"))
    request = enrolment_request(device, device.device_id, device.certificate_der(), (), verifier_id)
    credentials = (
        device.tls_credentials(load_certificate_pem(_existing(verifier_ca, "verifier CA")))
        if verifier_ca
        else None
    )

    async def enrol() -> str:
        async with VerifierClient(target, timeout_s=timeout_s, credentials=credentials) as client:
            reply = await client.enroll(request)
        return f"device {reply.device_id} enrolled, licensed for {reply.licensed_region}"

    typer.echo(call_verifier(target, enrol()))


DbOption = Annotated[str, typer.Option(help=DB_HELP)]


def _at(time_ns: int) -> str:
    import datetime as dt  # noqa: PLC0415

    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@verifier_app.command("exclusions")
def verifier_exclusions(db: DbOption) -> None:
    """List the landmarks the peer audits excluded, in force or lifted (who, when, why)."""
    from geoattest.verifier.store import SqlStore  # noqa: PLC0415

    store = SqlStore.open(_existing_database(db))
    try:
        exclusions = store.exclusions()
    finally:
        store.close()
    if not exclusions:
        typer.echo("no landmark is excluded")
    for e in exclusions:
        since = f"excluded {_at(e.excluded_at_ns)}: {e.detail}"
        if e.lifted_at_ns is None:
            typer.echo(one_line(f"{e.landmark_id} IN FORCE {since}"))
        else:
            typer.echo(
                one_line(
                    f"{e.landmark_id} LIFTED {_at(e.lifted_at_ns)} by {e.lifted_by}"
                    f" ({e.lift_reason or 'no reason given'}); {since}"
                )
            )


@trust_app.command("list")
def verifier_trust_list(
    db: DbOption,
    subject: Annotated[
        str, typer.Option(help="Only the changes to this device or landmark id.")
    ] = "",
) -> None:
    """List every revocation, restoration, landmark registration, exclusion and lift the
    database holds, oldest first, with the trust version it made, when, by whom and why.
    A revocation or exclusion after a device's last verdict takes that verdict away
    ('verifier status' says so). What each revocation list file a replica followed revoked
    or lifted is in this list; the registry file's contents are not."""
    from geoattest.verifier.store import SqlStore  # noqa: PLC0415

    store = SqlStore.open(_existing_database(db))
    try:
        changes = store.trust_changes()
    finally:
        store.close()
    listed = [c for c in changes if not subject or c.subject == subject]
    if not listed:
        typer.echo("no trust change is stored" + (f" for {subject}" if subject else ""))
    for c in listed:
        typer.echo(
            one_line(
                f"v{c.version} {_at(c.at_ns)} {c.change.value} {c.subject}"
                f" by {c.by or '-'}: {c.why or 'no reason given'}"
            )
        )


@verifier_app.command("lift")
def verifier_lift(
    landmark_id: Annotated[str, typer.Argument(help="The excluded landmark's id.")],
    db: DbOption,
    why: Annotated[str, typer.Option(help="Why the exclusion is lifted, for the record.")] = "",
    by: Annotated[
        str | None, typer.Option(help="Who lifts it, for the record (default: the OS user).")
    ] = None,
) -> None:
    """Lift a landmark's exclusion: its receipts count again, in every worker, at the next
    batch; only audits that arrive from now on can exclude it again."""
    import getpass  # noqa: PLC0415
    import time  # noqa: PLC0415

    from geoattest.pki.names import check_note  # noqa: PLC0415
    from geoattest.verifier.store import SqlStore  # noqa: PLC0415

    check_note(why, "--why")
    if by is not None:
        check_note(by, "--by")
    store = SqlStore.open(_existing_database(db))
    try:
        lifted = store.lift_exclusion(
            landmark_id, time.time_ns(), by=by or getpass.getuser(), why=why
        )
    finally:
        store.close()
    typer.echo(f"landmark {lifted.landmark_id}: exclusion lifted by {lifted.lifted_by}")


@verifier_app.command("migrate")
def verifier_migrate(db: DbOption) -> None:
    """Bring the database's schema to this verifier's version, one version at a time in
    one transaction (an empty database gets the whole schema). Run it before starting
    verifiers of a new version: they refuse any schema but their own."""
    from geoattest.verifier.store import migrate  # noqa: PLC0415

    found, now = migrate(db)
    if found is None:
        typer.echo(f"schema created at version {now}")
    elif found == now:
        typer.echo(f"schema already at version {now}")
    else:
        typer.echo(f"schema migrated from version {found} to {now}")


@verifier_app.command("retain")
def verifier_retain(
    db: DbOption,
    older_than_days: Annotated[
        float,
        typer.Option(
            min=1, max=36_500, help="Proofs received longer ago than this (1 to 36500) are retired."
        ),
    ],
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete them instead of moving them to the archive.")
    ] = False,
) -> None:
    """Move old proofs and their results to the archive tables (or delete them), on a
    running verifier or a stopped one. Chain heads, history fixes and the fork index are
    kept whole, and so is every proof an alert names."""
    import time  # noqa: PLC0415

    from geoattest.verifier.store import SqlStore  # noqa: PLC0415

    cutoff_ns = time.time_ns() - int(older_than_days * 86_400 * SECOND_NS)
    store = SqlStore.open(_existing_database(db))
    try:
        retired = store.retain(cutoff_ns, archive=not delete)
    finally:
        store.close()
    typer.echo(f"{retired} proof(s) {'deleted' if delete else 'archived'}")
