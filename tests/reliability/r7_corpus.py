"""R7's hostile corpus: one request per case, with the refusal it must get.

Each case names the defect class of the issue it probes (``d5`` = defect 5, …;
``r7`` for classes of RELIABILITY.md 2.6 beyond the listed defects), the request,
the status and stable code expected, and whether anything may be stored (row
counts of every table of both databases before and after, plus a follow-up read
where a count cannot tell). A usage batch of one bad record is judged by the
record's code (``rejected[0].code``), since the batch's own is always
``all_records_rejected``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters.tables import metadata as billing_metadata
from accrual.billing.payments.gateway import SIGNATURE_HEADER, sign
from accrual.clock import ManualClock
from accrual.console.adapters.tables import metadata as console_metadata
from tests.conftest import ADMIN
from tests.reliability.r7_support import Tenant, make_tenant

MB = 1024 * 1024
JSON = {"content-type": "application/json"}
ACCEPTED_2XX = range(200, 300)


@dataclass
class Ctx:
    runtime: Runtime
    client: TestClient
    clock: ManualClock
    a: Tenant
    b: Tenant
    order_id: str = ""
    requests: int = 0

    def auth(self, who: str) -> dict[str, str]:
        tokens = {"operator": ADMIN, "a_console": self.a.console_token,
                  "a_billing": self.a.billing_token, "a_ingest": self.a.ingest_key,
                  "b_console": self.b.console_token, "b_billing": self.b.billing_token,
                  "b_ingest": self.b.ingest_key}
        return {"Authorization": f"Bearer {tokens[who]}"} if who != "none" else {}

    def fill(self, text: str) -> str:
        return (text.replace("{a_ws}", self.a.workspace_id).replace("{a_acct}", self.a.billing_account_id)
                .replace("{b_ws}", self.b.workspace_id).replace("{b_acct}", self.b.billing_account_id)
                .replace("{order}", self.order_id))


Body = bytes | Callable[[Ctx], bytes] | None
Check = Callable[[Ctx, Any], str | None]


@dataclass(frozen=True)
class Case:
    name: str
    defect: str
    method: str
    path: str
    who: str
    body: Body
    status: int | tuple[int, ...]
    codes: tuple[str, ...]
    headers: dict[str, Any] = field(default_factory=lambda: dict(JSON))
    # Extra judgement on the response (None when fine, else what is wrong).
    check: Check | None = None
    # Row counts may change (a request that must succeed, e.g. a replayed notify).
    may_store: bool = False
    # Send through the raw ASGI driver: (declared content-length, bytes actually offered).
    declared: tuple[int, int] | None = None


@dataclass
class Result:
    case: Case
    status: int
    code: str | None
    stored: bool
    seconds: float
    problem: str | None
    bytes_read: int | None = None
    undocumented: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def invalid_accepted(self) -> bool:
        """Answered 2xx where a refusal was due, or stored what must not be."""
        expected = self.case.status if isinstance(self.case.status, tuple) else (self.case.status,)
        accepted = 200 <= self.status < 300 and self.status not in expected
        return accepted or (self.stored and not self.case.may_store)

    def line(self) -> str:
        c = self.case
        want = "|".join(map(str, c.status)) if isinstance(c.status, tuple) else c.status
        return (f"- [{c.defect}] {c.name}: {c.method} {c.path} -> {self.status} {self.code} "
                f"(want {want} {'|'.join(c.codes)}){' STORED' if self.stored else ''}: "
                f"{self.problem}")


@dataclass
class Outcome:
    results: list[Result]
    requests: int
    wall_s: float


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


_ids = itertools.count(1)


def record(ctx_ws: str = "{a_ws}", **overrides: Any) -> dict[str, Any]:
    """A valid record (a fresh id each time), with ``overrides``."""
    base: dict[str, Any] = {"id": f"r7-{next(_ids)}", "workspace_id": ctx_ws, "item": "logs",
                            "time": "2026-11-26T09:00:00+08:00", "quantity": "5",
                            "retention_days": 7}
    base.update(overrides)
    return base


def usage_body(*records: dict[str, Any] | str) -> Callable[[Ctx], bytes]:
    """A usage batch; raw strings are spliced in as they are (for numbers JSON cannot say)."""
    def build(ctx: Ctx) -> bytes:
        parts = [ctx.fill(r if isinstance(r, str) else json.dumps(r)) for r in records]
        return ('{"records": [' + ", ".join(parts) + "]}").encode()
    return build


def raw_record(quantity_json: str) -> str:
    return ('{"id": "r7-raw-' + str(next(_ids)) + '", "workspace_id": "{a_ws}", "item": "logs", '
            '"time": "2026-11-26T09:00:00+08:00", "retention_days": 7, "quantity": '
            + quantity_json + "}")


def recharge(amount_json: str, reference: str = "r7-ref") -> bytes:
    return ('{"amount": ' + amount_json + ', "reference": ' + json.dumps(reference) + "}").encode()


def registration(**overrides: Any) -> bytes:
    body = {"email": "zed@example.com", "password": "correct horse battery", "username": "zed",
            "workspace_name": "Zed team", "language": "en"}
    body.update(overrides)
    return j(body)


def _no_foreign_data(ctx: Ctx, response: Any) -> str | None:
    """Nothing of tenant a that tenant b did not send itself: a's names, e-mail, keys."""
    text = response.text
    for secret in (f"{ctx.a.name}@example.com", f"{ctx.a.name}'s team", ctx.a.ingest_key,
                   ctx.a.console_token, ctx.a.billing_token, '"username":"' + ctx.a.name):
        if secret in text:
            return f"the answer shows tenant a's {secret!r}"
    return None


