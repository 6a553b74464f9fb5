"""``tech2u-mta check``: the replies a session would get, without a network.

It calls the same parsers and checks, in the same order, as the protocol
layer does for CONNECT, MAIL, each RCPT and the end of data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import checks
from .addresses import AddressError, Mailbox, parse_path
from .catalogue import Entry, R, render
from .config import Config
from .netset import client_address
from .policy import Policies
from .store import MailStore


@dataclass(frozen=True)
class Step:
    stage: str
    subject: str
    decision: checks.Decision
    reply: str

    def as_dict(self) -> dict[str, object]:
        entry = self.decision.entry
        return {
            "stage": self.stage,
            "subject": self.subject,
            "code": entry.code,
            "enhanced": entry.enhanced,
            "check": self.decision.check,
            "reason": self.decision.reason,
            "reply": self.reply.split("\r\n"),
        }


@dataclass(frozen=True)
class Request:
    client_ip: str
    sender: str
    recipients: tuple[str, ...]
    helo: str = "dry-run"
    login: str | None = None
    size: int | None = None


def run(config: Config, policies: Policies, request: Request) -> list[Step]:
    """Each stage's decision, stopping where a real session would."""
    steps: list[Step] = []
    client = checks.Client(client_address(request.client_ip), request.login)

    def step(stage: str, subject: str, decision: checks.Decision) -> bool:
        reply = render(
            decision.entry,
            explainer=config.explainer_url,
            host=config.hostname,
            id="(dry run)",
        )
        steps.append(Step(stage, subject, decision, reply))
        return decision.accepted

    if not step("connect", request.client_ip, checks.connect(policies, client.address)):
        return steps
    sender = _parse(request.sender, reverse_path=True)
    if isinstance(sender, checks.Decision):
        step("mail", request.sender, _syntax(R.BAD_SENDER_SYNTAX, sender))
        return steps
    usage, free = _store(config)
    decision = checks.sender(_limits(config), request.size, free)
    if not step("mail", request.sender or "<>", decision):
        return steps
    mailboxes: list[str] = []
    for to in request.recipients:
        decision = _recipient(
            config, policies, client, sender, to, len(mailboxes), request.size, usage
        )
        if step("rcpt", to, decision) and decision.mailbox not in mailboxes:
            mailboxes.append(str(decision.mailbox))
    if mailboxes:
        size = request.size or 0
        step("data", f"{size} octets", checks.message(policies, mailboxes, size, usage))
    return steps


def accepted_by_all(steps: list[Step], request: Request) -> bool:
    rcpts = [s for s in steps if s.stage == "rcpt"]
    return len(rcpts) == len(request.recipients) and all(
        s.decision.accepted for s in steps
    )


def _recipient(
    config: Config,
    policies: Policies,
    client: checks.Client,
    sender: Mailbox | None,
    to: str,
    accepted: int,
    size: int | None,
    usage: checks.Usage,
) -> checks.Decision:
    parsed = _parse(to)
    if isinstance(parsed, checks.Decision) or parsed is None:
        reason = parsed.reason if parsed is not None else "null path"
        return checks.Decision(R.BAD_RECIPIENT_SYNTAX, "syntax", reason)
    return checks.recipient(
        policies, _limits(config), client, sender, parsed, accepted, size, usage
    )


def _parse(
    address: str, reverse_path: bool = False
) -> Mailbox | None | checks.Decision:
    text = address if address.startswith("<") else f"<{address}>"
    try:
        mailbox, rest = parse_path(text, smtputf8=True, reverse_path=reverse_path)
    except AddressError as err:
        return checks.Decision(R.BAD_ARGUMENTS, "syntax", str(err))
    return mailbox


def _syntax(entry: Entry, parsed: checks.Decision) -> checks.Decision:
    return checks.Decision(entry, "syntax", parsed.reason)


def _limits(config: Config) -> checks.Limits:
    return checks.Limits(
        config.max_message_size, config.min_free_space, config.max_recipients
    )


def _store(config: Config) -> tuple[checks.Usage, int]:
    """Mailbox usage and free space of the configured mail store, read
    without creating it when it does not exist yet."""
    root = config.mail_store
    if root.is_dir():
        store = MailStore(root)
        return store.usage, store.free_space()
    existing = next(p for p in [root, *root.resolve().parents] if Path(p).is_dir())
    stats = os.statvfs(existing)
    return (lambda key: 0), stats.f_bavail * stats.f_frsize
