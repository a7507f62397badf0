"""Sign-in throttling on both sides' session endpoints: failures counted per account and
per client address in each side's database; past the limit 429 `too_many_attempts` with
`Retry-After`, the password not checked; a success clears the account's count."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as billing_tables
from accrual.billing.services import accounts as billing_accounts
from accrual.clock import ManualClock
from accrual.console.adapters import tables as console_tables
from accrual.console.services import accounts as console_accounts
from accrual.contract.errors import TooManyAttempts
from accrual.infra import credentials
from tests.helpers import register
from tests.integration.test_bad_input import error_code

RIGHT = "correct horse battery"
WRONG = "wrong password"


@dataclass(frozen=True)
class Side:
    name: str
    path: str
    identity: str  # the body field that names the account

    def body(self, name: str, password: str) -> dict[str, str]:
        value = f"{name}@example.com" if self.identity == "email" else name
        return {self.identity: value, "password": password}


SIDES = [Side("console", "/console/v1/sessions", "email"),
         Side("billing", "/billing/v1/sessions", "username")]


@pytest.fixture(params=SIDES, ids=lambda side: side.name)
def side(request: pytest.FixtureRequest) -> Side:
    side: Side = request.param
    return side


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check the sides' login runs (argon2), by the hash it checked."""
    checked: list[str] = []

    def counting(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return credentials.verify_password(password_hash, password)

    monkeypatch.setattr(console_accounts, "verify_password", counting)
    monkeypatch.setattr(billing_accounts, "verify_password", counting)
    return checked


@pytest.fixture
def elsewhere(runtime: Runtime) -> Iterator[Callable[[str], TestClient]]:
    """Clients of the same app connecting from other addresses."""
    made: list[TestClient] = []

    def client_from(address: str) -> TestClient:
        made.append(TestClient(runtime.app, client=(address, 40000)))
        return made[-1]

    yield client_from
    for client in made:
        client.close()


def attempt(client: TestClient, side: Side, name: str, password: str) -> Any:
    return client.post(side.path, json=side.body(name, password))


def fail(client: TestClient, side: Side, name: str, times: int) -> None:
    for n in range(times):
        assert error_code(attempt(client, side, name, WRONG), 401, f"failure {n + 1}") \
            == "invalid_credentials"


def refused(response: Any, retry_after_s: int) -> None:
    assert error_code(response, 429) == "too_many_attempts"
    assert response.headers["Retry-After"] == str(retry_after_s)
    assert response.json()["error"]["retry_after_s"] == retry_after_s
    assert "token" not in response.json()


def test_the_sixth_attempt_is_refused_unchecked_until_the_window_passes(
        client: TestClient, side: Side, clock: ManualClock, password_checks: list[str]) -> None:
    register(client, "ada")
    fail(client, side, "ada", 5)
    assert len(password_checks) == 5
    response = attempt(client, side, "ada", RIGHT)
    refused(response, 15 * 60)
    assert "15 minutes" in response.json()["error"]["message"]
    assert len(password_checks) == 5, "a refused attempt must not run the password check"
    clock.advance(timedelta(minutes=14, seconds=30))
    refused(attempt(client, side, "ada", RIGHT), 30)
    clock.advance(timedelta(seconds=30))
    assert attempt(client, side, "ada", RIGHT).status_code == 200
    assert len(password_checks) == 6


def test_the_account_is_locked_from_every_address_and_others_are_not(
        client: TestClient, side: Side, elsewhere: Callable[[str], TestClient]) -> None:
    register(client, "ada")
    register(client, "bob")
    fail(client, side, "ada", 5)
    # Another account from another address, and from the same address (its 5 failures
    # are far below the address's 20).
    assert attempt(elsewhere("198.51.100.4"), side, "bob", RIGHT).status_code == 200
    assert attempt(client, side, "bob", RIGHT).status_code == 200
    # The account itself stays locked wherever the attempt comes from.
    refused(attempt(elsewhere("203.0.113.9"), side, "ada", RIGHT), 15 * 60)


def test_the_spelling_given_counts_as_the_account(client: TestClient, side: Side) -> None:
    register(client, "ada")
    name = {"email": "ＡＤＡ", "username": "ＡＤＡ"}[side.identity]  # full-width, capitals
    fail(client, side, name, 3)
    fail(client, side, "ada", 2)
    refused(attempt(client, side, "ada", RIGHT), 15 * 60)


def test_a_success_clears_the_accounts_count(client: TestClient, side: Side,
                                            clock: ManualClock) -> None:
    register(client, "ada")
    fail(client, side, "ada", 4)
    assert attempt(client, side, "ada", RIGHT).status_code == 200
    fail(client, side, "ada", 4)  # 8 in the window, but only 4 since the success
    assert attempt(client, side, "ada", RIGHT).status_code == 200
    fail(client, side, "ada", 5)
    refused(attempt(client, side, "ada", RIGHT), 15 * 60)


def test_lockouts_double_up_to_the_maximum(client: TestClient, side: Side,
                                          clock: ManualClock) -> None:
    register(client, "ada")
    for minutes in (15, 30, 60, 60):
        fail(client, side, "ada", 5)
        refused(attempt(client, side, "ada", RIGHT), minutes * 60)
        clock.advance(timedelta(minutes=minutes))
    assert attempt(client, side, "ada", RIGHT).status_code == 200
    # The success forgot the lockouts: the next one is a window again.
    fail(client, side, "ada", 5)
    refused(attempt(client, side, "ada", RIGHT), 15 * 60)


def test_an_address_is_limited_across_accounts(
        client: TestClient, side: Side, clock: ManualClock,
        elsewhere: Callable[[str], TestClient], password_checks: list[str]) -> None:
    register(client, "ada")
    guesser = elsewhere("192.0.2.50")
    for n in range(20):  # two guesses at each of ten accounts, none of them locked
        assert attempt(guesser, side, f"user{n // 2}", WRONG).status_code == 401
    checks = len(password_checks)
    refused(attempt(guesser, side, "ada", RIGHT), 15 * 60)
    refused(attempt(guesser, side, "someone-else", WRONG), 15 * 60)
    assert len(password_checks) == checks
    # The accounts themselves are not locked: from another address ada signs in.
    assert attempt(client, side, "ada", RIGHT).status_code == 200
    clock.advance(timedelta(minutes=15))
    assert attempt(guesser, side, "ada", RIGHT).status_code == 200


def test_ipv6_addresses_count_by_their_64(client: TestClient, side: Side,
                                         elsewhere: Callable[[str], TestClient]) -> None:
    register(client, "ada")
    for n in range(20):
        assert attempt(elsewhere(f"2001:db8:1:2::{n + 1:x}"), side, f"user{n}", WRONG) \
            .status_code == 401
    refused(attempt(elsewhere("2001:db8:1:2:ffff::1"), side, "ada", RIGHT), 15 * 60)
    assert attempt(elsewhere("2001:db8:1:3::1"), side, "ada", RIGHT).status_code == 200


def _rows(runtime: Runtime, side: Side) -> int:
    table: Table = (console_tables if side.name == "console" else billing_tables).sign_in_failures
    engine = runtime.console.engine if side.name == "console" else runtime.billing.engine
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_old_counts_are_purged(client: TestClient, runtime: Runtime, side: Side,
                               clock: ManualClock, elsewhere: Callable[[str], TestClient]) -> None:
    for n in range(6):
        attempt(elsewhere(f"192.0.2.{n + 1}"), side, f"user{n}", WRONG)
    assert _rows(runtime, side) == 12  # an account and an address each
    fail(client, side, "locked", 5)  # a lockout is remembered longer (for the doubling)
    assert _rows(runtime, side) == 14
    clock.advance(timedelta(minutes=16))
    attempt(client, side, "late", WRONG)
    assert _rows(runtime, side) == 3  # the lockout and "late" with its address
    clock.advance(timedelta(hours=26))
    attempt(client, side, "later", WRONG)
    assert _rows(runtime, side) == 2


def test_the_services_raise_too_many_attempts(runtime: Runtime, client: TestClient) -> None:
    register(client, "ada")
    for _ in range(5):
        with pytest.raises(Exception, match="email or password is wrong"):
            runtime.console.accounts.login("ada@example.com", WRONG, "192.0.2.1")
        with pytest.raises(Exception, match="username or password is wrong"):
            runtime.billing.accounts.login("ada", WRONG, "192.0.2.1")
    with pytest.raises(TooManyAttempts) as console_refusal:
        runtime.console.accounts.login("ada@example.com", RIGHT, "192.0.2.1")
    with pytest.raises(TooManyAttempts) as billing_refusal:
        runtime.billing.accounts.login("ada", RIGHT)  # no address: the account's count
    assert console_refusal.value.retry_after_s == billing_refusal.value.retry_after_s == 900
    assert console_refusal.value.code == "too_many_attempts"
