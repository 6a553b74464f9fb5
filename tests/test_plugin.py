"""The pytest plugin, used from a test file run by a nested pytest."""

from __future__ import annotations

import pytest

USER_TESTS = """
import smtplib

from tech2u_mta.policy import from_data


def session(server, source="127.0.0.1"):
    client = smtplib.SMTP(timeout=10, source_address=(source, 0))
    client.greeting = client.connect(server.host, server.port)
    if client.greeting[0] == 220:
        client.ehlo("app.example.com")
    return client


def test_demo_world_replies(tech2u_server):
    client = session(tech2u_server)
    client.mail("app@example.com")
    assert client.rcpt("olduser@tech2u.com.au")[0] == 550
    assert client.rcpt("busy@tech2u.com.au")[0] == 450
    assert client.rcpt("alice@tech2u.com.au")[0] == 250


def test_delivered_messages_can_be_read(tech2u_server):
    client = session(tech2u_server)
    message = b"Subject: hi\\r\\n\\r\\nx\\r\\n"
    client.sendmail("app@example.com", ["alice@tech2u.com.au"], message)
    [message] = tech2u_server.messages("alice@tech2u.com.au")
    assert b"Subject: hi" in message


def test_disable_and_fill_while_running(tech2u_server):
    tech2u_server.disable("alice@tech2u.com.au")
    tech2u_server.fill("bob@tech2u.com.au")
    tech2u_server.activate("carol@tech2u.com.au")
    client = session(tech2u_server)
    client.mail("app@example.com")
    assert client.rcpt("alice@tech2u.com.au")[0] == 550
    assert client.rcpt("bob@tech2u.com.au")[0] == 552
    assert client.rcpt("carol@tech2u.com.au")[0] == 250


def test_block_the_client(tech2u_server):
    tech2u_server.block("127.0.0.0/8")
    assert session(tech2u_server).greeting[0] == 554


def test_store_full(tech2u_server):
    tech2u_server.store_full()
    client = session(tech2u_server)
    assert client.mail("app@example.com")[0] == 452


def test_busy_for_two_attempts_then_accepted(tech2u_server):
    tech2u_server.busy("alice@tech2u.com.au", attempts=2)
    codes = []
    for _ in range(4):
        client = session(tech2u_server)
        client.mail("app@example.com")
        codes.append(client.rcpt("alice@tech2u.com.au")[0])
    assert codes == [450, 450, 250, 250]


def test_each_test_has_its_own_store(tech2u_server):
    assert tech2u_server.messages("alice@tech2u.com.au") == []
"""

CUSTOM_POLICIES = """
import pytest, smtplib
from tech2u_mta.policy import from_data

@pytest.fixture
def tech2u_policies():
    return from_data(
        domains=["shop.example"],
        mailboxes={"orders@shop.example": "active", "old@shop.example": "disabled"},
    )

def test_custom_world(tech2u_server):
    with smtplib.SMTP(tech2u_server.host, tech2u_server.port) as client:
        client.ehlo("x")
        client.mail("a@example.com")
        assert client.rcpt("orders@shop.example")[0] == 250
        assert client.rcpt("old@shop.example")[0] == 550
        assert client.rcpt("alice@tech2u.com.au")[0] == 550
"""


def test_fixtures_from_a_user_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=7)


def test_policies_as_plain_data(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_custom=CUSTOM_POLICIES)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def test_parallel_runs_share_nothing(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=7)
