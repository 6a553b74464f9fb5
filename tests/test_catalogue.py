"""The catalogue itself: consistent, complete, and every entry in use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tech2u_mta.catalogue import (
    ANY,
    ENTRIES,
    Entry,
    R,
    render,
    valid_for,
)

PACKAGE = Path(__file__).resolve().parent.parent / "tech2u_mta"
PAGE = PACKAGE.parent.parent / "shared" / "seed" / "emailerrorcodes.txt"


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=list(ENTRIES))
def test_enhanced_code_class_matches_reply_class(entry: Entry) -> None:
    if entry.enhanced is None:
        # Only the greeting, HELO/EHLO and 354 go without (RFC 2034 3).
        assert entry.code in (220, 250, 354), entry.name
        return
    klass, subject, detail = entry.enhanced.split(".")
    assert klass == str(entry.code)[0]
    assert subject.isdigit() and detail.isdigit()


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=list(ENTRIES))
def test_entry_is_valid_for_every_command_it_answers(entry: Entry) -> None:
    for command in entry.commands:
        if entry.commands == ANY:
            assert valid_for(entry.code, "ANY-OTHER"), entry.name
        else:
            assert valid_for(entry.code, command), (entry.name, command)


def test_every_entry_is_used_by_the_server() -> None:
    source = "".join(
        path.read_text() for path in PACKAGE.glob("*.py") if path.name != "catalogue.py"
    )
    unused = [name for name in ENTRIES if not re.search(rf"\bR\.{name}\b", source)]
    assert unused == []


def test_error_replies_end_with_the_explainer_for_their_code() -> None:
    reply = render(R.MAILBOX_DISABLED, explainer="https://x.test/codes")
    lines = reply.split("\r\n")
    assert lines[-1] == "550 5.2.1 https://x.test/codes#550"
    assert all(line.startswith("550-5.2.1 ") for line in lines[:-1])


def test_support_replies_carry_a_reference_on_the_wire() -> None:
    for entry in ENTRIES.values():
        reply = render(entry, host="h", id="i", commands="c", syntax="s")
        if entry.support:
            assert reply.reference and reply.reference in reply, entry.name
        else:
            assert reply.reference is None


def test_references_differ() -> None:
    references = {render(R.FAKE_CUSTOMER).reference for _ in range(200)}
    assert len(references) == 200


def test_positive_replies_carry_no_explainer() -> None:
    assert render(R.OK) == "250 2.0.0 OK"


@pytest.mark.skipif(not PAGE.exists(), reason="the source page is not beside the repo")
def test_every_reply_line_of_the_page_is_in_the_catalogue() -> None:
    page = PAGE.read_text()
    texts = {(e.code, e.text) for e in ENTRIES.values()}
    for code, text in re.findall(r"^(4\d\d|5\d\d) ([^(\n]+?)\s*(?:\(|$)", page, re.M):
        if text.startswith("ERROR:"):
            continue  # "554 ERROR:554": the text is on the lines below
        assert (int(code), text) in texts, (code, text)
    for text in ["Mailbox disabled", "Email not accepted from fake customer names"]:
        assert text in page
        assert any(e.text == text for e in ENTRIES.values())