def _allow_header(_ctx: Ctx, response: Any) -> str | None:
    return None if response.headers.get("allow") else "405 without an Allow header"


# -- payment notifies ---------------------------------------------------------------

def _notify(ctx: Ctx, *, amount: str = "50.00", currency: str = "CNY", txn: str = "txn-r7-1",
            order: str | None = None, status: str = "paid") -> bytes:
    return j({"order_id": order or ctx.order_id, "transaction_id": txn, "amount": amount,
              "currency": currency, "status": status,
              "paid_at": ctx.clock.now().isoformat()})


def _signed(ctx: Ctx, body: bytes, *, shift_s: int = 0, secret: str | None = None) -> dict[str, str]:
    gateway: Any = ctx.runtime.billing.payments.gateway
    when = ctx.clock.now() + timedelta(seconds=shift_s)
    return {**JSON, SIGNATURE_HEADER: sign(secret or gateway.secret, body, when)}


@dataclass(frozen=True)
class NotifyCase:
    name: str
    body: Callable[[Ctx], bytes]
    status: int
    codes: tuple[str, ...]
    shift_s: int = 0
    forged: bool = False
    may_store: bool = False
    outcome: str | None = None


NOTIFIES = [
    NotifyCase("forged signature (another secret)", lambda c: _notify(c), 400,
               ("invalid_signature",), forged=True),
    NotifyCase("stale notify, signed 301 s ago", lambda c: _notify(c), 400, ("stale_notify",),
               shift_s=-301),
    NotifyCase("notify signed 301 s in the future", lambda c: _notify(c), 400, ("stale_notify",),
               shift_s=301),
    NotifyCase("notify with another amount", lambda c: _notify(c, amount="5000.00"), 400,
               ("amount_mismatch",)),
    NotifyCase("notify amount NaN", lambda c: _notify(c, amount="NaN"), 400, ("amount_mismatch",)),
    NotifyCase("notify amount 1E+999999", lambda c: _notify(c, amount="1E+999999"), 400,
               ("amount_mismatch",)),
    NotifyCase("notify in another currency", lambda c: _notify(c, currency="USD"), 400,
               ("currency_mismatch",)),
    NotifyCase("notify for an unknown order", lambda c: _notify(c, order="ro_000000000000000000000000"),
               400, ("unknown_order",)),
    NotifyCase("genuine notify (credits once)", lambda c: _notify(c), 200, (),
               may_store=True, outcome="credited"),
    NotifyCase("the same notify replayed", lambda c: _notify(c), 200, (), outcome="duplicate"),
    NotifyCase("the paid order, another transaction", lambda c: _notify(c, txn="txn-r7-2"), 409,
               ("order_already_paid",)),
]


def _cash(ctx: Ctx) -> str:
    response = ctx.client.get(f"/billing/v1/accounts/{ctx.a.billing_account_id}/overview",
                              headers=ctx.auth("a_billing"))
    return str(response.json().get("cash"))


# -- the cases ------------------------------------------------------------------------

USAGE = "/console/v1/usage"
RECHARGE = "/billing/v1/admin/accounts/{a_acct}/recharges"
ORDERS = "/billing/v1/accounts/{a_acct}/recharge-orders"
Q = ("invalid_quantity",)
AMOUNT = ("invalid_amount", "invalid_request")
DATE = ("invalid_request", "invalid_date", "date_out_of_range")
MONTH = ("invalid_request", "invalid_month", "month_out_of_range", "date_out_of_range")
NAME = ("invalid_request", "invalid_name", "invalid_workspace_name")
MALFORMED = ("malformed_json",)
MEDIA = ("unsupported_media_type",)
TOO_LARGE = ("payload_too_large",)
EDGE = (200, 422)


def _quantity_cases() -> list[Case]:
    bad = {"negative quantity": '"-1"', "negative integer quantity": "-1",
           "NaN quantity (string)": '"NaN"', "Infinity quantity (string)": '"Infinity"',
           "quantity 1e309 (string)": '"1e309"', "quantity 1E+999999 (string)": '"1E+999999"',
           "40-digit quantity": '"' + "9" * 40 + '"', "40-digit quantity (JSON number)": "9" * 40,
           "fractional quantity": '"1.5"', "too many decimals": '"1.0000000000000000000001"',
           "float quantity (JSON number)": "7.5", "exponent quantity (string)": '"1e3"',
           "Arabic-Indic digits": '"\\u0661\\u0662\\u0663"', "full-width digits": '"\\uff11\\uff12"',
           "underscore in quantity": '"1_000"', "surrounding spaces": '" 7 "',
           "leading plus sign": '"+7"', "hex quantity": '"0x10"', "empty quantity": '""',
           "boolean quantity": "true", "null quantity": "null", "object quantity": '{"$gt": 0}'}
    cases = [Case(f"usage: {name}", "d5", "POST", USAGE, "a_ingest",
                  usage_body(raw_record(value)), 422, Q) for name, value in bad.items()]
    # JSON numbers past the parser's bounds (100 digits, 1e±100) refuse the whole body.
    cases += [Case(f"usage: quantity {value} (JSON number)", "r7", "POST", USAGE, "a_ingest",
                   usage_body(raw_record(value)), 400, MALFORMED) for value in ("1e309", "1E+999999")]
    # A record over the item's own per-record bound (defect 1's first line of defence).
    cases.append(Case("usage: quantity above the per-record bound", "d1", "POST", USAGE, "a_ingest",
                      usage_body(record(quantity="1" + "0" * 18)), 422, Q))
    return cases


