"""Reason codes are stable, unique and documented."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from geoattest.errors import ConfigError, EvidenceError, GeoattestError, Reason

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def test_reason_values_are_unique_and_namespaced():
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    assert all("." in v and v == v.lower() for v in values)


def test_every_reason_is_documented():
    text = DOC.read_text()
    missing = [r.value for r in Reason if f"`{r.value}`" not in text]
    assert missing == []


def test_errors_carry_their_reason_in_the_message():
    err = EvidenceError(Reason.FORK, "proof 7")
    assert isinstance(err, GeoattestError)
    assert str(err) == "proof.fork: proof 7"
    assert ConfigError("bad path").reason is Reason.BAD_CONFIG


ROOT = Path(__file__).resolve().parents[2]
ERRORS = ROOT / "src" / "geoattest" / "errors.py"
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


def builtin_exception_bases(source: str) -> list[str]:
    """``Class(Base)`` for every class in ``source`` deriving from a builtin exception."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            if name in BUILTIN_EXCEPTIONS:
                found.append(f"{node.name}({name})")
    return found


def project_modules() -> list[Path]:
    """Every module of the package, the agent and the verifier, each once (src/geoattest
    reaches attestor/ and verifier/ through links)."""
    roots = [ROOT / "src" / "geoattest", ROOT / "attestor", ROOT / "verifier"]
    return sorted({path.resolve() for root in roots for path in root.rglob("*.py")})


def test_the_rule_sees_builtin_bases_however_they_are_written():
    source = (
        "class A(Exception): ...\n"
        "class B(builtins.ValueError): ...\n"
        "class C(GeoattestError, RuntimeError): ...\n"
        "class D(GeoattestError): ...\n"
    )
    assert builtin_exception_bases(source) == ["A(Exception)", "B(ValueError)", "C(RuntimeError)"]


def test_every_error_class_derives_from_geoattest_error():
    """One taxonomy: only geoattest.errors subclasses a builtin exception; everything else
    derives from its classes, so every deliberate error carries a reason."""
    modules = project_modules()
    assert ERRORS in modules
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if path != ERRORS and (found := builtin_exception_bases(path.read_text()))
    }
    assert offenders == {}
