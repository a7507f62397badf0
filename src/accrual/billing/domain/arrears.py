"""The arrears rule (reference-billing.md §5, decisions.md 17–19), without storage.

An account is in arrears while its prepaid balance is below zero. The movement
that leaves it there opens a *case*: a countdown (14 days) shown by every
workspace the account pays for, a reminder two days before its end, then the
lock of those workspaces. The movement that brings the balance back to zero or
above ends the case, and its workspaces are unlocked at once.

The functions here decide; ``services.arrears`` loads what they need, stores
what they decide and sends the messages and mails they name.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

COUNTDOWN = timedelta(days=14)
REMIND_BEFORE = timedelta(days=2)


class WorkspaceState(StrEnum):
    """What a workspace shows (``workspace.lock`` messages to its console)."""

    COUNTDOWN = "countdown"
    LOCKED = "locked"
    CLEAR = "clear"


class Standing(StrEnum):
    """An account's arrears as its holder sees them."""

    NONE = "none"
    COUNTDOWN = "countdown"
    LOCKED = "locked"


class Mail(StrEnum):
    """The mails of a case, each sent once per case and address."""

    COUNTDOWN = "countdown"  # the case opened
    REMINDER = "reminder"  # its lock is near
    LOCKED = "locked"  # workspaces were locked
    UNLOCKED = "unlocked"  # paid after the lock: the workspaces are free again
    SETTLED = "settled"  # paid before the lock


class Change(StrEnum):
    """What a movement does to an account's case."""

    NONE = "none"
    OPEN = "open"
    END = "end"


class Step(StrEnum):
    """What the clock does to an open case."""

    NONE = "none"
    REMIND = "remind"
    LOCK = "lock"


@dataclass(frozen=True, slots=True)
class Timeline:
    """The dates of an open case."""

    started_at: datetime
    lock_at: datetime
    reminded_at: datetime | None = None
    locked_at: datetime | None = None

    @property
    def shown(self) -> WorkspaceState:
        """What the workspaces the case holds show."""
        return WorkspaceState.LOCKED if self.locked_at is not None else WorkspaceState.COUNTDOWN

    @property
    def standing(self) -> Standing:
        return Standing.LOCKED if self.locked_at is not None else Standing.COUNTDOWN


def owed_minor(prepaid_minor: int) -> int:
    """What an account owes: the part of its prepaid balance below zero (0 when none)."""
    return max(-prepaid_minor, 0)


def after_movement(prepaid_minor: int, case_open: bool) -> Change:
    """After a movement: open a case when the account is newly below zero, end the open
    one when it no longer is; otherwise nothing."""
    in_arrears = prepaid_minor < 0
    if in_arrears and not case_open:
        return Change.OPEN
    if case_open and not in_arrears:
        return Change.END
    return Change.NONE


def opened(now: datetime, countdown: timedelta = COUNTDOWN) -> Timeline:
    """A case opened at ``now``: it locks after ``countdown``."""
    return Timeline(started_at=now, lock_at=now + countdown)


def step(case: Timeline, now: datetime, remind_before: timedelta = REMIND_BEFORE) -> Step:
    """What is due on an open case at ``now``: the lock once its date is reached (a
    case seen only after its lock date locks without reminding), else the reminder
    once within ``remind_before`` of it; each at most once."""
    if case.locked_at is not None:
        return Step.NONE
    if now >= case.lock_at:
        return Step.LOCK
    if case.reminded_at is None and now >= case.lock_at - remind_before:
        return Step.REMIND
    return Step.NONE


def advanced(case: Timeline, due: Step, now: datetime) -> Timeline:
    """The case once ``due`` is done at ``now``."""
    if due is Step.LOCK:
        return Timeline(case.started_at, case.lock_at, case.reminded_at, now)
    if due is Step.REMIND:
        return Timeline(case.started_at, case.lock_at, now, case.locked_at)
    return case


def ended_mail(locked: Collection[str]) -> Mail:
    """The mail of a case paid off: ``unlocked`` when it had locked workspaces."""
    return Mail.UNLOCKED if locked else Mail.SETTLED


def workspace_changes(case_id: int, shown: WorkspaceState, bound: Collection[str],
                      told: Mapping[str, tuple[int, str]]) -> dict[str, WorkspaceState]:
    """What to tell which workspace so that those of an open case show what it gives them.

    ``bound``: the workspaces the account pays for from its own funds (for an ended case,
    none); ``told``: what each workspace was last told, ``(case id, state)``. Each bound
    workspace that does not show ``shown`` for this case is told it; each other one that
    this case told something not ``clear`` is told ``clear``.
    """
    changes: dict[str, WorkspaceState] = {}
    for workspace_id in bound:
        if told.get(workspace_id) != (case_id, shown):
            changes[workspace_id] = shown
    for workspace_id, (told_by, state) in told.items():
        if workspace_id not in bound and told_by == case_id and state != WorkspaceState.CLEAR:
            changes[workspace_id] = WorkspaceState.CLEAR
    return changes


@dataclass(frozen=True, slots=True)
class LockChanges:
    """How a locked case's lock records follow the workspaces it holds."""

    fresh: tuple[str, ...]  # locked for the first time in this case
    back: tuple[str, ...]  # released earlier, bound again: locked again
    released: tuple[str, ...]  # no longer bound: unlocked


def lock_changes(bound: Collection[str], held: Mapping[str, datetime | None]) -> LockChanges:
    """``held``: the case's lock records, workspace → when it was unlocked (None while
    locked)."""
    return LockChanges(
        fresh=tuple(w for w in bound if w not in held),
        back=tuple(w for w in bound if w in held and held[w] is not None),
        released=tuple(w for w, unlocked_at in held.items()
                       if unlocked_at is None and w not in bound))


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    language: str
    workspaces: tuple[str, ...]  # the names the mail lists


@dataclass(frozen=True, slots=True)
class Workspace:
    name: str
    owner_email: str
    language: str


def recipients(account_email: str, account_language: str,
               workspaces: Collection[Workspace]) -> list[Recipient]:
    """Who gets a case's mail, once per address (compared without case): the account's
    address in its language listing every workspace, each other owner in their
    workspace's language listing theirs. Workspaces are listed in the order given."""
    found: dict[str, tuple[str, str, list[str]]] = {
        account_email.lower(): (account_email, account_language, [w.name for w in workspaces])}
    for workspace in workspaces:
        address = workspace.owner_email.lower()
        if address not in found:
            found[address] = (workspace.owner_email, workspace.language, [])
        if address != account_email.lower():
            found[address][2].append(workspace.name)
    return [Recipient(address, language, tuple(names))
            for address, language, names in found.values()]
