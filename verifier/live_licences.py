"""Export licences as live data: the verifier's store holds the licence in force for each
device, and every appraisal reads it with the device.

An operator narrows, widens, renews or withdraws a licence by changing the licences file
and applying it (``geoattest verifier licences apply``, or SIGHUP to ``geoattest verifier
serve``), or through :meth:`LiveLicences.change`. Each change that alters a licence's terms
stores a new version in one transaction; the next proof of that device, on whichever worker
process appraises it, is judged against that version, and its result token names it
(``ear.x-geoattest.licence``). Nothing else is re-read: no re-enrolment, no restart.

A file that does not load (malformed, an undefined region) changes nothing: the licences in
force stay as they were. A licence the file no longer names is withdrawn, never dropped, so
its device cannot fall back to an older licence. Withdrawing the licence of an enrolled
device stores a ``LICENCE_WITHDRAWN`` alert: results signed before it stay valid until
their expiry (at most the stale window), and relying parties learn of the withdrawal from
the alert.

Example::

    live = LiveLicences(store)
    live.apply(Licences.load(path, policy.has_region), now_ns)   # the file, as versions
    live.change(replace(live.in_force("dev-1", now_ns), region="DE"), now_ns)  # narrow
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from geoattest.errors import EvidenceError, Reason
from geoattest.verifier.licences import ExportLicence, Licences
from geoattest.verifier.pipeline import AlertKind
from geoattest.verifier.store import Alert, Store


class LiveLicences:
    """The licences in force, kept in the verifier's store; safe to share between
    processes (each change is one transaction)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def load(
        cls, store: Store, path: Path, has_region: Callable[[str], bool], now_ns: int
    ) -> LiveLicences:
        """The store's licences, with the licences file at ``path`` applied first.

        Raises:
            ConfigError: the file does not load; nothing was changed.
        """
        live = cls(store)
        live.apply(Licences.load(path, has_region), now_ns)
        return live

    def apply(
        self, licences: Licences, now_ns: int, *, if_file_changed: bool = False
    ) -> list[ExportLicence]:
        """Make a licences file's licences the ones in force: changed ones get a new
        version, ones it no longer names are withdrawn. With ``if_file_changed`` (a
        replica's start and reload), only what the file changed since the file applied
        last, device by device: what the admin API changed since stays in force for every
        device whose entry the file left alone. Returns the new versions."""
        return self._store.change_licences(
            list(licences.by_device.values()),
            now_ns,
            withdraw_others=True,
            alert_for=_withdrawal_alert(now_ns),
            file_digest=licences.digest(),
            if_file_changed=if_file_changed,
        )

    def change(self, licence: ExportLicence, now_ns: int) -> ExportLicence:
        """Put one licence in force (new terms, a renewal, a withdrawal); returns the
        version now in force (unchanged if the terms are the same)."""
        changed = self._store.change_licences(
            [licence], now_ns, withdraw_others=False, alert_for=_withdrawal_alert(now_ns)
        )
        return changed[0] if changed else self.current(licence.device_id)

    def withdraw(self, device_id: str, now_ns: int) -> ExportLicence:
        """Withdraw the device's licence.

        Raises:
            EvidenceError: NO_LICENCE: the store holds none for the device.
        """
        return self.change(replace(self.current(device_id), withdrawn=True), now_ns)

    def current(self, device_id: str) -> ExportLicence:
        """The device's licence as it stands, in force or not.

        Raises:
            EvidenceError: NO_LICENCE: the store holds none for the device.
        """
        licence = self._store.licence(device_id)
        if licence is None:
            raise EvidenceError(Reason.NO_LICENCE, f"no licence names {device_id[:128]}")
        return licence

    def in_force(self, device_id: str, now_ns: int) -> ExportLicence:
        """The device's licence, if it licenses the device at ``now_ns``.

        Raises:
            EvidenceError: NO_LICENCE, LICENCE_WITHDRAWN or LICENCE_EXPIRED.
        """
        licence = self.current(device_id)
        licence.check_in_force(now_ns)
        return licence


def _withdrawal_alert(now_ns: int) -> Callable[[ExportLicence], Alert]:
    def alert_for(licence: ExportLicence) -> Alert:
        return Alert(
            alert_id=uuid.uuid4().hex,
            device_id=licence.device_id,
            kind=AlertKind.LICENCE_WITHDRAWN,
            reason=Reason.LICENCE_WITHDRAWN.value,
            detail=f"licence {licence.name} withdrawn (version {licence.version})",
            time_ns=now_ns,
        )

    return alert_for