def _amount_cases() -> list[Case]:
    bad = {"negative amount": '"-1.00"', "zero amount": '"0"', "zero amount 0.00": '"0.00"',
           "NaN amount": '"NaN"', "Infinity amount": '"Infinity"', "amount 1e309": '"1e309"',
           "amount 1E+999999": '"1E+999999"',
           "40-digit amount": '"' + "9" * 40 + '"', "too many decimals": '"1.001"',
           "float amount (JSON number)": "1.5", "Arabic-Indic digits": '"\\u0661\\u0662\\u0663"',
           "underscore in amount": '"1_000"', "surrounding spaces": '" 7 "',
           "amount above the largest balance": '"1000000000000000000.00"'}
    cases = [Case(f"operator recharge: {name}", "d5" if "digit" in name or "score" in name
                  or "spaces" in name else "r7", "POST", RECHARGE, "operator",
                  recharge(value, f"r7-{i}"), 422, AMOUNT) for i, (name, value) in enumerate(bad.items())]
    cases += [
        Case("operator recharge: amount 1E+999999 (JSON number)", "r7", "POST", RECHARGE,
             "operator", recharge("1E+999999", "r7-json-exp"), 400, MALFORMED),
        Case("self-service recharge order: negative amount", "r7", "POST", ORDERS, "a_billing",
             j({"amount": "-5.00"}), 422, AMOUNT, headers={**JSON, "Idempotency-Key": "r7-neg"}),
        Case("self-service recharge order: Arabic-Indic digits", "d5", "POST", ORDERS, "a_billing",
             j({"amount": "\u0661\u0660"}), 422, AMOUNT, headers={**JSON, "Idempotency-Key": "r7-ar"}),
        Case("self-service recharge order: 1E+999999", "r7", "POST", ORDERS, "a_billing",
             j({"amount": "1E+999999"}), 422, AMOUNT, headers={**JSON, "Idempotency-Key": "r7-exp"}),
        Case("self-service recharge order: non-ASCII Idempotency-Key", "d8", "POST", ORDERS,
             "a_billing", j({"amount": "5.00"}), 422,
             ("invalid_idempotency_key", "invalid_request"),
             headers={**JSON, "Idempotency-Key": "k\u00e9y".encode()}),
        Case("card purchase: face value 1_000", "d5", "POST", "/billing/v1/accounts/{a_acct}/cards",
             "a_billing", j({"face_value": "1_000"}), 422, AMOUNT,
             headers={**JSON, "Idempotency-Key": "r7-card"}),
        Case("alert threshold: surrounding spaces", "d5", "PUT",
             "/console/v1/workspaces/{a_ws}/alerts/logs", "a_console", j({"threshold": " 7 "}),
             422, ("invalid_threshold", "invalid_request", "invalid_amount")),
        Case("alert threshold: NaN", "r7", "PUT", "/console/v1/workspaces/{a_ws}/alerts/logs",
             "a_console", j({"threshold": "NaN"}), 422,
             ("invalid_threshold", "invalid_request", "invalid_amount")),
        Case("voucher codes: count 10**40", "r7", "POST", "/billing/v1/admin/voucher-codes",
             "operator", b'{"kind": "voucher_standard", "amount": "10", "count": 1' + b"0" * 40 + b"}",
             422, ("invalid_request", "invalid_count")),
    ]
    return cases


def _json_cases() -> list[Case]:
    deep = b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_obj = b'{"email": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    return [
        # A lax integer field made an int of it (its refusal could not be printed: 500), and
        # int(Decimal("1E+999999")) in a counting rule runs for over a minute.
        Case("JSON number past the parser bounds, alert threshold", "r7", "PUT",
             "/console/v1/workspaces/{a_ws}/alerts/logs", "a_console",
             b'{"threshold": 1E+9999}', 400, MALFORMED),
        Case("JSON number past the parser bounds, usage attribute", "r7", "POST", USAGE,
             "a_ingest", usage_body('{"id": "r7-spans", "workspace_id": "{a_ws}", "item": '
                                    '"trace", "time": "2026-11-26T09:00:00+08:00", "quantity": 1, '
                                    '"attributes": {"spans": 1E+999999}}'), 400, MALFORMED),
        Case("duplicate key, recharge", "d6", "POST", RECHARGE, "operator",
             b'{"amount": "1.00", "amount": "500.00", "reference": "r7-dup"}', 400, MALFORMED),
        Case("duplicate key, registration", "d6", "POST", "/console/v1/registrations", "none",
             b'{"email": "dup@example.com", "email": "dup2@example.com", "password": '
             b'"correct horse battery", "username": "dupe", "workspace_name": "Dup"}', 400, MALFORMED),
        Case("duplicate key, alert threshold", "d6", "PUT",
             "/console/v1/workspaces/{a_ws}/alerts/logs", "a_console",
             b'{"threshold": "1.00", "threshold": "500.00"}', 400, MALFORMED),
        Case("duplicate key, recharge order", "d6", "POST", ORDERS, "a_billing",
             b'{"amount": "1.00", "amount": "500.00"}', 400, MALFORMED,
             headers={**JSON, "Idempotency-Key": "r7-dupkey"}),
        Case("duplicate key, usage", "d6", "POST", USAGE, "a_ingest",
             usage_body('{"id": "r7-d", "id": "r7-e", "workspace_id": "{a_ws}", "item": "logs", '
                        '"time": "2026-11-26T09:00:00+08:00", "quantity": "1"}'), 400, MALFORMED),
        Case("bad UTF-8, recharge", "r7", "POST", RECHARGE, "operator",
             b'{"amount": "1.00", "reference": "r7-\xff\xfe"}', 400, MALFORMED),
        Case("bad UTF-8, usage", "r7", "POST", USAGE, "a_ingest",
             b'{"records": [{"id": "\xc3\x28"}]}', 400, MALFORMED),
        Case("bad UTF-8, registration", "r7", "POST", "/console/v1/registrations", "none",
             registration(workspace_name="Z\u00e9d").replace(b"Z\\u00e9d", b"Z\xe9d"), 400, MALFORMED),
        Case("UTF-16 body, usage", "d8", "POST", USAGE, "a_ingest",
             lambda c: usage_body(record())(c).decode().encode("utf-16"), 400, MALFORMED + MEDIA),
        Case("UTF-16 body declared as such, usage", "d8", "POST", USAGE, "a_ingest",
             lambda c: usage_body(record())(c).decode().encode("utf-16"), 415, MEDIA,
             headers={"content-type": "application/json; charset=utf-16"}),
        Case("Latin-1 body declared as such, usage", "d8", "POST", USAGE, "a_ingest",
             lambda c: usage_body(record(attributes={"host": "caf\u00e9"}))(c).decode().encode("latin-1"),
             415, MEDIA, headers={"content-type": "application/json; charset=iso-8859-1"}),
        Case("text/plain body, usage", "d8", "POST", USAGE, "a_ingest", usage_body(record()), 415,
             MEDIA, headers={"content-type": "text/plain"}),
        Case("no content type, usage", "d8", "POST", USAGE, "a_ingest", usage_body(record()), 415,
             MEDIA, headers={}),
        Case("form-encoded recharge", "d8", "POST", RECHARGE, "operator",
             b"amount=1.00&reference=r7-form", 415, MEDIA,
             headers={"content-type": "application/x-www-form-urlencoded"}),
        Case("text/plain registration", "d8", "POST", "/console/v1/registrations", "none",
             registration(), 415, MEDIA, headers={"content-type": "text/plain"}),
        Case("NaN literal, recharge", "d6", "POST", RECHARGE, "operator",
             b'{"amount": NaN, "reference": "r7-nan"}', 400, MALFORMED),
        Case("deep nesting, usage", "r7", "POST", USAGE, "a_ingest", deep, 400, MALFORMED),
        Case("deep nesting, registration", "r7", "POST", "/console/v1/registrations", "none",
             deep_obj, 400, MALFORMED),
        Case("deep nesting, recharge", "r7", "POST", RECHARGE, "operator",
             b'{"amount": ' + b"[" * 100_000 + b"]" * 100_000 + b', "reference": "x"}', 400, MALFORMED),
        Case("JSON array instead of object, recharge", "r7", "POST", RECHARGE, "operator",
             b'["1.00", "r7"]', 422, ("invalid_request",)),
        Case("empty body, recharge", "r7", "POST", RECHARGE, "operator", b"", 422,
             ("invalid_request",) + MALFORMED),
    ]


