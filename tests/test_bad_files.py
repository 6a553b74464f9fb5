"""Broken config and policy files: one clear line, file and line named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tech2u_mta.config import load
from tech2u_mta.errors import ConfigError
from tech2u_mta.policy import load_folder

POLICIES = Path(__file__).resolve().parent.parent / "policies"


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            "[server]\nlisten = 127.0.0.1:2525\nsize_limit = 10\n",
            3,
            "size_limit: unknown key; expected one of",
        ),
        (
            "[server]\nlisten = 127.0.0.1\n",
            2,
            "listen: '127.0.0.1': expected HOST:PORT",
        ),
        (
            "[server]\n\nmax_message_size = ten\n",
            3,
            "max_message_size: 'ten': expected a size",
        ),
        ("[server]\nmax_recipients = 0\n", 2, "max_recipients: '0': expected a whole"),
        ("[server]\nidle_timeout = -5\n", 2, "idle_timeout: '-5'"),
        (
            "[server]\nauth_require_tls = maybe\n",
            2,
            "auth_require_tls: 'maybe': expected yes or no",
        ),
        ("[server]\nexplainer_url = ftp://x\n", 2, "explainer_url: 'ftp://x'"),
        ("[serverr]\nlisten = 127.0.0.1:25\n", 1, "unknown section [serverr]"),
        (
            "[server]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
            3,
            "listen: set twice",
        ),
        ("listen = 127.0.0.1:1\n", 1, "expected the section header [server]"),
    ],
)
def test_broken_config(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert expected in message


def test_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_bytes(b"[server]\nhostname = caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad.ini:2: not UTF-8 text"):
        load(path)


def test_zero_message_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text("[server]\nmax_message_size = 0\n")
    with pytest.raises(ConfigError, match="max_message_size: '0': expected a size"):
        load(path)


def test_policy_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    (folder / "domains").write_bytes(b"# TECH 2U\ntech2u.com.au\n\xff\n")
    with pytest.raises(ConfigError, match=r"domains:3: not UTF-8 text"):
        load_folder(folder, 1000)


def test_missing_policy_file_counts_as_empty_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    (folder / "networks").unlink()
    caplog.set_level("WARNING", logger="tech2u_mta.policy")
    policies = load_folder(folder, 1000)
    assert len(policies.networks) == 0
    assert f"{folder / 'networks'}: no such file; it counts as empty" in caplog.text


def test_config_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "x.ini"
    path.parent.mkdir()
    path.write_text("[server]\nmail_store = mail\n")
    assert load(path).mail_store == tmp_path / "conf" / "mail"


@pytest.mark.parametrize(
    ("file", "text", "line", "expected"),
    [
        (
            "blocklist",
            "# x\n203.0.113.5/24\n",
            2,
            "network: '203.0.113.5/24' has host bits set; write the network "
            "203.0.113.0/24 or the single address 203.0.113.5",
        ),
        ("blocklist", "10.0.0.0/33\n", 1, "network: '10.0.0.0/33' is not an IP"),
        ("networks", "2001:db8::1/32\n", 1, "has host bits set"),
        ("networks", "localhost\n", 1, "'localhost' is not an IP address"),
        (
            "mailboxes",
            "carol@tech2u.com.au  sleeping\n",
            1,
            "status: 'sleeping': expected one of active, disabled, busy, full",
        ),
        ("mailboxes", "carol@tech2u.com.au active lots\n", 1, "quota: 'lots'"),
        (
            "mailboxes",
            "carol@example.com active\n",
            1,
            "address: example.com is not listed in domains",
        ),
        ("mailboxes", "carol\n", 1, "expected ADDRESS STATUS [QUOTA]"),
        ("mailboxes", "../x@tech2u.com.au active\n", 1, "address:"),
        (
            "mailboxes",
            "a@tech2u.com.au active\nA@TECH2U.com.au busy\n",
            2,
            "a@tech2u.com.au is listed twice",
        ),
        ("domains", "tech2u..com.au\n", 1, "domain: 'tech2u..com.au' is not a domain"),
        ("users", "alice@tech2u.com.au\n", 1, "login: expected LOGIN PASSWORD"),
    ],
)
def test_broken_policy_file(
    tmp_path: Path, file: str, text: str, line: int, expected: str
) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    (folder / file).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_folder(folder, 1000)
    message = str(raised.value)
    assert message.startswith(f"{folder / file}:{line}: "), message
    assert expected in message


def test_missing_policy_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy folder not found"):
        load_folder(tmp_path / "nope", None)


def test_demo_policies_load() -> None:
    policies = load_folder(POLICIES, 1000)
    assert policies.counts() == {
        "domains": 1,
        "networks": 2,
        "blocklist": 3,
        "mailboxes": 5,
        "users": 2,
    }
