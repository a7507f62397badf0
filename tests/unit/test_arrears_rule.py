"""The arrears rule without a database: cases, the countdown timeline, what workspaces show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.domain.arrears import (
    COUNTDOWN,
    REMIND_BEFORE,
    Change,
    Mail,
    Recipient,
    Standing,
    Step,
    Timeline,
    Workspace,
    WorkspaceState,
    advanced,
    after_movement,
    ended_mail,
    lock_changes,
    opened,
    owed_minor,
    recipients,
    step,
    workspace_changes,
)

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1),
                       timezones=st.just(UTC))


def test_what_is_owed_is_the_prepaid_balance_below_zero() -> None:
    assert owed_minor(-340) == 340
    assert owed_minor(0) == 0
    assert owed_minor(500) == 0


@given(prepaid=st.integers(min_value=-10**17, max_value=10**17), case_open=st.booleans())
def test_after_a_movement_a_case_is_open_exactly_while_the_account_owes(
        prepaid: int, case_open: bool) -> None:
    change = after_movement(prepaid, case_open)
    open_after = {Change.OPEN: True, Change.END: False, Change.NONE: case_open}[change]
    assert open_after == (prepaid < 0)
    # Nothing to do when the case already agrees with the balance.
    assert after_movement(prepaid, open_after) is Change.NONE


def test_the_countdown_reminds_two_days_before_and_locks_after_fourteen_days() -> None:
    case = opened(T0)
    assert case == Timeline(started_at=T0, lock_at=T0 + timedelta(days=14))
    assert case.shown is WorkspaceState.COUNTDOWN and case.standing is Standing.COUNTDOWN
    assert step(case, T0) is Step.NONE
    assert step(case, T0 + timedelta(days=12) - timedelta(microseconds=1)) is Step.NONE
    assert step(case, T0 + timedelta(days=12)) is Step.REMIND
    reminded = advanced(case, Step.REMIND, T0 + timedelta(days=12))
    assert reminded.reminded_at == T0 + timedelta(days=12)
    assert step(reminded, T0 + timedelta(days=13)) is Step.NONE  # once
    assert step(reminded, T0 + timedelta(days=14)) is Step.LOCK
    locked = advanced(reminded, Step.LOCK, T0 + timedelta(days=14))
    assert locked.shown is WorkspaceState.LOCKED and locked.standing is Standing.LOCKED
    assert step(locked, T0 + timedelta(days=400)) is Step.NONE
    # First seen after its lock date: locked without reminding.
    assert step(case, T0 + timedelta(days=20)) is Step.LOCK


@given(start=moments,
       ticks=st.lists(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
                      max_size=12).map(sorted),
       countdown=st.sampled_from([COUNTDOWN, timedelta(days=3), timedelta(hours=1)]))
def test_along_any_ticks_the_case_reminds_at_most_once_and_locks_at_its_date(
        start: datetime, ticks: list[timedelta], countdown: timedelta) -> None:
    case = opened(start, countdown)
    done: list[tuple[Step, datetime]] = []
    for offset in ticks:
        now = start + offset
        due = step(case, now)
        if due is not Step.NONE:
            done.append((due, now))
        case = advanced(case, due, now)
    window = [start + o for o in ticks
              if case.lock_at - REMIND_BEFORE <= start + o < case.lock_at]
    late = [start + o for o in ticks if start + o >= case.lock_at]
    expected: list[tuple[Step, datetime]] = []
    if window:
        expected.append((Step.REMIND, window[0]))
    if late:
        expected.append((Step.LOCK, late[0]))
    assert done == expected
    assert case.locked_at == (late[0] if late else None)
    assert case.reminded_at == (window[0] if window else None)


def test_a_case_paid_off_mails_unlocked_only_when_it_had_locked() -> None:
    assert ended_mail(["w1"]) is Mail.UNLOCKED
    assert ended_mail([]) is Mail.SETTLED


def test_workspaces_are_told_what_their_case_gives_them() -> None:
    told = {"bound-told": (7, "countdown"), "bound-other-case": (3, "locked"),
            "left": (7, "countdown"), "left-clear": (7, "clear"), "other": (3, "locked")}
    changes = workspace_changes(7, WorkspaceState.LOCKED,
                                ["bound-new", "bound-told", "bound-other-case"], told)
    assert changes == {"bound-new": "locked", "bound-told": "locked",
                       "bound-other-case": "locked", "left": "clear"}
    # An ended case holds nothing: whatever it told is cleared.
    assert workspace_changes(7, WorkspaceState.COUNTDOWN, [], told) == {"bound-told": "clear",
                                                                         "left": "clear"}


states = st.sampled_from(list(WorkspaceState))


@given(bound=st.sets(st.sampled_from("abcdef")),
       told=st.dictionaries(st.sampled_from("abcdefgh"), st.tuples(st.sampled_from([1, 2]), states)),
       shown=st.sampled_from([WorkspaceState.COUNTDOWN, WorkspaceState.LOCKED]))
def test_telling_the_changes_leaves_nothing_to_tell(
        bound: set[str], told: dict[str, tuple[int, WorkspaceState]], shown: WorkspaceState
) -> None:
    changes = workspace_changes(1, shown, bound, told)
    after: dict[str, tuple[int, str]] = {**told, **{w: (1, state) for w, state in changes.items()}}
    assert workspace_changes(1, shown, bound, after) == {}
    assert all(after[w] == (1, shown) for w in bound)
    # Another case's workspaces are never touched unless this case holds them.
    assert all(w in bound for w, (case_id, _) in told.items() if case_id == 2 and w in changes)


def test_locks_follow_the_workspaces_of_a_locked_case() -> None:
    later = T0 + timedelta(days=15)
    lock = lock_changes(["new", "held", "back"], {"held": None, "back": later, "gone": None,
                                                  "gone-before": later})
    assert (lock.fresh, lock.back, lock.released) == (("new",), ("back",), ("gone",))


def test_each_address_gets_a_case_mail_once() -> None:
    found = recipients("Ada@Example.com", "en", [
        Workspace("Ada's team", "ada@example.com", "zh"),
        Workspace("Bob's lab", "bob@example.com", "zh"),
        Workspace("Bob's shop", "BOB@example.com", "en")])
    assert found == [
        Recipient("Ada@Example.com", "en", ("Ada's team", "Bob's lab", "Bob's shop")),
        Recipient("bob@example.com", "zh", ("Bob's lab", "Bob's shop"))]
