"""Typed errors with stable reason codes.

Every check that can fail has its own :class:`Reason`. The values are stable strings
(``family.check``) that appear in gRPC status details, stored evidence, alerts and
attestation results, so tooling may match on them. Two error families mirror the two
ways input can be wrong: :class:`WireError` (bytes that do not decode into a message
of the expected shape) and :class:`EvidenceError` (a well-formed message that fails a
cryptographic, identity, freshness or protocol check). :class:`ConfigError` covers
operator input: files, keys, policies and command-line values.

Every error geoattest raises on purpose is a :class:`GeoattestError` with a reason; the
other modules derive their errors from these classes, never from a builtin exception
(a test checks), so one ``except GeoattestError`` sees them all and the verifier's
transport can answer each with the status code its reason maps to.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why something was refused. Values are stable; never reuse or rename one."""

    # --- wire ---
    MALFORMED_MESSAGE = "wire.malformed_message"
    """The bytes do not decode as the expected protobuf message."""
    OVERSIZED_MESSAGE = "wire.oversized_message"
    """The message exceeds the size limit for its kind."""
    MISSING_FIELD = "wire.missing_field"
    """A required field is empty or has the wrong length."""
    OUT_OF_RANGE = "wire.out_of_range"
    """A number in the message (a counter, a time, a round trip) is beyond what the
    verifier records (``2**63 - 1``): no genuine agent or landmark reaches it."""
    BAD_ENVELOPE = "envelope.malformed"
    """The signed envelope is not well formed (no payload type, no signature, ...)."""
    UNKNOWN_PAYLOAD_TYPE = "envelope.unknown_payload_type"
    """The envelope names a payload type geoattest does not define."""
    WRONG_PAYLOAD_TYPE = "envelope.wrong_payload_type"
    """A known payload type, but not the one this place expects: a cross-purpose replay."""
    UNKNOWN_KEY = "envelope.unknown_key"
    """The envelope's key id does not name the key expected to sign it."""
    BAD_SIGNATURE = "envelope.bad_signature"
    """The signature does not verify over PAE(payload_type, payload)."""

    # --- identity / PKI ---
    UNKNOWN_DEVICE = "device.unknown"
    """The device id is not enrolled."""
    ALREADY_ENROLLED = "device.already_enrolled"
    """A different certificate is already enrolled under this device id."""
    BAD_CHAIN = "device.bad_chain"
    """The device certificate does not chain to a trusted manufacturer root."""
    REVOKED_DEVICE = "device.revoked"
    """The device (its certificate serial or id) is on the revocation list."""
    DEVICE_MISMATCH = "device.mismatch"
    """The message names a device other than the one whose key signed it."""
    BAD_POSSESSION = "device.bad_possession"
    """The enrolment was not signed by the key in the presented certificate."""
    NO_LICENCE = "device.no_licence"
    """No export licence names this device, so there is no region to check it against."""
    LICENCE_EXPIRED = "device.licence_expired"
    """The device's export licence has expired."""
    LICENCE_WITHDRAWN = "device.licence_withdrawn"
    """The operator withdrew the device's export licence: no place is licensed."""

    # --- proof chain ---
    COUNTER_NOT_INCREASING = "proof.counter_not_increasing"
    """The proof counter is not above the last accepted counter (rollback or replay)."""
    REPLAYED_PROOF = "proof.replayed"
    """The exact proof was already accepted."""
    FORK = "proof.fork"
    """Two different proofs name the same predecessor: the device key is in two places."""
    CHAIN_BROKEN = "proof.chain_broken"
    """The proof does not name the last accepted proof as its predecessor."""
    BAD_MEASUREMENT = "proof.bad_measurement"
    """The agent firmware measurement is not allowed by policy."""

    # --- receipts ---
    UNKNOWN_LANDMARK = "receipt.unknown_landmark"
    """The receipt names a landmark that is not registered."""
    REVOKED_LANDMARK = "receipt.revoked_landmark"
    """The receipt's landmark is revoked."""
    BAD_RECEIPT_SIGNATURE = "receipt.bad_signature"
    """The receipt's landmark signature does not verify."""
    RECEIPT_FOR_OTHER_DEVICE = "receipt.other_device"
    """The receipt was issued for another device."""
    BAD_TRANSCRIPT_SIGNATURE = "receipt.bad_transcript_signature"
    """The round transcript was not signed by this device's key."""
    TRANSCRIPT_MISMATCH = "receipt.transcript_mismatch"
    """The receipt's transcript, digest, round id or revealed secret do not agree."""
    STALE_RECEIPT = "receipt.stale"
    """The receipt is older than the freshness window allows, by landmark time."""
    FUTURE_RECEIPT = "receipt.future"
    """The receipt's landmark time is ahead of the verifier's clock beyond tolerance."""
    REPLAYED_RECEIPT = "receipt.replayed"
    """The receipt is not newer than those of the previous accepted proof."""
    DUPLICATE_LANDMARK = "receipt.duplicate_landmark"
    """Two receipts in one proof come from the same landmark."""
    QUORUM_NOT_MET = "receipt.quorum_not_met"
    """Fewer valid receipts than the policy requires."""
    CHALLENGE_REUSED = "receipt.challenge_reused"
    """A round's transcript repeats a challenge: the landmark's challenges were predictable,
    so an answer seen once could be replayed early by a helper next to the landmark."""

    # --- round (timed exchange) ---
    ROUND_UNEXPECTED_MESSAGE = "round.unexpected_message"
    """A datagram arrived that the round's current state does not accept."""
    ROUND_UNKNOWN = "round.unknown"
    """The datagram names a round this party does not hold."""
    ROUND_BAD_COMMIT = "round.bad_commit"
    """The revealed secret does not match the commitment."""
    ROUND_BAD_RESPONSE = "round.bad_response"
    """A response does not equal SHA-256(secret || challenge)."""
    ROUND_UNKNOWN_CHALLENGE = "round.unknown_challenge"
    """The landmark asked to sign a challenge this agent never answered."""
    ROUND_SECRET_REVEALED = "round.secret_revealed"
    """A challenge arrived after the agent revealed its secret."""
    ROUND_SECRET_REUSED = "round.secret_reused"
    """The randomness produced a round secret that was used before; never reuse r."""
    ROUND_TIMEOUT = "round.timeout"
    """The round did not finish in time."""
    ROUND_ABORTED = "round.aborted"
    """The other side aborted the round."""

    # --- transport ---
    UNREACHABLE = "transport.unreachable"
    """A peer (verifier, landmark) could not be reached; nothing was lost, try again."""
    UNKNOWN_REASON = "transport.unknown_reason"
    """The verifier refused with a reason code this client does not know (a newer
    verifier), or with none (a failure of the gRPC layer itself); the status code and
    the detail say more."""

    INTERNAL = "transport.internal"
    """The verifier failed in a way it does not expect (a bug): its log holds the
    traceback under the call's request id; the caller learns nothing of its internals."""

    # --- access (who may call what) ---
    WRONG_ROLE = "access.wrong_role"
    """The caller's certificate names a role that may not call this method."""
    NO_ROLE = "access.no_role"
    """The caller's certificate is trusted for TLS but names no role here (another
    party's certificate, a server certificate presented as a client)."""
    OTHER_DEVICE = "access.other_device"
    """A device asked to enrol, or submitted a proof for, a device other than itself."""
    PLAINTEXT_NOT_LOOPBACK = "access.plaintext_not_loopback"
    """Plaintext gRPC was asked for on an address that is not loopback; only TLS may
    leave the host."""

    # --- the admin API ---
    ADMIN_INVALID = "admin.invalid"
    """An admin request is not valid: an unknown region, a malformed id, coordinates off
    the globe, a key that does not load, a date in the past."""
    ADMIN_CONFLICT = "admin.conflict"
    """An admin request clashes with what is in force: an id already registered, a device
    already revoked."""
    ADMIN_NOT_FOUND = "admin.not_found"
    """An admin request names what is not there: a landmark not registered, a device not
    revoked, a landmark not excluded, a device without a licence."""

    # --- the verifier's audit log ---
    AUDIT_TAMPERED = "audit.tampered"
    """The audit log does not verify: an entry was altered, removed or reordered, or the
    log no longer matches a signed checkpoint (the detail names the first spot)."""
    AUDIT_BAD_CHECKPOINT = "audit.bad_checkpoint"
    """A checkpoint is not a signed note, or its signature does not verify under the
    verifier's key."""
    AUDIT_NOT_FOUND = "audit.not_found"
    """No entry within the checkpoint records what was asked for (a result token)."""

    # --- HTTP (the console and the metrics endpoints) ---
    NO_SUCH_PAGE = "http.not_found"
    """Nothing is served at the address asked for: no such page of the console (or no
    landmark under the id it names; a device that is not enrolled is ``device.unknown``),
    or a path other than ``/metrics`` at a metrics endpoint."""
    WRONG_METHOD = "http.wrong_method"
    """What is served at this address does not answer the request's HTTP method."""

    # --- verifier store ---
    STORE_CONFLICT = "store.conflict"
    """Other writers kept advancing the chains a batch was appraised against; nothing was
    stored, submit again."""
    STORE_UNAVAILABLE = "store.unavailable"
    """The verifier's database failed (locked past its timeout, an I/O error); nothing
    was stored, submit again."""
    STORE_SCHEMA = "store.schema"
    """The verifier's database holds a schema version this verifier does not run on:
    older (migrate it first) or newer (written by a newer verifier)."""

    # --- alerts ---
    ALERTS_OVERFLOW = "alerts.overflow"
    """An alert subscriber fell too far behind; its stream ended, subscribe again. No longer
    raised: a stream reads the stored alerts at its subscriber's pace."""

    # --- the agent's sealed state ---
    SEALED_ROLLED_BACK = "sealed.rolled_back"
    """The agent's sealed state is genuine but not the newest: its counter is not the
    monotonic counter's (an older copy put back, or a counter that went back)."""
    SEALED_EDITED = "sealed.edited"
    """The agent's sealed state does not authenticate under the device's sealing key (any
    changed byte, a truncated file, another slot's or another chip's state)."""
    SEALED_MISSING = "sealed.missing"
    """The agent's sealed state is gone although the monotonic counter says it was written."""

    # --- operator input ---
    BAD_CONFIG = "config.invalid"
    """A configuration value, file or key is missing or invalid."""
    LANDMARK_KEY_REUSED = "config.landmark_key_reused"
    """A landmark registry entry names a public key already registered under another
    landmark id: one key is one landmark, so it may not count twice."""
    KEY_EXPOSED = "config.key_exposed"
    """A private key file is readable by its group or by others: it may have been read, so
    it is not used until its owner makes it private (``chmod 600``) or replaces it."""

    # --- studies ---
    STUDY_UNVERIFIED = "study.unverified"
    """A fleet study failed its own checks (a diverted chip ALLOWED, a chip outside its
    disks, or a sampled verdict unlike the real pipeline's): a bug, never a finding."""