def _size_cases() -> list[Case]:
    many = ",".join(json.dumps({"id": f"r7-big-{i}", "workspace_id": "{a_ws}", "item": "logs",
                                "time": "2026-11-26T09:00:00+08:00", "quantity": "1"})
                    for i in range(60_000))
    big_name = "x" * (10 * MB)
    return [
        Case("usage: 60,000 records (10 MB)", "r7", "POST", USAGE, "a_ingest",
             lambda c: c.fill('{"records": [' + many + "]}").encode(), 413,
             ("batch_too_large",) + TOO_LARGE),
        Case("usage: 40 MB body", "d4", "POST", USAGE, "a_ingest",
             b'{"records": [], "pad": "' + b"x" * (40 * MB) + b'"}', 413, TOO_LARGE),
        Case("registration: 10 MB workspace name", "d4", "POST", "/console/v1/registrations",
             "none", registration(workspace_name=big_name), (413, 422), TOO_LARGE + NAME),
        Case("registration: 200 MB declared", "d4", "POST", "/console/v1/registrations", "none",
             None, 413, TOO_LARGE, declared=(200 * 1000 * 1000, 24 * MB)),
        Case("billing session: 200 MB declared", "d4", "POST", "/billing/v1/sessions", "none",
             None, 413, TOO_LARGE, declared=(200 * 1000 * 1000, 24 * MB)),
        Case("recharge: 200 MB declared", "d4", "POST", RECHARGE, "operator", None, 413,
             TOO_LARGE, declared=(200 * 1000 * 1000, 24 * MB)),
        Case("usage: 200 MB declared", "d4", "POST", USAGE, "a_ingest", None, 413, TOO_LARGE,
             declared=(200 * 1000 * 1000, 24 * MB)),
        Case("registration: 100,000-character email", "r7", "POST", "/console/v1/registrations",
             "none", registration(email="a" * 100_000 + "@example.com"), 422,
             ("invalid_request", "invalid_email")),
        Case("recharge: 10,000-character reference", "r7", "POST", RECHARGE, "operator",
             recharge('"1.00"', "r" * 10_000), 422, ("invalid_request",)),
        Case("usage: 10,000-character record id", "r7", "POST", USAGE, "a_ingest",
             usage_body(record(id="i" * 10_000)), 422, ("invalid_id",)),
        Case("workspace: 1,000,000-character name", "r7", "POST", "/console/v1/workspaces",
             "a_console", j({"name": "n" * 1_000_000}), 422, NAME),
    ]


