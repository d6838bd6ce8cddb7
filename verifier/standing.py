"""Whether a device's last verdict still stands, as DeviceStatus, the console and the
metrics report it.

A verdict is about one instant (its evidence's landmark time) under one licence version and
one set of trusted landmarks. An operator's later action can take it away without any new
proof: the licence withdrawn, expired or changed, the device revoked (even if restored
since), a landmark it rests on revoked or excluded (even if the exclusion was lifted since),
or registered now under another key or at another site than the receipt was judged by.
Its result token expires at the stale window, so staleness takes it away too. The rule,
which the stateful test in ``tests/unit/verifier/test_standing.py`` checks over any sequence
of operator actions: **no status reports a current ALLOWED unless the licence version it
was judged under is the one in force, in force now, and nothing stored since contradicts
it**. Only the next accepted proof gives a device a current verdict again.

What is checked against the replica's registry file is what it says now. The revocation
list is the newest any replica followed from its host's file; what each newer list revokes
or lifts is journalled in the store, as the changes made through the admin API or the peer
audits are (:data:`~geoattest.verifier.store.CONTRADICTING`), so a revocation lifted since
is remembered.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from geoattest.pki import LandmarkRecord, RevocationList
from geoattest.verifier.licences import ExportLicence
from geoattest.verifier.store import DeviceState, DeviceSummary, TrustChange, VerdictLandmark


class LicenceState(StrEnum):
    """The licence a device holds now."""

    IN_FORCE = "IN_FORCE"
    WITHDRAWN = "WITHDRAWN"
    EXPIRED = "EXPIRED"
    NONE = "NONE"
    """The verifier holds no licence for the device."""


class Standing(StrEnum):
    """Whether the last verdict stands and, if not, the first thing that took it away."""

    STANDS = "STANDS"
    """Judged under the licence in force, which is in force now; nothing contradicts it."""
    NO_VERDICT = "NO_VERDICT"
    """No proof accepted yet."""
    DEVICE_REVOKED = "DEVICE_REVOKED"
    """The device is revoked, or was revoked after the verdict (and restored since)."""
    LICENCE_WITHDRAWN = "LICENCE_WITHDRAWN"
    LICENCE_EXPIRED = "LICENCE_EXPIRED"
    LICENCE_CHANGED = "LICENCE_CHANGED"
    """The licence in force is another version than the one judged (narrowed, widened,
    renewed, or none held), or the verdict names none (stored before versions were)."""
    LANDMARK_UNTRUSTED = "LANDMARK_UNTRUSTED"
    """A landmark the verdict rests on is no longer trusted (revoked or excluded, or no
    longer registered under the key that signed its receipt at the site its disk was drawn
    around), or was revoked or excluded after it (lifted since), or the proof's receipts
    are no longer stored."""
    STALE = "STALE"
    """The verdict's evidence is older than the stale window: its result has expired."""


def licence_state(licence: ExportLicence | None, now_ns: int) -> LicenceState:
    if licence is None or licence.version == 0:
        return LicenceState.NONE
    if licence.withdrawn:
        return LicenceState.WITHDRAWN
    if licence.valid_until_ns <= now_ns:
        return LicenceState.EXPIRED
    return LicenceState.IN_FORCE


def standing(
    summary: DeviceSummary,
    revocations: RevocationList,
    landmarks: Iterable[LandmarkRecord],
    *,
    stale_cutoff_ns: int | None,
    now_ns: int,
) -> Standing:
    """Where ``summary``'s last verdict stands at ``now_ns``, judged against the
    revocations (exclusions included) and the landmarks in force: the operator's files
    with the store's trust added. ``stale_cutoff_ns`` None (a reader that does not know the
    verifier's cadence, the console): stale as the verifier's sweep last marked it."""
    if summary.head is None or summary.last_verdict is None:
        return Standing.NO_VERDICT
    device = summary.device.record
    contradicted = {record.change for record in summary.contradicted_by}
    if revocations.device_revoked(device.device_id) or TrustChange.DEVICE_REVOKED in contradicted:
        return Standing.DEVICE_REVOKED
    state = licence_state(device.licence, now_ns)
    if state is LicenceState.WITHDRAWN:
        return Standing.LICENCE_WITHDRAWN
    if state is LicenceState.EXPIRED:
        return Standing.LICENCE_EXPIRED
    if (
        state is LicenceState.NONE
        or device.licence is None
        or device.licence.version != summary.verdict_licence_version
    ):
        return Standing.LICENCE_CHANGED
    if (
        summary.device.state is DeviceState.STALE
        if stale_cutoff_ns is None
        else summary.last_evidence_time_ns < stale_cutoff_ns
    ):
        return Standing.STALE
    if (
        summary.verdict_landmarks is None
        or contradicted
        or not _trusted(revocations, landmarks, summary.verdict_landmarks)
    ):
        return Standing.LANDMARK_UNTRUSTED
    return Standing.STANDS


def _trusted(
    revocations: RevocationList,
    landmarks: Iterable[LandmarkRecord],
    judged: tuple[VerdictLandmark, ...],
) -> bool:
    """Every landmark the verdict rests on is registered now under the key that signed its
    receipt and at the site its disk was drawn around, and neither that id nor that key is
    revoked or excluded: a key replaced (rotated, revoked by key alone) or a site moved
    takes the verdict away, as the registry no longer vouches for what it was judged on."""
    registered = {
        record.landmark_id: (record.verifying_key.key_id, record.latitude, record.longitude)
        for record in landmarks
    }
    return all(
        registered.get(landmark.landmark_id)
        == (landmark.key_id, landmark.latitude, landmark.longitude)
        and not revocations.landmark_revoked(landmark.landmark_id, landmark.key_id)
        for landmark in judged
    )
