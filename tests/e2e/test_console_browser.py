"""The console in a real browser: headless Chromium, driven over WebDriver, against a real
``geoattest verifier serve`` and a real ``geoattest console`` process.

It checks what an operator sees: every chip on the fleet map in its verdict's colour; an
alert raised by a diverted chip (licensed to Sydney, proving from Frankfurt) in the open
alert feed within two seconds, and on the fleet map without a reload; a device page with
its history; the token inspector accepting a real result token and rejecting a tampered
one. Screenshots go to the test's temporary directory, or to the directory
``GEOATTEST_SCREENSHOTS`` names (``GEOATTEST_SCREENSHOTS=docs/img`` refreshes the README's).

The console serves HTTPS for the operator role only, as a deployment runs it, and the
browser holds an operator certificate: an NSS database under a temporary HOME (certutil
and pk12util) with the test CA trusted and the operator's key and certificate imported, and
Chromium's AutoSelectCertificateForUrls policy (written by ``.ci/run``) presenting
certificates of that CA to loopback addresses without a prompt, which headless Chromium
could not answer.

Chromium and its driver are the distribution's (``chromium``, ``chromium-driver``), and the
NSS tools ``libnss3-tools``; ``.ci/run`` installs them. Elsewhere the test is skipped when
one is missing, but with ``GEOATTEST_CI=1`` (set by ``.ci/run``) it fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from command import GEOATTEST
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12
from verifier_world import ProvisionedChip, VerifierWorld

from geoattest.console.svg import VERDICT_COLOURS
from geoattest.pki.keyfiles import KEY_FILE, load_certificate_pem, read_private_key
from geoattest.pki.tls import CA_FILE, CERT_FILE, OperatorCA, Role
from geoattest.units import SECOND_NS
from geoattest.wire.client import VerifierClient

pytestmark = pytest.mark.slow

GUARD_S = 60.0
"""A failure guard only."""
ALERT_WITHIN_S = 2.0
"""The issue's promise: a new alert on the operator's screen within two seconds."""
SCREENSHOTS_ENV = "GEOATTEST_SCREENSHOTS"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MS = 1_000_000
TEST_CA_NAME = "geoattest browser test"
"""The test CA's name: the browser policy presents certificates of this issuer only."""
POLICY = Path("/etc/chromium/policies/managed/geoattest-tests.json")