def _date_cases() -> list[Case]:
    tx = "/billing/v1/accounts/{a_acct}/transactions"
    cons = "/billing/v1/accounts/{a_acct}/consumption"
    bills = "/billing/v1/admin/accounts/{a_acct}/monthly-bills"
    cases = [
        Case(f"transactions {q}", "d8", "GET", f"{tx}?{q}", "a_billing", None, 422, DATE)
        for q in ("from=2026-11-01&to=0", "from=0&to=2026-11-01")]
    # A read of a day at the edge of the calendar: refused, or answered (empty); never a 500.
    cases += [
        Case(f"transactions {q}", "d3", "GET", f"{tx}?{q}", "a_billing", None, EDGE, DATE)
        for q in ("from=9999-12-31&to=9999-12-31", "from=0001-01-01&to=0001-01-01",
                  "from=9999-12-31&to=9999-12-31&format=xlsx",
                  "from=0001-01-01&to=0001-01-01&format=csv")]
    cases += [
        Case(f"consumption {q}", "d3", "GET", f"{cons}?{q}", "a_billing", None, EDGE, DATE)
        for q in ("from=9999-12-31&to=9999-12-31", "from=0001-01-01&to=0001-01-01&format=xlsx")]
    cases += [
        Case(f"console {view} to=0", "d8", "GET", f"/console/v1/workspaces/{{a_ws}}/{view}?to=0",
             "a_console", None, 422, DATE)
        for view in ("billing-details", "consumption", "usage")]
    cases += [
        Case("console usage from=0001-01-01", "d3", "GET",
             "/console/v1/workspaces/{a_ws}/usage?from=0001-01-01&to=0001-01-01", "a_console",
             None, EDGE, DATE),
        Case("console billing-details to=9999-12-31", "d3", "GET",
             "/console/v1/workspaces/{a_ws}/billing-details?from=9999-12-31&to=9999-12-31",
             "a_console", None, EDGE, DATE),
        Case("daily bills date=0", "d8", "GET", "/billing/v1/accounts/{a_acct}/daily-bills?date=0",
             "a_billing", None, 422, DATE),
        Case("daily bills date=9999-12-31", "d3", "GET",
             "/billing/v1/accounts/{a_acct}/daily-bills?date=9999-12-31", "a_billing", None, EDGE,
             DATE),
    ]
    # 9999-12 and 0001-01 are defect 3; the looser formats are defect 8 (and 5 for digits).
    cases += [Case(f"operator monthly bill {{\"month\": {m!r}}}",
                   "d3" if m in ("9999-12", "0001-01") else "d5" if not m.isascii() else "d8",
                   "POST", bills, "operator", j({"month": m}), 422, MONTH)
              for m in ("9999-12", "0001-01", "2026-13", "2026-00", "2026-1", "26-11",
                        "\u0662\u0660\u0662\u0666-11")]
    # No bill can exist for these months: refused as a month, or not found.
    cases += [Case(f"monthly bill page {m}", "d3", "GET",
                   f"/billing/v1/accounts/{{a_acct}}/monthly-bills/{m}", "a_billing", None, (404, 422),
                   MONTH + ("bill_not_found",))
              for m in ("9999-12", "0001-01")]
    cases.append(Case("monthly bill page 2026-13", "d3", "GET",
                      "/billing/v1/accounts/{a_acct}/monthly-bills/2026-13", "a_billing", None, 422,
                      MONTH))
    cases += [
        Case("close-day 9999-12-31", "d3", "POST", "/console/v1/admin/close-day", "operator",
             j({"date": "9999-12-31"}), 422, DATE + ("day_not_over",)),
        Case("close-day 0001-01-01", "d3", "POST", "/console/v1/admin/close-day", "operator",
             j({"date": "0001-01-01"}), 422, DATE + ("day_beyond_horizon",)),
        Case("close-day numeric 0", "d8", "POST", "/console/v1/admin/close-day", "operator",
             j({"date": 0}), 422, DATE),
        Case("usage: time 0001-01-01", "d3", "POST", USAGE, "a_ingest",
             usage_body(record(time="0001-01-01T00:00:00+00:00")), 422, ("too_late",)),
        Case("usage: time 9999-12-31", "d3", "POST", USAGE, "a_ingest",
             usage_body(record(time="9999-12-31T23:59:59+00:00")), 422, ("time_in_future",)),
        Case("usage: numeric time 0", "d8", "POST", USAGE, "a_ingest",
             usage_body(record(time=0)), 422, ("invalid_time",)),
        Case("usage: time without offset", "r7", "POST", USAGE, "a_ingest",
             usage_body(record(time="2026-11-26T09:00:00")), 422, ("invalid_time",)),
    ]
    return cases


