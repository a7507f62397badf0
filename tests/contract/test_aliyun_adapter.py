"""The Alibaba Cloud adapter against the emulator over HTTP: SPI verification (over
every parameter, known or not) and its answers, usage pushed through Alibaba's SDKs
on both sites, the vendor's batch, rate and lateness rules, and each way a call
fails."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from accrual.billing.domain.marketplace import (
    Buyer,
    NotificationRejected,
    Refused,
    ReportStatus,
    TokenRejected,
    Transient,
    UsageReport,
)
from accrual.billing.marketplaces.aliyun import (
    AliyunMarketplace,
    SpiKind,
    instance_id_for,
    profile_for,
    spi_answer,
    spi_token,
)
from tests.contract.conftest_aliyun import (  # noqa: F401 - fixtures
    PRODUCT,
    SPI_KEY,
    T0,
    Aliyun,
    aliyun_fixture,
    aliyun_served_fixture,
)

HOUR = timedelta(hours=1)
LAST_HOUR = T0.replace(minute=0) - HOUR  # 09:00, due before 10:59


def buyer(instance: str, account: str = "1234567890123456") -> Buyer:
    return Buyer(vendor="aliyun", account_id=account, product_code=PRODUCT,
                 license_ref=instance)


def usage(key: str, instance: str, quantity: int = 5, at: datetime = LAST_HOUR) -> UsageReport:
    return UsageReport(key=key, buyer=buyer(instance), dimension="usage_minor",
                       period_start=at, quantity=quantity)


def signed(params: dict[str, str], key: str = SPI_KEY["china"]) -> str:
    return urlencode({**params, "token": spi_token(params, key)})


# --- SPI ---------------------------------------------------------------------------------


def test_the_token_is_md5_of_the_sorted_parameters_and_the_key() -> None:
    # Alibaba's worked example (marketplaces.md §2.2).
    assert spi_token({"p2": "2", "p1": "1", "p3": "3", "token": "x"}, "isvkey") == (
        "691b1c2be27485a87fb000de6f89f1d3")


def test_verify_spi_checks_every_parameter_and_names_the_event(aliyun: Aliyun) -> None:
    market = aliyun.adapter()
    create = {"action": "createInstance", "aliUid": "1234567890123456",
              "orderBizId": "7000000000001", "orderId": "900000000000001",
              "productCode": PRODUCT, "skuId": "standard", "trial": "false",
              "expiredOn": "2026-12-26 18:30:00", "package_version": "v2", "Zeta": "z y"}
    event = market.verify_spi("GET", "/spi", signed(create), T0)
    assert event.kind == SpiKind.CREATE and event.order_biz_id == "7000000000001"
    assert event.extra == (("package_version", "v2"), ("Zeta", "z y"))
    assert event.expires_at == datetime(2026, 12, 26, 10, 30, tzinfo=UTC)
    assert event.trial is False and event.instance_id is None
    # Decoded pairs work as well as the raw query.
    pairs = [*create.items(), ("token", spi_token(create, SPI_KEY["china"]))]
    assert market.verify_spi("GET", "/spi", pairs, T0) == event
    assert market.buyer_for(event) == Buyer(vendor="aliyun", account_id="1234567890123456",
                                            product_code=PRODUCT, license_ref="7000000000001")

    def rejected(query: str, method: str = "GET", now: datetime = T0) -> str:
        with pytest.raises(NotificationRejected) as caught:
            market.verify_spi(method, "/spi", query, now)
        return caught.value.code

    tampered = signed(create).replace("package_version=v2", "package_version=v3")
    assert rejected(tampered) == "bad_token"
    assert rejected(signed(create) + "&added=1") == "bad_token"  # unknown, yet signed over
    assert rejected(signed(create, key="another-isv")) == "bad_token"
    assert rejected(urlencode(create)) == "missing_token"
    assert rejected(signed(create), method="POST") == "method_not_allowed"
    assert rejected(signed(create) + "&trial=true") == "malformed"  # given twice
    assert rejected(signed({**create, "productCode": "cmapi0000"})) == "wrong_product"
    assert rejected(signed({**create, "expiredOn": "2026-12-26T18:30:00Z"})) == "malformed"
    assert rejected(signed({**create, "trial": "yes"})) == "malformed"
    assert rejected(signed({"action": "deleteEverything", "instanceId": "1"})) == (
        "unknown_action")
    assert rejected(signed({"action": "renewInstance", "instanceId": "1"})) == "malformed"
    login = {"action": "verify", "instanceId": "7000000000001",
             "timeStamp": "2026-11-26 18:30:00"}
    assert market.verify_spi("GET", "/spi", signed(login), T0 + timedelta(minutes=4)).kind == (
        SpiKind.LOGIN)
    assert rejected(signed(login), now=T0 + timedelta(minutes=6)) == "stale"
    release = {"action": "releaseInstance", "instanceId": "7", "isRefund": "true",
               "orderId": "1"}
    assert market.verify_spi("GET", "/spi", signed(release), T0).refund is True


def test_answers_are_idempotent_for_a_repeated_create(aliyun: Aliyun) -> None:
    aliyun.product()
    bought = aliyun.buy()
    first, again = (e for _, e in aliyun.isv.events)
    assert first == again  # the very same call, sent twice by the marketplace
    assert spi_answer(first) == spi_answer(again) == {"instanceId": bought["order_biz_id"]}
    assert aliyun.isv.answers[0] == aliyun.isv.answers[1]
    assert aliyun.isv.answers[0]["appInfo"]["username"] == "admin"
    assert spi_answer(first, pending=True) == {"instanceId": "0"}
    renew = aliyun.ctl("POST", f"/control/instances/{bought['order_biz_id']}/renew",
                       json={"term_days": 5})
    assert renew["spi_calls"][-1]["answer"] == {"success": True}
    with pytest.raises(ValueError):
        instance_id_for(aliyun.isv.events[-1][1])


def test_what_alibaba_does_not_have_is_refused_clearly(aliyun: Aliyun) -> None:
    market = aliyun.adapter()
    with pytest.raises(TokenRejected) as token:
        market.resolve_buyer("anything")
    assert token.value.code == "not_supported"
    with pytest.raises(Refused) as entitlement:
        market.entitlement(buyer("1"))
    assert entitlement.value.code == "not_supported"
    with pytest.raises(NotificationRejected) as notification:
        market.verify_notification({}, b"{}", T0)
    assert notification.value.code == "not_supported"


# --- usage -------------------------------------------------------------------------------


def test_limits_and_profiles(aliyun: Aliyun) -> None:
    china, intl = aliyun.adapter(), aliyun.adapter("international")
    assert (china.vendor, china.currency, intl.vendor, intl.currency) == (
        "aliyun", "CNY", "aliyun", "USD")
    assert (profile_for("CNY"), profile_for("USD")) == ("china", "international")
    with pytest.raises(ValueError):
        profile_for("EUR")
    # Alibaba keeps every push: the reporter must never resend one that may have arrived.
    assert china.limits.resend_safe is False and intl.limits.resend_safe is False
    assert china.limits.batch_size == 100 and china.limits.period == HOUR
    assert china.limits.lateness == timedelta(hours=1, minutes=59)
    assert china.limits.min_quantity == 0
    daily = aliyun.adapter(billing="daily")
    assert daily.limits.period == timedelta(days=1)
    assert daily.limits.lateness == timedelta(days=1, hours=1, minutes=59)
    # Periods as Alibaba bills them: the hour, or the Beijing day; start + lateness is
    # then exactly Alibaba's deadline.
    late = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)  # 01:30 on the 27th in Beijing
    assert china.period_start(late) == datetime(2026, 11, 26, 17, tzinfo=UTC)
    beijing_day = daily.period_start(late)
    assert beijing_day == datetime(2026, 11, 26, 16, tzinfo=UTC)
    assert beijing_day + daily.limits.lateness == daily.listing.deadline(beijing_day)
    with pytest.raises(ValueError):
        aliyun.adapter(api="marketplaceintl")  # China meters through Market only


@pytest.mark.parametrize("signature", ["HMAC-SHA1", "ACS3-HMAC-SHA256"])
def test_china_reports_go_through_the_market_sdk(aliyun: Aliyun, signature: str) -> None:
    aliyun.product()
    one, two, three = aliyun.opened(), aliyun.opened(), aliyun.opened()
    market = aliyun.adapter(signature=signature)
    results = market.report([usage("c-1", one, 7), usage("c-2", two, 0),
                             usage("c-3", three, 2)])
    assert [r.status for r in results] == [ReportStatus.ACCEPTED] * 3
    (pushed,) = aliyun.pushes()
    assert pushed["signature_method"] == signature and pushed["version"] == "2015-11-01"
    assert [r.record_id for r in results] == [f"{pushed['request_id']}#{n}" for n in (1, 2, 3)]
    records = aliyun.usage()["records"]
    assert [(r["instance_id"], r["entities"][0]["value"], r["start"]) for r in records] == [
        (one, "7", LAST_HOUR.isoformat()), (two, "0", LAST_HOUR.isoformat()),
        (three, "2", LAST_HOUR.isoformat())]
    assert records[0]["end"] == T0.replace(minute=0).isoformat()


def test_international_reports_name_each_record_by_our_key(aliyun: Aliyun) -> None:
    aliyun.product("international")
    instance = aliyun.opened("international")
    market = aliyun.adapter("international", metering_assist=None)
    (result,) = market.report([usage("charge-42", instance, 9)])
    assert result.status == ReportStatus.ACCEPTED and result.record_id == "charge-42"
    (pushed,) = aliyun.pushes("international")
    assert pushed["version"] == "2022-12-30"
    (record,) = pushed["records"]
    assert record["push_order_biz_id"] == "charge-42"
    assert record["entities"] == [{"key": "Frequency", "value": "9", "metering_assist": None}]
    aliyun.clock.advance(timedelta(seconds=60))
    with pytest.raises(Refused) as unknown:
        market.report([usage("charge-43", "no-such-instance")])
    assert unknown.value.code == "unknown_instance"  # refused in the body, HTTP 200


def test_one_call_per_instance_a_minute_is_kept_without_calling(aliyun: Aliyun) -> None:
    aliyun.product()
    one, two = aliyun.opened(), aliyun.opened()
    market = aliyun.adapter()
    assert market.report([usage("a", one)])[0].status == ReportStatus.ACCEPTED
    aliyun.clock.advance(timedelta(seconds=30))
    # (Another charge of the same hour: the center's ledger, not the adapter, keeps
    # each charge to one push.)
    held, sent = market.report([usage("b", one), usage("c", two)])
    assert (held.status, held.reason) == (ReportStatus.UNPROCESSED, "rate_limited")
    assert sent.status == ReportStatus.ACCEPTED
    assert len(aliyun.pushes()) == 2  # the held report made no call
    aliyun.clock.advance(timedelta(seconds=30))
    assert market.report([usage("b", one)])[0].status == ReportStatus.ACCEPTED
    # Another adapter (another process) does not know: the vendor's limit answers.
    with pytest.raises(Transient) as throttled:
        aliyun.adapter().report([usage("d", one)])
    assert throttled.value.throttled and throttled.value.code == "throttled"


def test_late_and_unfinished_periods_are_never_sent(aliyun: Aliyun) -> None:
    aliyun.product()
    instance = aliyun.opened()
    market = aliyun.adapter()
    aliyun.clock.set(T0.replace(minute=59))  # 10:59: usage of 09:00 had to come before
    late, current = market.report([usage("late", instance),
                                   usage("open", instance, at=T0.replace(minute=0))])
    assert (late.status, late.reason) == (ReportStatus.REFUSED, "deadline_passed")
    assert (current.status, current.reason) == (ReportStatus.UNPROCESSED, "period_open")
    assert aliyun.pushes() == []
    aliyun.clock.set(T0.replace(minute=58))
    assert market.report([usage("late", instance)])[0].status == ReportStatus.ACCEPTED


def test_whole_call_failures(aliyun: Aliyun) -> None:
    aliyun.product()
    instance = aliyun.opened()
    market = aliyun.adapter()
    aliyun.ctl("POST", "/control/faults", json={"kind": "internal_error", "calls": 1})
    with pytest.raises(Transient) as internal:
        market.report([usage("a", instance)])
    assert internal.value.code == "vendor_error" and not internal.value.throttled
    aliyun.ctl("POST", "/control/faults", json={"kind": "throttling", "calls": 1})
    with pytest.raises(Transient) as throttled:
        market.report([usage("a", instance)])
    assert throttled.value.throttled
    with pytest.raises(Transient) as keys:
        aliyun.adapter(access_key_secret="rotated").report([usage("a", instance)])
    assert keys.value.code == "credentials_rejected"
    with pytest.raises(Refused) as unknown:
        market.report([usage("a", "no-such-instance")])
    assert unknown.value.code == "unknown_instance"
    assert market.report([usage("a", instance)])[0].status == ReportStatus.ACCEPTED
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # Nothing listens: the request never left, which proves Alibaba holds nothing.
    with pytest.raises(Transient) as refused:
        aliyun.adapter(endpoint=f"127.0.0.1:{port}").report([usage("b", instance)])
    assert refused.value.code == "not_sent"
    # A server that takes the request and never answers: it may have kept it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(Transient) as timeout:
            aliyun.adapter(endpoint=f"127.0.0.1:{silent.getsockname()[1]}",
                           read_timeout_s=0.5).report([usage("b", instance)])
    assert timeout.value.code == "network"
    with pytest.raises(ValueError):
        market.report([usage(str(n), instance) for n in range(101)])
    assert isinstance(market, AliyunMarketplace)
