"""A real `statewright serve` against what a web page can make a browser send: the
requests of a cross-site no-cors fetch, a cross-site form post and a DNS-rebinding page
are refused before they reach the API, while curl, the CLI and the server's own pages
keep working (docs/security.md, "The local server and the browser")."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.local.server import STATEWRIGHT, Server
from tests.reliability.hostile.raw_http import RawAnswer, raw_request

TOKEN = "s3cret-token-for-alice-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("browser")) as running:
        yield running


def launched(server: Server, machine_id: str) -> None:
    created = server.request("POST", "/machines", {"spec": "jobs", "id": machine_id})
    assert created.status == 201, created


def state_of(server: Server, machine_id: str) -> tuple[str, int]:
    machine = server.machine(machine_id)
    assert machine is not None
    return machine["state"], machine["version"]


def destroy_from_page(server: Server, machine_id: str, headers: dict[str, str]) -> RawAnswer:
    return raw_request(
        server.url,
        "POST",
        f"/machines/{machine_id}/events",
        body=b'{"event": "DESTROY"}',
        headers=headers,
    )


def assert_refused(answer: RawAnswer, status: int, code: str) -> None:
    assert answer.status_line.startswith("HTTP/1.1 "), answer
    assert (answer.status, answer.code) == (status, code), answer
    assert answer.headers["content-type"] == "application/json"


PAGE_REQUESTS = {
    # fetch(url, {method: "POST", mode: "no-cors", body: "..."}) from https://evil.example
    "no-cors fetch, text/plain": {
        "Content-Type": "text/plain;charset=UTF-8",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "no-cors",
        "Sec-Fetch-Dest": "empty",
    },
    # <form method=post action=http://127.0.0.1:PORT/...> submitted from evil.example
    "form post": {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    },
    # a browser without Fetch Metadata still sends Origin on a POST
    "older browser, Origin only": {
        "Content-Type": "text/plain",
        "Origin": "https://evil.example",
    },
    # a sandboxed iframe or a file:// page
    "opaque origin": {"Content-Type": "text/plain", "Origin": "null"},
    # another local web app (another port is another origin, the same site)
    "another local port": {
        "Content-Type": "text/plain",
        "Origin": "http://localhost:3000",
        "Sec-Fetch-Site": "same-site",
    },
    "same-site without Origin": {"Sec-Fetch-Site": "same-site"},
}


@pytest.mark.parametrize("name", list(PAGE_REQUESTS))
def test_requests_a_web_page_sends_are_refused_and_change_nothing(
    server: Server, name: str
) -> None:
    machine_id = f"page-{abs(hash(name)) % 10_000}"
    launched(server, machine_id)
    before = state_of(server, machine_id)
    answer = destroy_from_page(server, machine_id, PAGE_REQUESTS[name])
    assert_refused(answer, 403, "forbidden_origin")
    assert state_of(server, machine_id) == before


def test_a_cross_site_read_is_refused(server: Server) -> None:
    answer = raw_request(
        server.url,
        "GET",
        "/machines",
        headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
    )
    assert_refused(answer, 403, "forbidden_origin")


def test_a_dns_rebinding_page_can_neither_read_nor_write(server: Server) -> None:
    launched(server, "rebound")
    port = server.url.rsplit(":", 1)[1]
    # The page at http://rebind.evil.example:PORT now resolves to 127.0.0.1: to the
    # browser its requests are same-origin, and they carry its host name.
    rebinding = {
        "Origin": f"http://rebind.evil.example:{port}",
        "Sec-Fetch-Site": "same-origin",
    }
    read = raw_request(
        server.url,
        "GET",
        "/machines/rebound",
        headers=rebinding,
        host_header=f"rebind.evil.example:{port}",
    )
    assert_refused(read, 403, "forbidden_host")
    write = raw_request(
        server.url,
        "POST",
        "/machines/rebound/events",
        body=b'{"event": "DESTROY"}',
        headers={**rebinding, "Content-Type": "text/plain"},
        host_header=f"rebind.evil.example:{port}",
    )
    assert_refused(write, 403, "forbidden_host")
    assert state_of(server, "rebound")[0] == "INIT"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "[::1]", "LOCALHOST"])
def test_loopback_hosts_are_answered_whatever_the_port(server: Server, host: str) -> None:
    answer = raw_request(server.url, "GET", "/specs", host_header=f"{host}:1")
    assert answer.status == 200, answer


def test_curl_with_a_form_content_type_still_works(server: Server) -> None:
    # curl -d '{"spec": "jobs", "id": "curl"}' http://127.0.0.1:PORT/machines
    answer = raw_request(
        server.url,
        "POST",
        "/machines",
        body=b'{"spec": "jobs", "id": "curl"}',
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "curl/8"},
    )
    assert answer.status == 201, answer


def test_the_servers_own_pages_may_call_it(server: Server) -> None:
    answer = raw_request(
        server.url,
        "POST",
        "/machines",
        body=b'{"spec": "jobs", "id": "own-page"}',
        headers={
            "Origin": server.url,
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/json",
        },
    )
    assert answer.status == 201, answer


def test_the_console_path_is_answered_without_a_token_but_not_cross_site(server: Server) -> None:
    console = raw_request(server.url, "GET", "/console/")
    # This build may or may not ship the console's files; either way no token is asked.
    assert console.status in (200, 404), console
    assert console.code != "unauthenticated"
    cross = raw_request(server.url, "GET", "/console/", headers={"Sec-Fetch-Site": "cross-site"})
    assert_refused(cross, 403, "forbidden_origin")


# ---- tokens -----------------------------------------------------------------------------


def token_file(folder: Path, mode: int = 0o600) -> Path:
    path = folder / "tokens"
    path.write_text(f"# name token\nalice {TOKEN}\nbob {TOKEN[::-1]}\n")
    path.chmod(mode)
    return path


def test_with_tokens_every_api_request_needs_one(tmp_path: Path) -> None:
    with Server(tmp_path, args=["--token-file", str(token_file(tmp_path))]) as server:
        assert_refused(raw_request(server.url, "GET", "/machines"), 401, "unauthenticated")
        wrong = raw_request(
            server.url, "GET", "/machines", headers={"Authorization": f"Bearer {TOKEN}x"}
        )
        assert_refused(wrong, 401, "unauthenticated")
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        basic = raw_request(
            server.url, "GET", "/machines", headers={"Authorization": f"Basic {TOKEN}"}
        )
        assert_refused(basic, 401, "unauthenticated")
        created = raw_request(
            server.url,
            "POST",
            "/machines",
            body=b'{"spec": "jobs", "id": "tokened"}',
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert created.status == 201, created
        # A page cannot know a token, so the Host check is off; Origin still applies.
        any_host = raw_request(
            server.url,
            "GET",
            "/machines/tokened",
            headers={"Authorization": f"bearer {TOKEN[::-1]}"},
            host_header="statewright.internal:8080",
        )
        assert any_host.status == 200, any_host
        from_page = raw_request(
            server.url,
            "GET",
            "/machines/tokened",
            headers={"Authorization": f"Bearer {TOKEN}", "Origin": "https://evil.example"},
        )
        assert_refused(from_page, 403, "forbidden_origin")
        # The console's files need none.
        assert raw_request(server.url, "GET", "/console/").code != "unauthenticated"


def serve_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STATEWRIGHT, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_a_non_loopback_host_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    done = serve_exit(tmp_path, "--host", "0.0.0.0", "--specs", str(tmp_path))
    assert done.returncode == 2, done
    assert "--host 0.0.0.0 is not a loopback address" in done.stderr
    assert "--token-file" in done.stderr


def test_a_token_file_others_can_read_refuses_to_start(tmp_path: Path) -> None:
    path = token_file(tmp_path, 0o644)
    done = serve_exit(tmp_path, "--token-file", str(path), "--specs", str(tmp_path))
    assert done.returncode == 2, done
    assert f"chmod 600 {path}" in done.stderr
    assert TOKEN not in done.stderr + done.stdout
