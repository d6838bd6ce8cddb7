"""Fault domains: a landmark counts by its operator and its site, never by its id.

The properties hold for any bounds an honest chip could produce (every disk holds the
chip) and any registry: presenting one landmark's measurement again under more ids or
keys of its operator, or from its site, never adds a fault domain, so it never helps a
proof meet the quorum and never makes the verdict more permissive; and leaving out a
whole domain is what ``landmark_faults`` means.
"""

from __future__ import annotations

import math
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.crypto import KeySigner
from geoattest.geo import build_policy, circle_region
from geoattest.geo.sphere import distance_km
from geoattest.pki import LandmarkRecord, RevocationList
from geoattest.verdict import KM_PER_NS_OF_RTT, LandmarkBound, RegionAppraiser, Verdict
from geoattest.verifier.pipeline import (
    SAME_SITE_KM,
    PipelineConfig,
    ProofAppraiser,
    fault_domains,
    survive_faults,
)

CENTRE = (50.11, 8.68)
REGION = build_policy("faults", 1, [circle_region("FRA", *CENTRE, 300)]).appraiser()


def _verdict(bounds: tuple[LandmarkBound, ...], operators: dict[str, str], faults: int) -> Verdict:
    appraiser: RegionAppraiser = REGION
    return survive_faults(
        appraiser,
        appraiser.appraise(bounds, "FRA"),
        fault_domains(bounds, operators),
        "FRA",
        faults,
    ).verdict


@st.composite
def honest_proofs(draw: st.DrawFn) -> tuple[tuple[LandmarkBound, ...], dict[str, str]]:
    """Bounds around a chip near Frankfurt (each at least the light floor to it) from
    landmarks of a few operators."""
    chip = (CENTRE[0] + draw(st.floats(-1, 1)), CENTRE[1] + draw(st.floats(-1, 1)))
    count = draw(st.integers(2, 5))
    bounds, operators = [], {}
    for i in range(count):
        site = (CENTRE[0] + draw(st.floats(-2, 2)), CENTRE[1] + draw(st.floats(-2, 2)))
        floor_km = float(distance_km(*chip, *site)) * 1.01 + 1.0
        slack_km = draw(st.floats(0, 200))
        rtt_ns = math.ceil((floor_km + slack_km) / KM_PER_NS_OF_RTT)
        landmark_id = f"lm-{i}"
        bounds.append(LandmarkBound(landmark_id, *site, rtt_ns))
        operators[landmark_id] = f"op-{draw(st.integers(0, count - 1))}"
    return tuple(bounds), operators


@settings(max_examples=60)
@given(
    honest_proofs(),
    st.data(),
    st.booleans(),
    st.integers(1, 3),
    st.integers(0, 2),
)
def test_another_id_for_a_landmark_never_adds_a_domain_nor_permits_more(
    proof: tuple[tuple[LandmarkBound, ...], dict[str, str]],
    data: st.DataObject,
    same_operator: bool,
    copies: int,
    faults: int,
) -> None:
    """One landmark's measurement presented again under ``copies`` new ids: of its own
    operator, or at its own site under operators of any name (keys on one host)."""
    bounds, operators = proof
    original = data.draw(st.sampled_from(bounds))
    split = list(bounds)
    split_operators = dict(operators)
    for n in range(copies):
        twin = f"{original.landmark_id}-twin-{n}"
        split.append(
            LandmarkBound(twin, original.latitude, original.longitude, original.rtt_min_ns)
        )
        split_operators[twin] = operators[original.landmark_id] if same_operator else f"shell-{n}"
    assert len(fault_domains(tuple(split), split_operators)) == len(
        fault_domains(bounds, operators)
    )
    if _verdict(tuple(split), split_operators, faults) is Verdict.ALLOWED:
        assert _verdict(bounds, operators, faults) is Verdict.ALLOWED


@settings(max_examples=60)
@given(honest_proofs(), st.integers(1, 2))
def test_allowed_survives_leaving_out_any_f_operators(
    proof: tuple[tuple[LandmarkBound, ...], dict[str, str]], faults: int
) -> None:
    """What the verdict promises, checked from outside: with any ``faults`` operators'
    bounds all removed, the rest still prove the chip inside."""
    bounds, operators = proof
    if _verdict(bounds, operators, faults) is not Verdict.ALLOWED:
        return
    names = sorted(set(operators.values()))
    assert len(names) > faults
    for left_out in _subsets(names, faults):
        kept = tuple(b for b in bounds if operators[b.landmark_id] not in left_out)
        assert REGION.appraise(kept, "FRA").verdict is Verdict.ALLOWED


SPELLINGS = {
    "case": str.upper,
    "decomposed": lambda name: unicodedata.normalize("NFD", name),
    "full-width": lambda name: "".join(
        chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name
    ),
    "spacing": lambda name: "  " + name.replace(" ", " \t ") + " ",
}


