"""The result token: a JWS compact serialisation any JOSE library accepts."""

from __future__ import annotations

import jwt
import pytest

from geoattest.errors import Reason
from geoattest.pki import ResultKey
from geoattest.verdict import Verdict
from geoattest.verifier.pipeline import Appraisal
from geoattest.verifier.results import ResultSigner, ear_status, status_claims, trust_vector

SECOND = 1_000_000_000


def test_the_token_is_what_pyjwt_writes_and_verifies_under_the_jwks() -> None:
    key = ResultKey.generate()
    signer = ResultSigner(key, verifier_id="verifier-1", policy_id="policy:region/p@1")
    appraisal = Appraisal(Verdict.ALLOWED, device_id="chip-1", counter=3)
    token = signer.sign(appraisal, expires_ns=2_000 * SECOND, now_ns=1_000 * SECOND)
    header, claims, _ = token.split(".")
    # The header PyJWS itself would write for this key: same bytes, same order.
    written = jwt.PyJWS().encode(
        b"{}", key.private_key, algorithm="ES256", headers={"kid": key.key_id}
    )
    assert header == written.split(".")[0]
    public = jwt.PyJWK(signer.jwks()["keys"][0]).key
    decoded = jwt.decode(
        token, public, algorithms=["ES256"], issuer="verifier-1", options={"verify_exp": False}
    )
    assert decoded["iat"] == 1_000
    assert decoded["exp"] == 2_000
    submod = decoded["submods"]["chip-chip-1"]
    assert submod["ear.x-geoattest.verdict"] == "ALLOWED"
    assert submod["ear.status"] == "affirming"
    # Each signature is fresh (ECDSA's nonce), and a changed byte fails.
    assert signer.sign(appraisal, expires_ns=2_000 * SECOND, now_ns=1_000 * SECOND) != token
    tampered = f"{header}.{claims[:-2]}AA.{token.split('.')[2]}"
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(tampered, public, algorithms=["ES256"], options={"verify_exp": False})


@pytest.mark.parametrize("verdict", list(Verdict))
def test_the_status_claims_kept_per_verdict_and_reason_are_worked_out_afresh(
    verdict: Verdict,
) -> None:
    """Each pair's status and trust vector are kept once worked out: asked again, or
    worked out from scratch, they are the same; REJECTED speaks against the reason's claim
    and never affirms."""
    for reason in [None, *Reason]:
        status, vector = status_claims(verdict, reason)
        assert status_claims(verdict, reason) == (status, vector)
        expected = trust_vector(verdict, reason)
        assert vector == expected
        assert status == ear_status(verdict, expected).value
        if verdict is not Verdict.ALLOWED:
            assert status != "affirming"
