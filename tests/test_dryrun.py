"""``tech2u-mta check``: the same decisions as the server, with no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from tech2u_mta.catalogue import Entry, R
from tech2u_mta.cli import main


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run where ./policies is the demo world and the store is empty."""
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    monkeypatch.chdir(tmp_path)


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:
    status = main(["check", "--json", *args])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("client", "sender", "to", "status", "stages"),
    [
        (
            "127.0.0.1",
            "a@example.com",
            ["alice@tech2u.com.au"],
            0,
            [R.GREETING, R.SENDER_OK, R.RECIPIENT_OK, R.ACCEPTED],
        ),
        ("127.0.0.2", "a@example.com", ["alice@tech2u.com.au"], 1, [R.BLOCKLISTED]),
        (
            "::ffff:192.0.2.5",
            "a@example.com",
            ["alice@tech2u.com.au"],
            1,
            [R.BLOCKLISTED],
        ),
        (
            "203.0.113.9",
            "alice@tech2u.com.au",
            ["bob@tech2u.com.au"],
            1,
            [R.GREETING, R.SENDER_OK, R.FAKE_CUSTOMER],
        ),
        (
            "203.0.113.9",
            "a@example.com",
            ["olduser@tech2u.com.au", "alice@tech2u.com.au", "busy@tech2u.com.au"],
            1,
            [
                R.GREETING,
                R.SENDER_OK,
                R.MAILBOX_DISABLED,
                R.RECIPIENT_OK,
                R.MAILBOX_BUSY,
                R.ACCEPTED,
            ],
        ),
        (
            "203.0.113.9",
            "not an address",
            ["alice@tech2u.com.au"],
            1,
            [R.GREETING, R.BAD_SENDER_SYNTAX],
        ),
        (
            "203.0.113.9",
            "",
            ["Postmaster"],
            0,
            [R.GREETING, R.SENDER_OK, R.RECIPIENT_OK, R.ACCEPTED],
        ),
    ],
)
def test_stages(
    capsys: pytest.CaptureFixture[str],
    client: str,
    sender: str,
    to: list[str],
    status: int,
    stages: list[Entry],
) -> None:
    got_status, steps = check(
        capsys, "--client-ip", client, "--from", sender, "--to", *to
    )
    assert got_status == status
    assert [(s["code"], s["enhanced"]) for s in steps] == [
        (e.code, e.enhanced) for e in stages
    ]


def test_auth_user_lifts_the_551(capsys: pytest.CaptureFixture[str]) -> None:
    status, steps = check(
        capsys,
        "--client-ip",
        "203.0.113.9",
        "--auth-user",
        "alice@tech2u.com.au",
        "--from",
        "alice@tech2u.com.au",
        "--to",
        "bob@tech2u.com.au",
    )
    assert status == 0 and steps[2]["check"] == "mailbox"


def test_size_over_the_limit_is_refused_at_mail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, steps = check(
        capsys,
        "--client-ip",
        "127.0.0.1",
        "--from",
        "a@example.com",
        "--to",
        "alice@tech2u.com.au",
        "--size",
        str(50 << 20),
    )
    assert status == 1
    assert steps[-1]["stage"] == "mail"
    assert steps[-1]["enhanced"] == R.MESSAGE_TOO_BIG.enhanced


def test_text_output_names_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "check",
            "--client-ip",
            "127.0.0.1",
            "--from",
            "a@example.com",
            "--to",
            "olduser@tech2u.com.au",
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "check: mailbox_status (disabled)" in out
    assert (
        f"{R.MAILBOX_DISABLED.code}-{R.MAILBOX_DISABLED.enhanced} Mailbox disabled"
        in out
    )


def test_bad_client_ip_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--client-ip", "nope", "--from", "", "--to", "a@b.c"])
    assert status == 2
    assert "--client-ip: 'nope' is not an IP address" in capsys.readouterr().err


def test_dry_run_leaves_no_mail_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check(
        capsys, "--client-ip", "127.0.0.1", "--from", "", "--to", "alice@tech2u.com.au"
    )
    assert not (tmp_path / "mailstore").exists()


def test_negative_size_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(
            [
                "check",
                "--client-ip",
                "127.0.0.1",
                "--from",
                "",
                "--to",
                "a@b.c",
                "--size",
                "-5",
            ]
        )
    assert raised.value.code == 2
    assert "'-5' is not a number of octets" in capsys.readouterr().err
