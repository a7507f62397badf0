"""Forgotten and changed passwords, the same on both sides.

A forgotten password: a one-time code mailed to the account's address, kept in a side's
own database (each side declares the table with :func:`password_resets_table` and runs
a :class:`ResetFlow`); a change: :func:`check_change`.

A code, not a link: a link would be built from the request's Host header, which a
stranger chooses; the code goes with the page the person is already on. The code is
10 characters of a 30-letter alphabet (about 49 bits), valid for 30 minutes, good for
5 tries, and only its hash is kept. An account gets at most 3 codes an hour, so a
stranger cannot flood its mailbox. Whether an account exists is never told: asking
for a code always answers alike, and a code for an unknown account is simply wrong.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

from accrual.clock import Clock
from accrual.contract.errors import Invalid
from accrual.infra.credentials import password_problem, verify_password
from accrual.infra.db import UtcDateTime
from accrual.infra.mail import Mail, Mailer, MailError
from accrual.infra.sign_in_failures import SignInThrottle

log = logging.getLogger(__name__)

CODE_TTL = timedelta(minutes=30)
MAX_TRIES = 5
PER_HOUR = 3
# No 0/O, 1/I/L, U: nothing to misread when typed from a mail.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10


def password_resets_table(name: str, metadata: MetaData) -> Table:
    return Table(
        name, metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("account_id", String(32), nullable=False, index=True),
        Column("code_hash", String(64), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("expires_at", UtcDateTime(), nullable=False),
        Column("tries", Integer, nullable=False),
        Column("used_at", UtcDateTime()),
    )


def normal_code(code: object) -> str:
    """The code as typed, without spaces or dashes, in capitals."""
    if not isinstance(code, str):
        return ""
    return "".join(char for char in code.upper() if char not in " -")[:64]


def _hash(account_id: str, code: str) -> str:
    return hashlib.sha256(f"{account_id}:{code}".encode()).hexdigest()


class PasswordResets:
    def __init__(self, engine: Engine, table: Table, clock: Clock) -> None:
        self.engine = engine
        self.table = table
        self.clock = clock

    def issue(self, account_id: str) -> str | None:
        """A new code for the account (shown as ``XXXXX-XXXXX``), or None when it had its
        codes for this hour already."""
        r, now = self.table, self.clock.now()
        with self.engine.begin() as conn:
            recent = conn.execute(select(func.count()).select_from(r).where(
                r.c.account_id == account_id,
                r.c.created_at > now - timedelta(hours=1))).scalar_one()
            if recent >= PER_HOUR:
                return None
            code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
            conn.execute(insert(r).values(account_id=account_id, code_hash=_hash(account_id, code),
                                          created_at=now, expires_at=now + CODE_TTL, tries=0))
        return f"{code[:5]}-{code[5:]}"

    def redeem(self, account_id: str, code: object) -> bool:
        """Whether ``code`` is the account's newest live code; a right one is used up, a
        wrong one costs a try. The caller sets the password in its own transaction after."""
        r, now = self.table, self.clock.now()
        typed = normal_code(code)
        with self.engine.begin() as conn:
            row = conn.execute(select(r).where(
                r.c.account_id == account_id, r.c.used_at.is_(None), r.c.expires_at > now,
                r.c.tries < MAX_TRIES).order_by(r.c.id.desc()).limit(1)).first()
            if row is None:
                return False
            if not secrets.compare_digest(row.code_hash, _hash(account_id, typed)):
                conn.execute(update(r).where(r.c.id == row.id).values(tries=row.tries + 1))
                return False
            used = conn.execute(update(r).where(r.c.id == row.id, r.c.used_at.is_(None))
                                .values(used_at=now)).rowcount
            return bool(used)


@dataclass(frozen=True, slots=True)
class ResetAccount:
    """The account a reset is for, as its side found it by the name given."""

    account_id: str
    address: str  # where the code is mailed
    language: str  # of the mail
    throttle_key: str  # the account's key in the side's sign-in throttle
    mail_values: dict[str, object]  # what the side's mail template names (email, username)


class ResetFlow:
    """Ask for a code, then set a new password with it: the steps both sides take. A side
    gives how it finds an account by name, and its mail texts and password setter."""

    def __init__(self, codes: PasswordResets, zone: ZoneInfo, mailer: Mailer,
                 find: Callable[[object], ResetAccount | None],
                 render: Callable[..., Mail],
                 replace_password: Callable[[str, str], object],
                 throttle: SignInThrottle) -> None:
        self.codes = codes
        self.zone = zone
        self.mailer = mailer
        self.find = find
        self.render = render
        self.replace_password = replace_password
        self.throttle = throttle

    def request(self, name: object) -> None:
        """Mail a code when an account matches ``name``; the same answer either way."""
        found = self.find(name)
        if found is None:
            return
        code = self.codes.issue(found.account_id)
        if code is None:
            log.info("password reset for account %s: hourly limit reached", found.account_id)
            return
        expires = (self.codes.clock.now() + CODE_TTL).astimezone(self.zone)
        try:
            self.mailer.send(self.render("password_reset", found.language, found.address,
                                         code=code, **found.mail_values,
                                         expires_at=expires.strftime("%Y-%m-%d %H:%M %Z")))
        except MailError as error:  # not told: it would tell that the account exists
            log.error("password reset for account %s not mailed: %s", found.account_id, error)

    def reset(self, name: object, code: object, new_password: object) -> None:
        """Set the new password with the mailed code: every session of the account ends and
        its sign-in lockout is lifted."""
        problem = password_problem(new_password)
        if problem:
            raise Invalid("invalid_password", problem)
        found = self.find(name)
        if found is None or not self.codes.redeem(found.account_id, code):
            raise Invalid("wrong_code", "the code is wrong or no longer valid; ask for a new one")
        assert isinstance(new_password, str)
        self.replace_password(found.account_id, new_password)
        self.throttle.succeeded(found.throttle_key)


def check_change(throttle: SignInThrottle, key: str, stored_hash: str, current: object,
                 new: object) -> str:
    """The new password once a change may go ahead: the current one is right (a wrong one
    counts as a failed sign-in of ``key``, and a locked-out key is refused unchecked), the
    new one valid and different. Raises the refusal otherwise."""
    throttle.check(key, None)
    if not isinstance(current, str) or not verify_password(stored_hash, current):
        throttle.failed(key, None)
        raise Invalid("wrong_password", "the current password is wrong")
    problem = password_problem(new)
    if problem:
        raise Invalid("invalid_password", problem)
    if new == current:
        raise Invalid("password_unchanged", "the new password is the current one; choose another")
    throttle.succeeded(key)
    assert isinstance(new, str)
    return new