def _tenant_cases() -> list[Case]:
    probes = [
        ("GET", "/console/v1/workspaces/{a_ws}", None),
        ("GET", "/console/v1/workspaces/{a_ws}/usage", None),
        ("GET", "/console/v1/workspaces/{a_ws}/quota", None),
        ("GET", "/console/v1/workspaces/{a_ws}/billing-details", None),
        ("PUT", "/console/v1/workspaces/{a_ws}/alerts/logs", j({"threshold": "1.00"})),
        ("POST", "/console/v1/workspaces/{a_ws}/upgrade", j({"username": "tenb"})),
        ("POST", "/console/v1/workspaces/{a_ws}/dissolve", j({"workspace_name": "tena's team"})),
    ]
    cases = [Case(f"tenant b's console session on a's workspace: {m} {p}", "r7", m, p,
                  "b_console", body, 404, ("workspace_not_found", "not_found"),
                  check=_no_foreign_data) for m, p, body in probes]
    cases += [
        Case("tenant b's session binds a's workspace to b's account", "d8", "POST",
             "/billing/v1/accounts/{b_acct}/workspace-bindings", "b_billing",
             lambda c: j({"workspace_id": c.a.workspace_id}), 404, ("workspace_not_found",),
             check=_no_foreign_data),
        Case("tenant b moves a's workspace", "r7", "POST",
             "/billing/v1/accounts/{b_acct}/workspaces/{a_ws}/move", "b_billing",
             j({"to_username": "tenb"}), 404, ("workspace_not_found", "not_found"),
             check=_no_foreign_data),
        Case("tenant b's ingest key sends a's usage", "r7", "POST", USAGE, "b_ingest",
             usage_body(record()), 422, ("unknown_workspace", "foreign_workspace"),
             check=_no_foreign_data),
        Case("tenant b's ingest key asks admission for a", "r7", "POST", "/console/v1/admission",
             "b_ingest", lambda c: j({"checks": [{"workspace_id": c.a.workspace_id, "item": "logs"}]}),
             403, ("foreign_workspace",)),
        Case("unknown workspace (operator usage)", "r7", "POST", USAGE, "operator",
             usage_body(record(ctx_ws="ws_does_not_exist")), 422, ("unknown_workspace",)),
        Case("unknown workspace (console)", "r7", "GET", "/console/v1/workspaces/ws_nope", "a_console",
             None, 404, ("workspace_not_found", "not_found")),
        Case("wrong product code", "r7", "POST", USAGE, "a_ingest",
             usage_body(record(item="logz")), 422, ("unknown_item",)),
        Case("alert on an unknown item", "r7", "PUT", "/console/v1/workspaces/{a_ws}/alerts/logz",
             "a_console", j({"threshold": "1.00"}), 404, ("unknown_item", "not_found")),
    ]
    billing_probes = [("GET", "/billing/v1/accounts/{a_acct}/overview", None),
                      ("GET", ("/billing/v1/accounts/{a_acct}/transactions"
                               "?from=2026-11-01&to=2026-11-26"), None),
                      ("GET", "/billing/v1/accounts/{a_acct}/monthly-bills", None),
                      ("GET", "/billing/v1/accounts/{a_acct}/recharge-orders/{order}", None),
                      ("PATCH", "/billing/v1/accounts/{a_acct}/profile", j({"contact_name": "Mallory"}))]
    cases.append(Case("tenant b reads a's recharge order through b's own account", "r7", "GET",
                      "/billing/v1/accounts/{b_acct}/recharge-orders/{order}", "b_billing", None, 404,
                      ("order_not_found",), check=_no_foreign_data))
    # The billing center's documented tenancy rule: another account's session gets 403
    # `forbidden`, exactly as for an account that does not exist, so nothing leaks.
    cases += [Case(f"tenant b's billing session on a's account: {m} {p}", "r7", m, p, "b_billing",
                   body, 403, ("forbidden",), check=_no_foreign_data)
              for m, p, body in billing_probes]
    return cases


def _identity_cases() -> list[Case]:
    fw = "\uff54\uff45\uff4e\uff41"  # ｔｅｎａ
    return [
        Case("full-width e-mail of an existing account", "d7", "POST", "/console/v1/registrations",
             "none", registration(email=f"{fw}@example.com", username="tena2"), 409, ("email_taken",)),
        Case("upper-case e-mail of an existing account", "d7", "POST", "/console/v1/registrations",
             "none", registration(email="TENA@example.com", username="tena3"), 409, ("email_taken",)),
        Case("full-width username of an existing account", "d7", "POST", "/console/v1/registrations",
             "none", registration(email="tena4@example.com", username=fw), (409, 422),
             ("username_taken", "invalid_username")),
        Case("upper-case username of an existing account", "d7", "POST", "/console/v1/registrations",
             "none", registration(email="tena5@example.com", username="TENA"), 409, ("username_taken",)),
        Case("workspace name with a bidi override", "d7", "POST", "/console/v1/workspaces", "a_console",
             j({"name": "\u202etxt.exe"}), 422, NAME),
        Case("workspace name with a zero-width space", "d7", "POST", "/console/v1/workspaces",
             "a_console", j({"name": "tena\u200bteam"}), 422, NAME),
        Case("workspace name with a control character", "d7", "POST", "/console/v1/workspaces",
             "a_console", j({"name": "tena\u0007team"}), 422, NAME),
        Case("workspace name of spaces only", "d7", "POST", "/console/v1/workspaces", "a_console",
             j({"name": "   "}), 422, NAME),
        Case("registration: workspace name with bidi isolate", "d7", "POST",
             "/console/v1/registrations", "none",
             registration(email="bidi@example.com", username="bidi", workspace_name="a\u2067b"), 422,
             NAME),
        Case("registration: username with a zero-width joiner", "d7", "POST",
             "/console/v1/registrations", "none",
             registration(email="zwj@example.com", username="zw\u200dj"), 422,
             ("invalid_request", "invalid_username")),
        Case("registration: NUL in the password", "r7", "POST", "/console/v1/registrations", "none",
             registration(email="nul@example.com", username="nul", password="abc\u0000defghijkl"),
             422, ("invalid_request",)),
        Case("405 carries Allow", "d8", "DELETE", "/console/v1/registrations", "none", None, 405,
             ("method_not_allowed",), check=_allow_header),
    ]


CASES: list[Case] = (_quantity_cases() + _amount_cases() + _json_cases() + _size_cases()
                     + _date_cases() + _tenant_cases() + _identity_cases())


# -- running ---------------------------------------------------------------------------

def _row_counts(runtime: Runtime) -> dict[str, int]:
    counts: dict[str, int] = {}
    for side, engine, metadata in (("console", runtime.console.engine, console_metadata),
                                   ("billing", runtime.billing.engine, billing_metadata)):
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                counts[f"{side}.{table.name}"] = int(
                    conn.execute(select(func.count()).select_from(table)).scalar_one())
    return counts


def _code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    rejected = body.get("rejected")
    if isinstance(rejected, list) and rejected and isinstance(rejected[0], dict):
        return str(rejected[0].get("code"))
    error = body.get("error")
    return str(error.get("code")) if isinstance(error, dict) else None


