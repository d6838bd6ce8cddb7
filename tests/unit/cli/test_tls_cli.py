"""``geoattest tls`` and the transport flags: certificates made, roles written, and plaintext
only when asked for on loopback; every mistake a one-line error (in process, through the
console script's own entry point)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from geoattest.cli import main
from geoattest.cli.tls import server_host
from geoattest.errors import ConfigError
from geoattest.pki import load_certificate_pem
from geoattest.pki.tls import OperatorCA, Role, TlsIdentity, role_of

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``geoattest ARGS`` in process: its exit code and its stderr."""
    monkeypatch.setattr("sys.argv", ["geoattest", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return int(exit_.value.code or 0), capsys.readouterr().err


def one_line_error(monkeypatch, capsys, *args: str) -> str:
    code, err = run_main(monkeypatch, capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def ca_dir(tmp_path, monkeypatch, capsys):
    assert run_main(monkeypatch, capsys, "tls", "init", "--out", str(tmp_path / "ca"))[0] == 0
    return tmp_path / "ca"


@pytest.mark.parametrize("role", ["server", "relying-party", "operator", "auditor", "landmark"])
def test_issue_writes_a_private_key_and_a_certificate_in_its_role(
    ca_dir, tmp_path, monkeypatch, capsys, role
):
    out = tmp_path / role
    code, err = run_main(
        monkeypatch, capsys, "tls", "issue", "--ca", str(ca_dir), "--role", role,
        "--name", "party-1", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    identity = TlsIdentity.load(out)
    certificate = load_certificate_pem(out / "cert.pem")
    ca = OperatorCA.load(ca_dir)
    unit = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert unit[0].value == role
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if role == "server":
        assert role_of(certificate, ca.certificate) is None  # never a client
        assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    else:
        assert role_of(certificate, ca.certificate) is Role(role)
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert identity.ca_pem == (ca_dir / "tls-ca.crt").read_bytes()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--role", "device"], "--role must be one of"),
        (["--role", "root"], "--role must be one of"),
        (["--role", "operator", "--host", "example.org"], "--host is for a server"),
    ],
)
def test_issue_refuses_a_role_it_does_not_issue(
    ca_dir, tmp_path, monkeypatch, capsys, args, needle
):
    line = one_line_error(
        monkeypatch, capsys, "tls", "issue", "--ca", str(ca_dir), "--name", "x",
        "--out", str(tmp_path / "x"), *args,
    )  # fmt: skip
    assert needle in line
    assert not (tmp_path / "x").exists()


SERVE = ["verifier", "serve", "--db", "v.db", "--trust-root", "ca.crt", "--landmarks", "l.json",
         "--policy", "p.json", "--licences", "x.json", "--result-key", "rk"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([*SERVE], "give --tls"),
        ([*SERVE, "--plaintext", "--tls", "d"], "exclude each other"),
        ([*SERVE, "--plaintext", "--listen", "0.0.0.0:50051"], "only for loopback"),
        (["verifier", "status", "--device-id", "d"], "give --tls"),
        (["verifier", "status", "--device-id", "d", "--plaintext", "--target", "10.0.0.1:1"],
         "only for loopback"),
        (["verifier", "enrol", "--keystore", "k"], "give --verifier-ca"),
    ],
)  # fmt: skip
def test_plaintext_only_when_asked_for_and_on_loopback(monkeypatch, capsys, args, needle):
    assert needle in one_line_error(monkeypatch, capsys, *args)


@pytest.mark.parametrize("host", ["ünï.example", "", "not a host!", "999.1.1.1", "a..b", "-a.b"])
def test_a_host_no_certificate_can_name_is_refused(ca_dir, tmp_path, monkeypatch, capsys, host):
    out = tmp_path / "server"
    args = ("--role", "server", "--name", "s", "--out", str(out), "--host", host)
    line = one_line_error(monkeypatch, capsys, "tls", "issue", "--ca", str(ca_dir), *args)
    assert "--host" in line
    assert not out.exists()


@settings(max_examples=300, deadline=None)
@given(host=st.text(max_size=40) | st.from_regex(r"(\*\.)?([a-z0-9-]{1,8}\.){0,3}[a-z0-9-]{1,8}"))
def test_a_host_is_refused_or_named_in_the_certificate_exactly(host: str) -> None:
    """What --host accepts goes into a certificate as the name a client matches (an IP
    address as an address); everything else is a ConfigError, never another error."""
    try:
        accepted = server_host(host)
    except ConfigError:
        return
    cert = OperatorCA.create("T", NOW, dt.timedelta(days=1)).issue(
        Role.SERVER, "s", NOW, hosts=(accepted,)
    )[1]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = names.get_values_for_type(x509.IPAddress)
    try:
        assert addresses == [ipaddress.ip_address(host)]
    except ValueError:
        assert names.get_values_for_type(x509.DNSName) == [host]
