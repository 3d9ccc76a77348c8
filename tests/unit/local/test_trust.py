"""The token file and the host checks of the local server (statewright.local.trust)."""

from __future__ import annotations

from pathlib import Path

import pytest
from statewright.errors import ConfigurationError
from statewright.local.trust import check_bind, host_name, is_loopback, load_tokens

SECRET = "0123456789abcdef-secret"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_names_and_tokens_are_read_comments_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, f"# who\n\nalice {SECRET}\n  ci-bot@team   {SECRET[::-1]}  \n")
    tokens = load_tokens(path)
    assert [(t.name, t.secret.decode()) for t in tokens] == [
        ("alice", SECRET),
        ("ci-bot@team", SECRET[::-1]),
    ]


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        (f"alice {SECRET}\n", 0o644, "chmod 600"),
        (f"alice {SECRET}\n", 0o620, "chmod 600"),
        ("alice\n", 0o600, "line 1: expected `NAME TOKEN`"),
        (f"alice {SECRET} extra\n", 0o600, "line 1: expected `NAME TOKEN`"),
        ("alice short\n", 0o600, "16 to 512 printable ASCII"),
        (f"../alice {SECRET}\n", 0o600, "the name must match"),
        (f"alice {SECRET}\nalice {SECRET}x\n", 0o600, "listed twice"),
        (f"alice {SECRET}\nbob {SECRET}\n", 0o600, "the same token as alice"),
        ("# nothing\n", 0o600, "lists no"),
    ],
)
def test_a_bad_token_file_is_refused_saying_why_without_quoting_tokens(
    tmp_path: Path, text: str, mode: int, says: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_tokens(write(tmp_path, text, mode))
    assert says in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_missing_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read token file"):
        load_tokens(tmp_path / "absent")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("localhost.evil.example", False),
        ("evil.localhost", False),
        ("", False),
    ],
)
def test_loopback_names_and_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:8080", "localhost"), ("[::1]:80", "[::1]"), ("[::1]", "[::1]"), ("x", "x")],
)
def test_the_port_of_a_host_header_is_ignored(header: str, name: str) -> None:
    assert host_name(header) == name


def test_only_a_server_with_tokens_may_listen_beyond_loopback(tmp_path: Path) -> None:
    check_bind("127.0.0.1", ())
    with pytest.raises(ConfigurationError, match="--token-file"):
        check_bind("0.0.0.0", ())
    check_bind("0.0.0.0", load_tokens(write(tmp_path, f"alice {SECRET}\n")))