def _policy_selects_the_test_certificate() -> bool:
    try:
        entries = json.loads(POLICY.read_text())["AutoSelectCertificateForUrls"]
        rules = [json.loads(entry) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    issuer = {"ISSUER": {"CN": f"{TEST_CA_NAME} TLS root"}}
    return any(r.get("filter") == issuer for r in rules)


def _browser_or_skip() -> Any:
    """Selenium's webdriver module, or a skip (a failure in CI) naming what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    missing += [tool for tool in ("certutil", "pk12util") if shutil.which(tool) is None]
    if not _policy_selects_the_test_certificate():
        missing.append(f"the client certificate policy {POLICY}")
    try:
        from selenium import webdriver  # noqa: PLC0415
    except ImportError:
        missing.append("the selenium package")
    else:
        if not missing:
            return webdriver
    why = f"headless Chromium needs {', '.join(missing)} (.ci/run installs them)"
    if os.environ.get("GEOATTEST_CI") == "1":
        pytest.fail(f"in CI: {why}")
    pytest.skip(why)


def hex_to_rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@dataclass
class Deployment:
    world: VerifierWorld
    target: str
    console: str
    chips: dict[str, ProvisionedChip]
    tokens: dict[str, str]


def _started(argv: list[str], first: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(first):
        process.kill()
        raise AssertionError(f"{argv[1]} printed {line!r}")
    return process, line.split()[-1]


async def _prove(target: str, world: VerifierWorld, chip: ProvisionedChip, rtt_ns: int) -> str:
    async with VerifierClient(target, timeout_s=GUARD_S) as client:
        result = await client.submit(
            world.proof(chip, rtt_ns=rtt_ns, unix_ns=time.time_ns() - SECOND_NS)
        )
    return result.result_token


@dataclass
class OperatorTls:
    console: Path
    """The console's server directory."""
    home: Path
    """A HOME whose NSS database trusts the test CA and holds the operator's certificate."""


@pytest.fixture
def operator_tls(tmp_path: Path) -> OperatorTls:
    """A test CA, the console's server certificate and an operator's, and a browser HOME
    that holds the operator's (``tls init``/``tls issue``'s files, imported with NSS's
    tools)."""
    _browser_or_skip()  # before NSS's tools are needed
    now = dt.datetime.now(dt.UTC)
    ca = OperatorCA.create(TEST_CA_NAME, now - dt.timedelta(hours=1))
    tls = tmp_path / "tls"
    ca.issue_to(tls / "console", Role.SERVER, "console", now, hosts=["127.0.0.1"])
    ca.issue_to(tls / "operator", Role.OPERATOR, "alice", now)
    p12 = tmp_path / "operator.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"operator",
            read_private_key(tls / "operator" / KEY_FILE, "operator key"),  # type: ignore[arg-type]
            load_certificate_pem(tls / "operator" / CERT_FILE),
            None,
            NoEncryption(),
        )
    )
    home = tmp_path / "home"
    nss = home / ".pki" / "nssdb"
    nss.mkdir(parents=True)
    database = f"sql:{nss}"
    for argv in (
        ["certutil", "-N", "-d", database, "--empty-password"],
        ["certutil", "-A", "-d", database, "-n", "test-ca", "-t", "C,,",
         "-i", str(tls / "operator" / CA_FILE)],
        ["pk12util", "-i", str(p12), "-d", database, "-W", ""],
    ):  # fmt: skip
        made = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=GUARD_S)
        assert made.returncode == 0, (argv, made.stderr)
    return OperatorTls(tls / "console", home)