@dataclass
class _RawResponse:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def _declared_body(runtime: Runtime, method: str, path: str, headers: dict[str, str],
                   declared: int, offered: int) -> tuple[_RawResponse, int]:
    """Send a body that claims ``declared`` bytes and offers at most ``offered`` (then the
    client goes quiet, like a slow upload); how many bytes the server pulled."""
    read = 0
    chunk = b"x" * MB
    sent: dict[str, Any] = {"status": 0, "headers": {}, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= offered:
            return {"type": "http.disconnect"}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": read < offered}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(declared).encode()))
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
             "headers": raw_headers, "client": ("testclient", 50000),
             "server": ("testserver", 80), "state": {}}
    try:
        asyncio.run(runtime.app(scope, receive, send))
    except Exception as error:  # noqa: BLE001 - a crash is a 500, as a server would answer
        if not sent["status"]:
            sent["status"] = 500
            sent["body"] = repr(error).encode()
    return _RawResponse(sent["status"], sent["headers"], sent["body"].decode("utf-8", "replace")), read


def _send(ctx: Ctx, case: Case) -> tuple[Any, int | None]:
    path = ctx.fill(case.path)
    headers = {**case.headers, **ctx.auth(case.who)}
    if case.declared is not None:
        return _declared_body(ctx.runtime, case.method, path, headers, *case.declared)
    body = case.body(ctx) if callable(case.body) else case.body
    if body is not None and not callable(case.body):
        body = ctx.fill(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    ctx.requests += 1
    return ctx.client.request(case.method, path, content=body, headers=headers), None


def _judge(ctx: Ctx, case: Case, response: Any, stored: bool, seconds: float,
           bytes_read: int | None) -> Result:
    code = _code(response)
    problems = []
    statuses = case.status if isinstance(case.status, tuple) else (case.status,)
    if response.status_code not in statuses:
        problems.append(f"status {response.status_code}")
    if case.codes and response.status_code >= 400 and code not in case.codes:
        problems.append(f"code {code}")
    if stored and not case.may_store:
        problems.append("something was stored")
    if bytes_read is not None and case.declared is not None and bytes_read >= case.declared[1]:
        problems.append(f"the server read all {bytes_read // MB} MB offered before answering")
    if case.check is not None and (extra := case.check(ctx, response)):
        problems.append(extra)
    if response.status_code >= 500:
        problems.append("server error: " + response.text[:120])
    return Result(case, response.status_code, code, stored, seconds,
                  "; ".join(problems) or None, bytes_read)


def _setup(runtime: Runtime, client: TestClient, clock: ManualClock) -> Ctx:
    ctx = Ctx(runtime, client, clock, make_tenant(client, "tena"), make_tenant(client, "tenb"))
    response = client.post(f"/billing/v1/accounts/{ctx.a.billing_account_id}/recharge-orders",
                           json={"amount": "50.00"},
                           headers={**ctx.auth("a_billing"), "Idempotency-Key": "r7-order-1"})
    assert response.status_code == 201, response.text
    ctx.order_id = response.json()["order_id"]
    return ctx


def _run_notifies(ctx: Ctx) -> list[Result]:
    results = []
    for notify in NOTIFIES:
        body = notify.body(ctx)
        headers = (_signed(ctx, body, secret="not-the-secret") if notify.forged
                   else _signed(ctx, body, shift_s=notify.shift_s))
        case = Case(f"payment notify: {notify.name}", "r7", "POST", "/billing/v1/payments/notify",
                    "none", body, notify.status, notify.codes, headers=headers,
                    may_store=notify.may_store)
        before_counts, before_cash = _row_counts(ctx.runtime), _cash(ctx)
        started = time.perf_counter()
        response = ctx.client.post("/billing/v1/payments/notify", content=body, headers=headers)
        ctx.requests += 1
        seconds = time.perf_counter() - started
        after_cash = _cash(ctx)
        stored = _row_counts(ctx.runtime) != before_counts or (
            after_cash != before_cash and not notify.may_store)
        result = _judge(ctx, case, response, stored, seconds, None)
        if (notify.outcome is not None and response.status_code == 200
                and response.json().get("outcome") != notify.outcome):
            result.problem = f"outcome {response.json().get('outcome')}, want {notify.outcome}"
        if notify.outcome == "credited" and after_cash == before_cash:
            result.problem = f"cash {before_cash} -> {after_cash}: nothing credited"
        results.append(result)
    # The genuine notify captured and replayed after the 300 s window: refused.
    body = _notify(ctx)
    headers = _signed(ctx, body)
    ctx.clock.advance(timedelta(seconds=301))
    case = Case("payment notify: captured and replayed 301 s later", "r7", "POST",
                "/billing/v1/payments/notify", "none", body, 400, ("stale_notify",), headers=headers)
    before = _row_counts(ctx.runtime)
    started = time.perf_counter()
    response = ctx.client.post("/billing/v1/payments/notify", content=body, headers=headers)
    ctx.requests += 1
    results.append(_judge(ctx, case, response, _row_counts(ctx.runtime) != before,
                          time.perf_counter() - started, None))
    return results


def _sequence_result(name: str, defect: str, method: str, path: str, problems: list[str],
                     status: int, code: str | None, seconds: float,
                     want: tuple[int, ...] = (200, 422)) -> Result:
    case = Case(name, defect, method, path, "", None, want, ())
    return Result(case, status, code, False, seconds, "; ".join(problems) or None)


def _daily_sum_overflow(ctx: Ctx) -> list[Result]:
    """Defect 1: 9,300 valid records of 10^15 for one workspace and one day (their sum is
    past 2^63). The batch may be refused in part, by a documented bound, but nothing that
    reads or closes the day may fail, for this workspace or the others."""
    ws, day = ctx.b.workspace_id, "2026-11-25"
    records = [{"id": f"r7-flood-{i}", "workspace_id": ws, "item": "logs",
                "time": f"{day}T12:00:00+08:00", "quantity": str(10**15), "retention_days": 7}
               for i in range(9_300)]
    started = time.perf_counter()
    response = ctx.client.post(USAGE, json={"records": records}, headers=ctx.auth("b_ingest"))
    ctx.requests += 1
    results = []
    problems = [] if response.status_code in (200, 413, 422) else [f"status {response.status_code}"]
    results.append(_sequence_result("usage: 9,300 records of 10^15 for one day", "d1", "POST", USAGE,
                                    problems, response.status_code, _code(response),
                                    time.perf_counter() - started, (200, 413, 422)))
    reads = [("GET", f"/console/v1/workspaces/{ws}/usage?from={day}&to={day}", "b_console", None),
             ("GET", f"/console/v1/workspaces/{ws}/quota", "b_console", None),
             ("POST", "/console/v1/admission", "b_ingest",
              {"checks": [{"workspace_id": ws, "item": "logs"}]}),
             ("POST", "/console/v1/admin/close-day", "operator", {"date": day}),
             ("GET", f"/console/v1/workspaces/{ctx.a.workspace_id}/usage?from={day}&to={day}",
              "a_console", None)]
    for method, path, who, body in reads:
        started = time.perf_counter()
        answer = ctx.client.request(method, path, json=body, headers=ctx.auth(who))
        ctx.requests += 1
        problems = [f"status {answer.status_code}"] if answer.status_code >= 500 else []
        shown = path.replace(ws, "{b_ws}").replace(ctx.a.workspace_id, "{a_ws}")
        results.append(_sequence_result(f"after the flood: {method} {shown}", "d1", method, shown,
                                        problems, answer.status_code, _code(answer),
                                        time.perf_counter() - started, (200, 403, 404, 422)))
    return results


def _balance_overflow(ctx: Ctx) -> list[Result]:
    """Defect 2: operator recharges of 999,999,999,999,999.99 (to a tenant of its own) until
    refused. Every answer is a credit or a documented refusal, never a 5xx; the balance stays
    an exact integer and equals the sum of the credits (a float would round it)."""
    from decimal import Decimal

    from sqlalchemy import text

    # A tenant of its own: nothing else moves its balance.
    c = make_tenant(ctx.client, "tenc")
    ctx.requests += 3
    path = f"/billing/v1/admin/accounts/{c.billing_account_id}/recharges"
    amount = "999999999999999.99"
    credited = Decimal(0)
    problems: list[str] = []
    started = time.perf_counter()
    last_status, last_code = 0, None
    for i in range(100):
        answer = ctx.client.post(path, json={"amount": amount, "reference": f"r7-max-{i}"},
                                 headers=ctx.auth("operator"))
        ctx.requests += 1
        last_status, last_code = answer.status_code, _code(answer)
        if answer.status_code == 200:
            credited += Decimal(amount)
            continue
        if answer.status_code != 422:
            problems.append(f"recharge {i + 1}: status {answer.status_code}")
        break
    overview = ctx.client.get(f"/billing/v1/accounts/{c.billing_account_id}/overview",
                              headers=c.billing)
    ctx.requests += 1
    if overview.status_code != 200:
        problems.append(f"overview: status {overview.status_code}")
    elif Decimal(overview.json()["cash"]) != credited:
        problems.append(f"cash shows {overview.json()['cash']}, credited {credited}")
    if ctx.runtime.billing.engine.dialect.name == "sqlite":
        with ctx.runtime.billing.engine.connect() as conn:
            kinds = {row[0] for row in conn.execute(
                text("SELECT DISTINCT typeof(balance_minor) FROM ledger_accounts"))}
        if kinds != {"integer"}:
            problems.append(f"balance_minor stored as {sorted(kinds)}")
    return [_sequence_result("operator recharges of 999,999,999,999,999.99 until refused", "d2",
                             "POST", "/billing/v1/admin/accounts/{c_acct}/recharges", problems,
                             last_status, last_code, time.perf_counter() - started)]


def _documented(client: TestClient) -> Callable[[str, str, int], bool | None]:
    """Whether ``/openapi.json`` documents ``status`` for the operation a request reached
    (None when no operation matches: an undeclared method or path)."""
    document = client.get("/openapi.json").json()
    operations = []
    for template, item in document["paths"].items():
        segments = ["[^/]+" if part.startswith("{") else re.escape(part)
                    for part in template.split("/")]
        pattern = re.compile("^" + "/".join(segments) + "$")
        for method, operation in item.items():
            operations.append((method.upper(), pattern, set(operation.get("responses", {}))))

    def documented(method: str, path: str, status: int) -> bool | None:
        bare = path.split("?", 1)[0]
        for candidate, pattern, statuses in operations:
            if candidate == method and pattern.match(bare):
                return str(status) in statuses or f"{str(status)[0]}XX" in statuses
        return None
    return documented


def run(runtime: Runtime, client: TestClient, clock: ManualClock) -> Outcome:
    started = time.perf_counter()
    ctx = _setup(runtime, client, clock)
    results: list[Result] = []
    for case in CASES:
        before = _row_counts(runtime)
        t0 = time.perf_counter()
        response, bytes_read = _send(ctx, case)
        seconds = time.perf_counter() - t0
        stored = _row_counts(runtime) != before
        results.append(_judge(ctx, case, response, stored, seconds, bytes_read))
    results += _run_notifies(ctx)
    results += _daily_sum_overflow(ctx)
    results += _balance_overflow(ctx)
    documented = _documented(client)
    for result in results:
        known = documented(result.case.method, ctx.fill(result.case.path), result.status)
        if known is False:
            result.undocumented = True
            result.problem = "; ".join(filter(None, [result.problem,
                                                     f"status {result.status} not documented"]))
    return Outcome(results, ctx.requests, round(time.perf_counter() - started, 2))
