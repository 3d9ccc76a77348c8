"""`statewright console --endpoint URL` against a stand-in of a deployed API that checks
every request's SigV4 signature with botocore's signer: the console works through it in
a real chromium, a wrong key is refused and shown, and the proxy forwards nothing that
its own pages did not send."""

from __future__ import annotations

import http.client
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect
from statewright.local.control_plane import LocalControlPlane

from tests.integration.console.browser import REPO, screenshot
from tests.integration.console.sigv4_gateway import REGION, SigV4Gateway
from tests.integration.local.server import EXAMPLES, STATEWRIGHT

KEY_ID = "AKIDCONSOLETEST"
SECRET = "console-test-secret"
PRINCIPAL = "arn:aws:iam::123456789012:user/console-test"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigV4Gateway]:
    with LocalControlPlane(
        specs_dirs=[EXAMPLES / "specs", REPO / "specs"],
        data_dir=tmp_path_factory.mktemp("deployed"),
        functions_dir=EXAMPLES / "functions",
    ) as plane:
        gateway = SigV4Gateway(plane, {KEY_ID: (SECRET, PRINCIPAL)})
        gateway.thread.start()
        yield gateway
        gateway.shutdown()
        gateway.server_close()


def aws_env(tmp: Path, secret: str = SECRET) -> dict[str, str]:
    """Only these credentials: no profile or config file of the machine leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@contextmanager
def console(endpoint: str, env: dict[str, str]) -> Iterator[str]:
    """`statewright console --port 0` running; yields the URL it prints."""
    process = subprocess.Popen(
        [STATEWRIGHT, "console", "--endpoint", endpoint, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        url = lines.get(timeout=30).strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/console/"), url
        yield url
    finally:
        process.terminate()
        process.wait(10)


def raw(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.putrequest(method, path, skip_host="Host" in headers)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def test_the_console_works_through_the_signing_proxy(
    gateway: SigV4Gateway, browser: Browser, tmp_path: Path
) -> None:
    assert gateway.plane.request("POST", "/machines", {"spec": "demo", "id": "aws-1"}).status == 201
    with console(gateway.endpoint, aws_env(tmp_path)) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        try:
            page.goto(url)
            expect(page.locator('tr[data-machine="aws-1"]')).to_contain_text("INIT")
            # A signed POST: create a machine from the console.
            page.get_by_text("Create a machine").click()
            page.select_option("#create-spec", "demo")
            page.fill("#create-id", "aws-2")
            page.get_by_role("button", name="Create machine").click()
            page.locator("#confirm-ok").click()
            expect(page.locator("h1")).to_have_text("Machine aws-2")
            expect(page.locator("svg.diagram g.state.current")).to_have_attribute(
                "data-state", "INIT"
            )
            screenshot(page, "proxy-machine")
        finally:
            page.close()
    assert gateway.plane.request("GET", "/machines/aws-2").status == 200
    assert gateway.refused == []
    assert "POST /machines" in gateway.verified and "GET /specs/demo" in gateway.verified


def test_a_wrong_key_is_refused_by_the_api_and_shown(
    gateway: SigV4Gateway, browser: Browser, tmp_path: Path
) -> None:
    before = len(gateway.verified)
    with console(gateway.endpoint, aws_env(tmp_path, secret="not-the-secret")) as url:
        page = browser.new_page()
        try:
            page.goto(url)
            expect(page.get_by_role("alert")).to_have_text(
                "The request signature we calculated does not match the signature you "
                "provided. (unauthenticated)"
            )
        finally:
            page.close()
    assert len(gateway.verified) == before
    assert gateway.refused


def test_the_proxy_forwards_only_what_its_own_pages_send(
    gateway: SigV4Gateway, tmp_path: Path
) -> None:
    with console(gateway.endpoint, aws_env(tmp_path)) as url:
        port = urlsplit(url).port
        own = {"Host": f"127.0.0.1:{port}"}
        before = len(gateway.verified)
        refused = [
            ({**own, "Origin": "https://evil.example"}, "forbidden_origin"),
            ({**own, "Origin": "http://127.0.0.1:1"}, "forbidden_origin"),
            ({**own, "Sec-Fetch-Site": "cross-site"}, "forbidden_origin"),
            ({"Host": "rebind.evil.example"}, "forbidden_host"),
        ]
        for headers, code in refused:
            status, body = raw(url, "GET", "/machines", headers)
            assert (status, code) == (403, code) and code in body, (headers, body)
        status, body = raw(url, "GET", "/not-an-api-route", own)
        assert status == 404 and "forwards the API's routes only" in body
        # An absolute-form target names another host: only its path goes, to the endpoint.
        status, _ = raw(url, "GET", "http://evil.example/specs", own)
        assert status == 200
        assert gateway.verified[before:] == ["GET /specs"]
        status, _ = raw(url, "GET", "/specs", {**own, "Origin": f"http://127.0.0.1:{port}"})
        assert status == 200
        status, body = raw(url, "GET", "/console/app.js", own)
        assert status == 200 and "fleetPage" in body


def test_refuses_to_start_without_https_or_credentials(tmp_path: Path) -> None:
    env = aws_env(tmp_path)
    plain = subprocess.run(
        [STATEWRIGHT, "console", "--endpoint", "http://abc.execute-api.eu-west-1.amazonaws.com/v1"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode == 2 and "plain http" in plain.stderr
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    anonymous = subprocess.run(
        [STATEWRIGHT, "console", "--endpoint", "https://abc.execute-api.eu-west-1.amazonaws.com/v1"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert anonymous.returncode == 2 and "no AWS credentials" in anonymous.stderr
    assert "Traceback" not in plain.stderr + anonymous.stderr