class GeoattestError(Exception):
    """Base of every error geoattest raises on purpose; carries a stable reason."""

    reason: Reason

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class WireError(GeoattestError):
    """Bytes that are not a well-formed message of the expected kind."""


class EvidenceError(GeoattestError):
    """A well-formed message failed a cryptographic, identity, freshness or protocol check."""


class RoundError(EvidenceError):
    """A timed round broke its rules; the round is void and nothing is signed for it."""


class SealedStateError(GeoattestError):
    """The agent's sealed state cannot be trusted: rolled back, edited or missing."""


class ConfigError(GeoattestError):
    """Operator input (a path, a key file, a policy, a flag) is unusable."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.BAD_CONFIG, detail)


class LandmarkKeyReusedError(ConfigError):
    """The landmark registry already holds this public key under another id."""

    def __init__(self, detail: str) -> None:
        GeoattestError.__init__(self, Reason.LANDMARK_KEY_REUSED, detail)


class KeyExposedError(ConfigError):
    """A private key file is group- or world-readable."""

    def __init__(self, detail: str) -> None:
        GeoattestError.__init__(self, Reason.KEY_EXPOSED, detail)


class AccessError(GeoattestError):
    """A caller may not do what it asked: its role, or another device's evidence."""


class PlaintextNotLoopbackError(ConfigError):
    """Plaintext gRPC asked for on an address that is not loopback."""

    def __init__(self, detail: str) -> None:
        GeoattestError.__init__(self, Reason.PLAINTEXT_NOT_LOOPBACK, detail)


class StudyError(GeoattestError):
    """A fleet study's own checks failed; its figures must not be used."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.STUDY_UNVERIFIED, detail)