@settings(max_examples=60)
@given(honest_proofs(), st.data(), st.sampled_from(sorted(SPELLINGS)), st.integers(1, 2))
def test_one_operator_spelt_another_way_is_one_operator(
    proof: tuple[tuple[LandmarkBound, ...], dict[str, str]],
    data: st.DataObject,
    spelling: str,
    faults: int,
) -> None:
    """A landmark's measurement presented again under a new id, its operator's name
    spelt another way (letter case, decomposed accents, full-width letters, spacing):
    still one domain, so never a more permissive verdict. The registry keeps names as
    written; the two spellings once counted as two operators."""
    bounds, plain = proof
    operators = {lm: f"Société Réseau {name}" for lm, name in plain.items()}
    original = data.draw(st.sampled_from(bounds))
    # 5 degrees north, far from every site; its disk holds the original's.
    wider_ns = original.rtt_min_ns + math.ceil(560.0 / KM_PER_NS_OF_RTT)
    twin = LandmarkBound("twin", original.latitude + 5.0, original.longitude, wider_ns)
    respelt = SPELLINGS[spelling](operators[original.landmark_id])
    assert respelt != operators[original.landmark_id]
    split, split_operators = (*bounds, twin), {**operators, "twin": respelt}
    assert len(fault_domains(split, split_operators)) == len(fault_domains(bounds, operators))
    if _verdict(split, split_operators, faults) is Verdict.ALLOWED:
        assert _verdict(bounds, operators, faults) is Verdict.ALLOWED


def _subsets(names: list[str], size: int) -> list[set[str]]:
    if size == 0:
        return [set()]
    return [
        {name, *rest} for i, name in enumerate(names) for rest in _subsets(names[i + 1 :], size - 1)
    ]


def test_sites_closer_than_the_same_site_distance_are_one_domain_and_chain() -> None:
    step = SAME_SITE_KM * 0.9 / 111.2  # degrees of latitude, just under the distance
    bounds = tuple(
        LandmarkBound(f"lm-{i}", CENTRE[0] + i * step, CENTRE[1], 100_000) for i in range(3)
    )
    operators = {b.landmark_id: b.landmark_id for b in bounds}
    assert len(fault_domains(bounds, operators)) == 1
    apart = (bounds[0], LandmarkBound("lm-far", CENTRE[0] + 3 * step, CENTRE[1], 100_000))
    assert len(fault_domains(apart, {})) == 2


def test_too_few_domains_for_the_faults_is_inconclusive_never_a_weaker_policy() -> None:
    """Two receipts of one operator that would each alone prove the chip inside."""
    bounds = (
        LandmarkBound("lm-a", *CENTRE, 1_000),
        LandmarkBound("lm-b", CENTRE[0] + 0.01, CENTRE[1], 1_000),
    )
    appraisal = REGION.appraise(bounds, "FRA")
    assert appraisal.verdict is Verdict.ALLOWED
    judged = survive_faults(
        REGION, appraisal, fault_domains(bounds, {"lm-a": "op", "lm-b": "op"}), "FRA", 1
    )
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "span only 1 fault domain(s)" in judged.detail


_LANDMARK_KEYS = [KeySigner.generate().verifying_key for _ in range(6)]


@settings(max_examples=60)
@given(st.data())
def test_the_appraisers_memo_of_fault_domains_is_fault_domains(data: st.DataObject) -> None:
    """The appraiser keeps each sequence of landmarks' grouping: for any registry (shared
    operators, shared and nearby sites) and any sequences of its landmarks, seen once or
    again with other round trips, it groups exactly as :func:`fault_domains` does."""
    records: list[LandmarkRecord] = []
    for i, key in enumerate(_LANDMARK_KEYS):
        if records and data.draw(st.booleans()):
            near = data.draw(st.sampled_from(records))
            site = (near.latitude + data.draw(st.floats(0, 2e-3)), near.longitude)
        else:
            site = (
                CENTRE[0] + data.draw(st.floats(-2, 2)),
                CENTRE[1] + data.draw(st.floats(-2, 2)),
            )
        operator = f"op-{data.draw(st.integers(0, 3))}"
        records.append(LandmarkRecord(f"lm-{i}", *site, key, operator=operator))
    appraiser = ProofAppraiser(
        PipelineConfig(quorum=1, landmark_faults=0), records, RevocationList(), REGION
    )
    operators = {record.landmark_id: record.operator for record in records}
    for _ in range(4):
        chosen = data.draw(st.permutations(records))[: data.draw(st.integers(1, len(records)))]
        for _ in range(2):
            bounds = tuple(
                LandmarkBound(
                    r.landmark_id, r.latitude, r.longitude, data.draw(st.integers(1, 10**7))
                )
                for r in chosen
            )
            assert appraiser._fault_domains(bounds) == fault_domains(bounds, operators)