@pytest.fixture
def deployment(tmp_path: Path, operator_tls: OperatorTls) -> Iterator[Deployment]:
    world = VerifierWorld.create(tmp_path)
    processes = []
    try:
        verifier, target = _started([GEOATTEST, *world.serve_args()], "verifier listening on ")
        processes.append(verifier)
        chips = {d: world.chip(d) for d in ("dev-1", "dev-2", "dev-3", "dev-syd")}

        async def enrol() -> None:
            async with VerifierClient(target, timeout_s=GUARD_S) as client:
                for chip in chips.values():
                    await client.enroll(chip.enroll_request())

        asyncio.run(enrol())
        tokens = {
            # two chips in Frankfurt's data centre; one whose disks reach past its licence
            "dev-1": asyncio.run(_prove(target, world, chips["dev-1"], MS // 2)),
            "dev-2": asyncio.run(_prove(target, world, chips["dev-2"], MS // 2)),
            "dev-3": asyncio.run(_prove(target, world, chips["dev-3"], 3 * MS)),
        }
        console, url = _started(
            [
                GEOATTEST, "console", "--db", str(world.db_path),
                "--policy", str(tmp_path / "policy.json"),
                "--landmarks", str(tmp_path / "landmarks.json"),
                "--verifier", target, "--verifier-plaintext",
                "--listen", "127.0.0.1:0", "--tls", str(operator_tls.console),
            ],
            "console on https://",
        )  # fmt: skip
        processes.append(console)
        yield Deployment(world, target, url.rstrip("/"), chips, tokens)
    finally:
        for process in processes:
            process.terminate()
            process.wait(GUARD_S)


@pytest.fixture
def browser(operator_tls: OperatorTls) -> Iterator[Any]:
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    service = Service(
        executable_path=CHROMEDRIVER, env={**os.environ, "HOME": str(operator_tls.home)}
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(GUARD_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver: Any, script: str, *, guard_s: float = GUARD_S) -> Any:
    """Poll ``script`` (JavaScript returning a value) in the page until it is truthy."""
    give_up = time.monotonic() + guard_s
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        assert time.monotonic() < give_up, f"never true in the page: {script}"
        time.sleep(0.05)


CHIPS_ON_MAP = """
return Array.from(document.querySelectorAll('#fleet-map g.chip')).map(g => [
  g.dataset.devices, g.dataset.verdict, getComputedStyle(g.querySelector('circle')).fill]);
"""


def test_an_operator_sees_the_fleet_alerts_a_device_and_checks_tokens(
    deployment, browser, tmp_path
):
    images = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    images.mkdir(parents=True, exist_ok=True)
    browser.get(deployment.console + "/")
    chips = {
        devices: (verdict, fill) for devices, verdict, fill in browser.execute_script(CHIPS_ON_MAP)
    }
    assert chips == {
        "dev-1": ("ALLOWED", hex_to_rgb(VERDICT_COLOURS["ALLOWED"])),
        "dev-2": ("ALLOWED", hex_to_rgb(VERDICT_COLOURS["ALLOWED"])),
        "dev-3": ("INCONCLUSIVE", hex_to_rgb(VERDICT_COLOURS["INCONCLUSIVE"])),
    }
    browser.save_screenshot(str(images / "console-fleet.png"))

    # A diverted chip: licensed to Sydney, proving from Frankfurt. Its alert must reach
    # the open alert feed within two seconds, and the fleet map without a reload.
    feed = browser.current_window_handle
    browser.get(deployment.console + "/alerts")
    wait_until(browser, "return document.readyState === 'complete'")
    browser.switch_to.new_window("tab")
    browser.get(deployment.console + "/")
    fleet = browser.current_window_handle
    browser.switch_to.window(feed)
    time.sleep(0.5)  # the feed's event stream is open (it reports from its cursor on)
    raised = time.monotonic()
    asyncio.run(_prove(deployment.target, deployment.world, deployment.chips["dev-syd"], MS // 2))
    wait_until(
        browser,
        "return document.querySelector(\"#alerts tr.alert[data-device='dev-syd']\")",
        guard_s=GUARD_S,
    )
    shown_after = time.monotonic() - raised
    assert shown_after < ALERT_WITHIN_S, f"the alert took {shown_after:.2f} s"
    browser.save_screenshot(str(images / "console-alerts.png"))
    browser.switch_to.window(fleet)
    wait_until(
        browser,
        "return document.querySelector(\"#fleet-map g.chip[data-devices='dev-syd']\")",
    )
    chips = {d: (v, f) for d, v, f in browser.execute_script(CHIPS_ON_MAP)}
    assert chips["dev-syd"] == ("OUTSIDE", hex_to_rgb(VERDICT_COLOURS["OUTSIDE"]))
    browser.close()
    browser.switch_to.window(feed)

    browser.get(deployment.console + "/devices/dev-1")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#history tr.proof'))"
        ".map(r => r.dataset.verdict)"
    )
    assert rows == ["ALLOWED"]
    assert browser.execute_script("return document.querySelector('#fixes g.fix') !== null")
    browser.save_screenshot(str(images / "console-device.png"))

    for token, expected in (
        (deployment.tokens["dev-1"], "VALID"),
        (_tampered(deployment.tokens["dev-1"]), "INVALID"),
    ):
        browser.get(deployment.console + "/tokens")
        browser.execute_script(
            "document.querySelector('textarea[name=token]').value = arguments[0]", token
        )
        browser.find_element("id", "inspect").click()
        result = wait_until(
            browser,
            "var r = document.getElementById('token-result'); return r && r.innerText",
        )
        assert result.startswith(expected), result
    assert "signature does not verify" in result
    browser.save_screenshot(str(images / "console-token.png"))


def _tampered(token: str) -> str:
    """The token with one character of its signature changed."""
    header, claims, signature = token.split(".")
    flipped = "B" if signature[10] == "A" else "A"
    return ".".join((header, claims, signature[:10] + flipped + signature[11:]))
