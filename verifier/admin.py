"""What an operator changes while the verifier runs: licences, revocations, the landmark
registry and exclusions; each validated, recorded in the audit log, and in force from the
next proof on every worker of every replica on the database.

Every change is one transaction of the store, which every replica reads before each batch:
licences are :class:`~geoattest.verifier.live_licences.LiveLicences` versions (as
``verifier licences apply`` makes), exclusions and their lifting are the store's (as the
peer audit and ``verifier lift`` make), and revocations and registrations are the store's
rows, added to what the operator's files (the registry and the revocation list, which
``landmark register``, ``device revoke`` and ``landmark revoke`` edit on one host) say
(:class:`~geoattest.verifier.store.StoredTrust`). What a file says, the admin API cannot
undo: restoring a device the revocation list file revokes is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from geoattest.crypto import VerifyingKey
from geoattest.errors import (
    ConfigError,
    EvidenceError,
    GeoattestError,
    LandmarkKeyReusedError,
    Reason,
)
from geoattest.pki import LandmarkRecord, LandmarkRegistry, check_device_id
from geoattest.pki.names import MAX_ID_LENGTH, check_note
from geoattest.verifier.audit_log import admin_record
from geoattest.verifier.licences import ExportLicence, check_valid_until
from geoattest.verifier.live_licences import LiveLicences
from geoattest.verifier.operator_files import OperatorFiles
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.service import VerifierService, with_stored_landmarks
from geoattest.verifier.store import Alert, Store


class AdminError(GeoattestError):
    """An admin request refused: invalid, in conflict with what is in force, or naming
    what is not there."""


def _check_why(why: str) -> None:
    """Raises: AdminError: ``admin.invalid``, a reason that is not a short printable note."""
    _invalid(lambda: check_note(why, "why"))


def _invalid(check: Callable[[], object]) -> None:
    """Run a validation from the core; its ConfigError becomes ``admin.invalid``."""
    try:
        check()
    except ConfigError as exc:
        raise AdminError(Reason.ADMIN_INVALID, exc.detail) from exc


class Admin:
    """The operations of the admin API over one worker's service, store and files."""

    def __init__(
        self,
        service: VerifierService,
        store: Store,
        files: OperatorFiles,
        has_region: Callable[[str], bool],
    ) -> None:
        self._service = service
        self._store = store
        self._files = files
        self._has_region = has_region
        self._licences = LiveLicences(store)

    def _changed(self, who: str, action: str, now_ns: int, **detail: Any) -> None:
        """A revocation or registration committed: this process holds it from now (a
        device's calls here are refused at once; other processes follow at their next
        batch or probe), and the audit log records it."""
        self._service.in_force()
        self._record(who, action, now_ns, **detail)

    def _record(self, who: str, action: str, now_ns: int, **detail: Any) -> None:
        if self._service.audit is not None:
            self._service.audit.append(
                [admin_record(who=who, action=action, detail=detail)], now_ns
            )

    # --- licences -------------------------------------------------------------------

    def set_licence(
        self, who: str, *, device_id: str, region: str, valid_until_ns: int, name: str, now_ns: int
    ) -> str:
        """Raises: AdminError: an unknown region, a bad id or name, an expiry in the past."""
        _invalid(lambda: check_device_id(device_id))
        _invalid(lambda: check_note(name, "licence name", MAX_ID_LENGTH))
        if not self._has_region(region):
            raise AdminError(
                Reason.ADMIN_INVALID, f"region {region[:64]!r} is not in the verifier's policy"
            )
        if valid_until_ns <= now_ns:
            raise AdminError(Reason.ADMIN_INVALID, "the licence would expire before it starts")
        _invalid(lambda: check_valid_until(valid_until_ns))
        current = self._store.licence(device_id)
        licence = ExportLicence(device_id, region, valid_until_ns, licence_id=name)
        if current is not None:
            licence = replace(
                current,
                region=region,
                valid_until_ns=valid_until_ns,
                licence_id=name or current.licence_id,
                withdrawn=False,
            )
        in_force = self._licences.change(licence, now_ns)
        self._record(
            who,
            "set_licence",
            now_ns,
            device_id=device_id,
            region=region,
            valid_until_ns=valid_until_ns,
            version=in_force.version,
        )
        return f"{device_id}: licence {in_force.name} version {in_force.version}, region {region}"

    def withdraw_licence(self, who: str, device_id: str, why: str, now_ns: int) -> str:
        """Raises: AdminError: a bad reason, or the device has no licence."""
        _check_why(why)
        try:
            withdrawn = self._licences.withdraw(device_id, now_ns)
        except EvidenceError as exc:
            raise AdminError(Reason.ADMIN_NOT_FOUND, exc.detail) from exc
        self._record(
            who, "withdraw_licence", now_ns, device_id=device_id, why=why, version=withdrawn.version
        )
        return f"{device_id}: licence {withdrawn.name} withdrawn (version {withdrawn.version})"

    # --- devices --------------------------------------------------------------------

    def revoke_device(self, who: str, device_id: str, why: str, now_ns: int) -> str:
        """Revoke the device, and raise a ``DEVICE_REVOKED`` alert with it: results signed
        before stay valid until they expire, so relying parties must hear of it.

        Raises: AdminError: a bad id, or already revoked (no alert then).
        """
        _invalid(lambda: check_device_id(device_id))
        _check_why(why)
        if self._files.load_revocations().device_revoked(device_id):
            raise AdminError(
                Reason.ADMIN_CONFLICT, f"device {device_id} is already revoked (revocation list)"
            )
        try:
            self._store.revoke_device(
                device_id,
                now_ns,
                by=who,
                why=why,
                alert=Alert(
                    alert_id=uuid.uuid4().hex,
                    device_id=device_id,
                    kind=AlertKind.DEVICE_REVOKED,
                    reason=Reason.REVOKED_DEVICE.value,
                    detail=f"revoked by {who}" + (f": {why}" if why else ""),
                    time_ns=now_ns,
                ),
            )
        except ConfigError as exc:
            raise AdminError(Reason.ADMIN_CONFLICT, exc.detail) from exc
        self._changed(who, "revoke_device", now_ns, device_id=device_id, why=why)
        return f"device {device_id} revoked"

    def restore_device(self, who: str, device_id: str, why: str, now_ns: int) -> str:
        """Raises: AdminError: the device is not revoked, or by the revocation list (this
        host's file or a newer one a replica followed, which only a newer file lifts)."""
        _check_why(why)
        listed = self._files.load_revocations().merged_with(self._store.trust().revocation_list)
        if listed.device_revoked(device_id):
            raise AdminError(
                Reason.ADMIN_CONFLICT,
                f"device {device_id[:64]} is revoked by revocation list version"
                f" {listed.version}: a newer list lifts it",
            )
        try:
            self._store.restore_device(device_id, now_ns, by=who, why=why)
        except ConfigError as exc:
            raise AdminError(Reason.ADMIN_NOT_FOUND, exc.detail) from exc
        self._changed(who, "restore_device", now_ns, device_id=device_id, why=why)
        return f"device {device_id} restored"

    # --- landmarks ------------------------------------------------------------------

    def register_landmark(
        self,
        who: str,
        *,
        landmark_id: str,
        operator: str,
        latitude: float,
        longitude: float,
        public_key_der: bytes,
        name: str,
        now_ns: int,
    ) -> str:
        """Raises: AdminError: a bad id, site or key, an id already registered;
        LandmarkKeyReusedError: the key is registered under another id."""
        _invalid(lambda: check_note(name, "landmark name", MAX_ID_LENGTH))
        try:
            key = VerifyingKey.from_der(public_key_der)
        except EvidenceError as exc:
            raise AdminError(Reason.ADMIN_INVALID, f"public key: {exc.detail}") from exc
        record = LandmarkRecord(landmark_id, latitude, longitude, key, name, operator)
        registry = self._registry()
        if registry.get(landmark_id) is not None:
            raise AdminError(Reason.ADMIN_CONFLICT, f"landmark {landmark_id} is already registered")
        try:
            registry.add(record)  # id, operator, site, and the key once across file and store
        except LandmarkKeyReusedError:
            raise  # its own stable reason: one key is one landmark
        except ConfigError as exc:
            raise AdminError(Reason.ADMIN_INVALID, exc.detail) from exc
        try:
            self._store.register_landmark(record, now_ns, by=who)
        except LandmarkKeyReusedError:
            raise
        except ConfigError as exc:  # another replica registered the id meanwhile
            raise AdminError(Reason.ADMIN_CONFLICT, exc.detail) from exc
        self._changed(
            who,
            "register_landmark",
            now_ns,
            landmark_id=landmark_id,
            operator=operator,
            latitude=latitude,
            longitude=longitude,
            key_id=key.key_id,
        )
        return f"landmark {landmark_id} ({operator}) registered, key {key.key_id[:16]}"

    def _registry(self) -> LandmarkRegistry:
        """The landmarks of the registry file and of the store, as one registry."""
        return LandmarkRegistry(
            with_stored_landmarks(self._files.load_registry(), self._store.trust().landmarks)
        )

    def _registered(self, landmark_id: str) -> LandmarkRecord:
        record = self._registry().get(landmark_id)
        if record is None:
            raise AdminError(
                Reason.ADMIN_NOT_FOUND, f"landmark {landmark_id[:64]} is not registered"
            )
        return record

    def revoke_landmark(self, who: str, landmark_id: str, why: str, now_ns: int) -> str:
        """Revoke the landmark and its key. Raises: AdminError: not registered, or revoked."""
        _check_why(why)
        key_id = self._registered(landmark_id).verifying_key.key_id
        if self._files.load_revocations().landmark_revoked(landmark_id):
            raise AdminError(
                Reason.ADMIN_CONFLICT,
                f"landmark {landmark_id} is already revoked (revocation list)",
            )
        try:
            self._store.revoke_landmark(landmark_id, key_id, now_ns, by=who, why=why)
        except ConfigError as exc:
            raise AdminError(Reason.ADMIN_CONFLICT, exc.detail) from exc
        self._changed(
            who, "revoke_landmark", now_ns, landmark_id=landmark_id, key_id=key_id, why=why
        )
        return f"landmark {landmark_id} and its key revoked"

    def exclude_landmark(self, who: str, landmark_id: str, why: str, now_ns: int) -> str:
        """Raises: AdminError: not registered, or already excluded."""
        _check_why(why)
        self._registered(landmark_id)
        try:
            self._store.exclude_landmark(landmark_id, now_ns, by=who, why=why)
        except ConfigError as exc:
            raise AdminError(Reason.ADMIN_CONFLICT, exc.detail) from exc
        self._record(who, "exclude_landmark", now_ns, landmark_id=landmark_id, why=why)
        return f"landmark {landmark_id} excluded"

    def lift_exclusion(self, who: str, landmark_id: str, why: str, now_ns: int) -> str:
        """Raises: AdminError: the landmark is not excluded."""
        _check_why(why)
        try:
            self._store.lift_exclusion(landmark_id, now_ns, by=who, why=why)
        except ConfigError as exc:
            raise AdminError(Reason.ADMIN_NOT_FOUND, exc.detail) from exc
        self._record(who, "lift_exclusion", now_ns, landmark_id=landmark_id, why=why)
        return f"landmark {landmark_id}: exclusion lifted by {who}"
