"""``geoattest audit``: a log path that names nothing, or a folder, is the operator's mistake
and says so in one line; it is never reported as a tampered log."""

from __future__ import annotations

from pathlib import Path

import pytest
from command import main_error

from geoattest.pki.result_key import ResultKey


@pytest.fixture(scope="module")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("key") / "vk"
    ResultKey.generate().save(directory)
    return directory / "public.pem"


@pytest.mark.parametrize("command", [("verify",), ("prove", "--token", "t")])
@pytest.mark.parametrize(
    ("name", "needle"), [("missing.log", "does not exist"), ("", "is not a file")]
)
def test_a_log_that_is_not_there_is_a_config_error_not_tampering(
    tmp_path: Path, public_key: Path, command: tuple[str, ...], name: str, needle: str
) -> None:
    log = tmp_path / name if name else tmp_path
    line = main_error("audit", *command, "--log", str(log), "--public-key", str(public_key))
    assert line.startswith("error: audit log "), line
    assert needle in line
    assert "tampered" not in line
