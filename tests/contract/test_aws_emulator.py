"""The AWS Marketplace emulator against boto3 over HTTP: one test per item of the
AWS checklist (marketplaces.md §6), named after it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.contract.conftest import DIMENSION, PRODUCT, T0, Aws, clients_for

HOUR = timedelta(hours=1)


def record(account: str, *, at: datetime = T0 - HOUR / 2, dimension: str = DIMENSION,
           quantity: int | None = 1, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"Timestamp": at, "Dimension": dimension,
                            "CustomerAWSAccountId": account, **more}
    if quantity is not None:
        item["Quantity"] = quantity
    return item


def error_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def meter(aws: Aws, *records: dict[str, Any], raw: bool = False,
          product: str | None = PRODUCT) -> dict[str, Any]:
    client = aws.raw_meter if raw else aws.meter
    kwargs: dict[str, Any] = {"UsageRecords": list(records)}
    if product is not None:
        kwargs["ProductCode"] = product
    answer: dict[str, Any] = client.batch_meter_usage(**kwargs)
    return answer


def refused(aws: Aws, *records: dict[str, Any], raw: bool = False,
            product: str | None = PRODUCT) -> tuple[str, int, str]:
    client = aws.raw_meter if raw else aws.meter
    kwargs: dict[str, Any] = {"UsageRecords": list(records)}
    if product is not None:
        kwargs["ProductCode"] = product
    before = aws.records()["records"]
    code = error_of(client.batch_meter_usage, **kwargs)
    assert aws.records()["records"] == before, "a refused call recorded something"
    return code


@pytest.fixture
def buyer(aws: Aws) -> dict[str, Any]:
    aws.product()
    return aws.subscribe()


# --- protocol --------------------------------------------------------------------


def test_speaks_aws_json_1_1_with_the_target_header_and_aws_error_shape(aws: Aws) -> None:
    sent: list[Any] = []
    aws.entitlements.meta.events.register("before-send", lambda request, **_: sent.append(request))
    try:
        aws.entitlements.get_entitlements(ProductCode="nothing")
    finally:
        aws.entitlements.meta.events.unregister("before-send", sent.append)
    # botocore 1.44 sends JSON 1.1 to the entitlement service, though its model lists CBOR first.
    assert sent[-1].headers["X-Amz-Target"] == b"AWSMPEntitlementService.GetEntitlements"
    assert sent[-1].headers["Content-Type"] == b"application/x-amz-json-1.1"
    target = {"X-Amz-Target": "AWSMPMeteringService.ResolveCustomer",
              "Content-Type": "application/x-amz-json-1.1"}
    signed = {**target, "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20261126/x/y/aws4_request, "
                                         "SignedHeaders=host, Signature=00"}
    unsigned = httpx.post(aws.endpoint, headers=target, content=b'{"RegistrationToken": "x"}')
    assert unsigned.status_code == 403
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    bad = httpx.post(aws.endpoint + "/", headers=signed, content=b'{"RegistrationToken": "x"}')
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/x-amz-json-1.1"
    assert bad.json() == {"__type": "InvalidTokenException",
                          "message": "Registration token is invalid"}
    unknown = httpx.post(aws.endpoint, headers={**signed, "X-Amz-Target": "AWSMPMeteringService.Nope"},
                         content=b"{}")
    assert (unknown.status_code, unknown.json()["__type"]) == (400, "UnknownOperationException")


# --- registration tokens ---------------------------------------------------------


def test_a_token_resolves_once_to_account_product_and_license(aws: Aws, buyer: dict[str, Any]) -> None:
    answer = aws.meter.resolve_customer(RegistrationToken=buyer["registration_token"])
    assert answer["CustomerAWSAccountId"] == buyer["customer_aws_account_id"]
    assert answer["ProductCode"] == PRODUCT
    assert answer["LicenseArn"] == buyer["license_arn"]
    assert "CustomerIdentifier" not in answer  # not a legacy product
    code = error_of(aws.meter.resolve_customer, RegistrationToken=buyer["registration_token"])
    assert code[:2] == ("ExpiredTokenException", 400)


def test_a_legacy_product_also_answers_the_customer_identifier(aws: Aws) -> None:
    aws.product(legacy=True)
    buyer = aws.subscribe()
    answer = aws.meter.resolve_customer(RegistrationToken=buyer["registration_token"])
    assert answer["CustomerIdentifier"] == buyer["customer_identifier"]


def test_a_token_past_its_ttl_is_expired(aws: Aws, buyer: dict[str, Any]) -> None:
    aws.clock.advance(HOUR)
    code = error_of(aws.meter.resolve_customer, RegistrationToken=buyer["registration_token"])
    assert code[0] == "ExpiredTokenException"
    aws.ctl("PUT", "/control/config", json={"token_ttl_seconds": 7200})
    again = aws.subscribe()
    aws.clock.advance(HOUR)
    assert aws.meter.resolve_customer(RegistrationToken=again["registration_token"])


def test_an_unknown_token_is_invalid(aws: Aws, buyer: dict[str, Any]) -> None:
    code = error_of(aws.meter.resolve_customer, RegistrationToken="never-issued")
    assert code[:2] == ("InvalidTokenException", 400)


# --- BatchMeterUsage: whole-call rules -------------------------------------------


def test_more_than_25_records_is_a_validation_error(aws: Aws, buyer: dict[str, Any]) -> None:
    records = [record(buyer["customer_aws_account_id"], dimension=DIMENSION,
                      at=T0 - timedelta(minutes=i)) for i in range(26)]
    assert refused(aws, *records)[:2] == ("ValidationException", 400)
    assert len(meter(aws, *records[:25])["Results"]) == 25


def test_a_request_of_1_mb_or_more_is_a_validation_error(aws: Aws, buyer: dict[str, Any]) -> None:
    tags = [{"Key": f"k{i}" + "k" * 97, "Value": "v" * 256} for i in range(5)]
    heavy = [record(buyer["customer_aws_account_id"], quantity=500,
                    UsageAllocations=[{"AllocatedUsageQuantity": 1,
                                       "Tags": [{**t, "Value": f"{n:05d}" + t["Value"][5:]}
                                                for t in tags]}
                                      for n in range(500)],
                    at=T0 - timedelta(minutes=m)) for m in range(2)]
    code = refused(aws, *heavy)
    assert code[0] == "ValidationException" and "smaller than" in code[2]
    assert meter(aws, heavy[0])["Results"][0]["Status"] == "Success"  # one alone is < 1 MB


def test_one_product_per_call(aws: Aws) -> None:
    aws.product("prod-a")
    aws.product("prod-b")
    a, b = aws.subscribe("prod-a"), aws.subscribe("prod-b")
    mixed = [record(a["customer_aws_account_id"], LicenseArn=a["license_arn"]),
             record(b["customer_aws_account_id"], LicenseArn=b["license_arn"])]
    assert refused(aws, *mixed, product=None)[0] == "ValidationException"
    # Without ProductCode the licenses name the product.
    assert meter(aws, mixed[0], product=None)["Results"][0]["Status"] == "Success"


def test_timestamp_and_dimension_are_required(aws: Aws, buyer: dict[str, Any]) -> None:
    no_time = {"Dimension": DIMENSION, "CustomerAWSAccountId": buyer["customer_aws_account_id"]}
    no_dimension = {"Timestamp": T0, "CustomerAWSAccountId": buyer["customer_aws_account_id"]}
    assert refused(aws, no_time, raw=True)[0] == "ValidationException"
    assert refused(aws, no_dimension, raw=True)[0] == "ValidationException"


def test_quantity_defaults_to_0_and_must_be_in_0_to_2_31_minus_1(aws: Aws,
                                                                 buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    assert refused(aws, record(account, quantity=2**31), raw=True)[0] == "ValidationException"
    assert refused(aws, record(account, quantity=-1), raw=True)[0] == "ValidationException"
    assert refused(aws, record(account, quantity=None, QuantityAsDecimal="1.5", Quantity=1),
                   raw=True)[0] == "ValidationException"
    assert meter(aws, record(account, quantity=None))["Results"][0]["Status"] == "Success"
    assert meter(aws, record(account, quantity=2**31 - 1, dimension="seats"))["Results"][0][
        "Status"] == "Success"
    assert [r["quantity"] for r in aws.records()["records"]] == ["0", str(2**31 - 1)]


def test_customer_identifier_and_account_id_together_are_refused(aws: Aws) -> None:
    aws.product(legacy=True)
    buyer = aws.subscribe()
    both = record(buyer["customer_aws_account_id"],
                  CustomerIdentifier=buyer["customer_identifier"])
    assert refused(aws, both)[0] == "ValidationException"
    alone = {"Timestamp": T0 - HOUR, "Dimension": DIMENSION, "Quantity": 1,
             "CustomerIdentifier": buyer["customer_identifier"]}
    assert meter(aws, alone)["Results"][0]["Status"] == "Success"


def test_a_dimension_the_product_does_not_have_is_refused(aws: Aws, buyer: dict[str, Any]) -> None:
    code = refused(aws, record(buyer["customer_aws_account_id"], dimension="gigabytes"))
    assert code[0] == "InvalidUsageDimensionException"


def test_an_unknown_product_code_is_refused(aws: Aws, buyer: dict[str, Any]) -> None:
    code = refused(aws, record(buyer["customer_aws_account_id"]), product="prod-unknown")
    assert code[0] == "InvalidProductCodeException"


def test_a_license_must_exist_match_the_customer_and_be_active(aws: Aws,
                                                               buyer: dict[str, Any]) -> None:
    other = aws.subscribe()
    mine, theirs = buyer["customer_aws_account_id"], other["customer_aws_account_id"]
    unknown = buyer["license_arn"][:-4] + "0000"
    assert refused(aws, record(mine, LicenseArn=unknown))[0] == "InvalidLicenseException"
    assert refused(aws, record(theirs, LicenseArn=buyer["license_arn"]))[0] == \
        "InvalidLicenseException"
    # Before the hour the license began in.
    early = record(mine, LicenseArn=buyer["license_arn"], at=T0 - 2 * HOUR)
    assert refused(aws, early)[0] == "InvalidLicenseException"
    assert meter(aws, record(mine, LicenseArn=buyer["license_arn"]))["Results"][0][
        "Status"] == "Success"


def test_allocations_add_up_with_at_most_5_tags_unique_sets_and_the_tag_pattern(
        aws: Aws, buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]

    def allocated(*allocations: dict[str, Any], quantity: int = 3) -> dict[str, Any]:
        return record(account, quantity=quantity, UsageAllocations=list(allocations))

    def tags(*pairs: str) -> list[dict[str, str]]:
        return [{"Key": p.split("=")[0], "Value": p.split("=")[1]} for p in pairs]

    short = allocated({"AllocatedUsageQuantity": 1, "Tags": tags("team=a")},
                      {"AllocatedUsageQuantity": 1, "Tags": tags("team=b")})
    assert refused(aws, short)[0] == "InvalidUsageAllocationsException"
    six = allocated({"AllocatedUsageQuantity": 3, "Tags": tags(*(f"k{i}=v" for i in range(6)))})
    assert refused(aws, six, raw=True)[0] == "InvalidTagException"
    same_set = allocated({"AllocatedUsageQuantity": 1, "Tags": tags("team=a", "env=prod")},
                         {"AllocatedUsageQuantity": 2, "Tags": tags("env=prod", "team=a")})
    assert refused(aws, same_set)[0] == "InvalidUsageAllocationsException"
    off_pattern = allocated({"AllocatedUsageQuantity": 3, "Tags": tags("team=a|b")})
    assert refused(aws, off_pattern)[0] == "InvalidTagException"
    mixed = allocated({"AllocatedUsageQuantityAsDecimal": "3", "Tags": tags("team=a")})
    assert refused(aws, mixed)[0] == "InvalidUsageAllocationsException"
    good = allocated({"AllocatedUsageQuantity": 1, "Tags": tags("team=a", "env=prod")},
                     {"AllocatedUsageQuantity": 2, "Tags": tags("team=b")})
    assert meter(aws, good)["Results"][0]["Status"] == "Success"
    assert aws.records()["records"][0]["allocations"] == good["UsageAllocations"]


def test_the_allocation_limit_is_500_or_2500(aws: Aws, buyer: dict[str, Any]) -> None:
    many = record(buyer["customer_aws_account_id"], quantity=501, UsageAllocations=[
        {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "n", "Value": str(n)}]}
        for n in range(501)])
    assert refused(aws, many)[0] == "InvalidUsageAllocationsException"
    aws.ctl("PUT", "/control/config", json={"max_allocations": 2500})
    assert meter(aws, many)["Results"][0]["Status"] == "Success"


# --- the time window -------------------------------------------------------------


def test_the_window_is_6_hours_by_default_and_24_when_configured(aws: Aws,
                                                                 buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    aws.clock.advance(6 * HOUR)
    # The subscription began at T0 (10:30); its first hour is 10:00-11:00.
    inside = record(account, at=T0.replace(minute=31))
    assert meter(aws, inside)["Results"][0]["Status"] == "Success"
    aws.clock.advance(HOUR)
    late = record(account, at=T0.replace(minute=31), dimension="seats")
    assert refused(aws, late)[0] == "TimestampOutOfBoundsException"
    aws.ctl("PUT", "/control/config", json={"window_hours": 24})
    assert meter(aws, late)["Results"][0]["Status"] == "Success"
    aws.clock.set(T0.replace(minute=31) + 24 * HOUR)
    gone = record(account, at=T0.replace(minute=31), dimension="seats", quantity=1)
    assert refused(aws, gone)[0] == "TimestampOutOfBoundsException"


def test_one_record_out_of_the_window_refuses_the_whole_batch(aws: Aws,
                                                              buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    aws.clock.advance(7 * HOUR)
    batch = [record(account, at=aws.clock.now() - HOUR), record(account, at=T0, dimension="seats")]
    code = refused(aws, *batch)
    assert code[:2] == ("TimestampOutOfBoundsException", 400)


def test_a_timestamp_in_the_future_is_out_of_bounds(aws: Aws, buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    code = refused(aws, record(account, at=T0 + timedelta(minutes=10)))
    assert code[0] == "TimestampOutOfBoundsException"
    assert meter(aws, record(account, at=T0 + timedelta(minutes=4)))["Results"][0][
        "Status"] == "Success"  # within the clock-skew tolerance


def test_month_end_grace_until_06_00_utc_on_the_first(aws: Aws) -> None:
    aws.clock.set(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    aws.product()
    buyer = aws.subscribe()
    account = buyer["customer_aws_account_id"]
    last_evening = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    aws.clock.set(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    # Nine hours old, yet within the window at the month's end: the grace takes it.
    assert meter(aws, record(account, at=last_evening))["Results"][0]["Status"] == "Success"
    aws.clock.set(datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    code = refused(aws, record(account, at=datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
                               dimension="seats"))
    assert code[0] == "TimestampOutOfBoundsException"
    # After the grace, November is closed even within the window.
    aws.ctl("PUT", "/control/config", json={"window_hours": 24})
    assert refused(aws, record(account, at=datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
                               dimension="seats"))[0] == "TimestampOutOfBoundsException"


# --- per-record statuses ---------------------------------------------------------


def test_not_subscribed_or_failed_buyers_are_customer_not_subscribed(aws: Aws,
                                                                     buyer: dict[str, Any]) -> None:
    failed = aws.subscribe(outcome="fail")
    answer = meter(aws, record("999999999999"), record(failed["customer_aws_account_id"]),
                   record(buyer["customer_aws_account_id"]))
    assert [r["Status"] for r in answer["Results"]] == ["CustomerNotSubscribed",
                                                         "CustomerNotSubscribed", "Success"]
    assert "MeteringRecordId" not in answer["Results"][0]
    assert len(aws.records()["records"]) == 1


def test_after_the_post_unsubscribe_hour_the_customer_is_not_subscribed(
        aws: Aws, buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    aws.clock.advance(HOUR)
    aws.ctl("POST", f"/control/subscriptions/{buyer['subscription_id']}/unsubscribe")
    aws.clock.advance(timedelta(minutes=59))
    final = record(account, at=T0 + HOUR / 2)  # usage from before the cancellation
    assert meter(aws, final)["Results"][0]["Status"] == "Success"
    aws.clock.advance(timedelta(minutes=1))
    late = record(account, at=T0 + HOUR / 2, dimension="seats")
    assert meter(aws, late)["Results"][0]["Status"] == "CustomerNotSubscribed"


def test_an_identical_resend_answers_the_same_metering_record_id(aws: Aws,
                                                                  buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    batch = [record(account, quantity=7), record(account, quantity=2, dimension="seats")]
    first = meter(aws, *batch)["Results"]
    again = meter(aws, *batch)["Results"]
    subset = meter(aws, batch[1])["Results"]
    # Another timestamp within the same hour is the same key (hour floor, the default).
    same_hour = meter(aws, record(account, quantity=7, at=T0 - timedelta(minutes=5)))["Results"]
    ids = [r["MeteringRecordId"] for r in first]
    assert [r["MeteringRecordId"] for r in again] == ids
    assert subset[0]["MeteringRecordId"] == ids[1]
    assert same_hour[0]["MeteringRecordId"] == ids[0]
    listed = aws.records()
    assert [r["answers"] for r in listed["records"]] == [3, 3]
    assert set(listed["counts_per_hour"].values()) == {1}


def test_same_key_another_quantity_is_a_duplicate_record(aws: Aws, buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    meter(aws, record(account, quantity=7))
    answer = meter(aws, record(account, quantity=8),
                   record(account, quantity=None, QuantityAsDecimal="7.000"))
    assert [r["Status"] for r in answer["Results"]] == ["DuplicateRecord", "Success"]
    assert [r["quantity"] for r in aws.records()["records"]] == ["7"]


def test_exact_timestamp_dedupe_is_a_switch_and_double_charges_are_counted(
        aws: Aws, buyer: dict[str, Any]) -> None:
    aws.ctl("PUT", "/control/config", json={"dedupe": "exact"})
    account = buyer["customer_aws_account_id"]
    answer = meter(aws, record(account, at=T0 - timedelta(minutes=20)),
                   record(account, at=T0 - timedelta(minutes=10)))
    assert [r["Status"] for r in answer["Results"]] == ["Success", "Success"]
    assert list(aws.records()["counts_per_hour"].values()) == [2]


# --- fault injection -------------------------------------------------------------


def test_injected_throttling_internal_errors_and_unprocessed_records(aws: Aws,
                                                                     buyer: dict[str, Any]) -> None:
    account = buyer["customer_aws_account_id"]
    batch = [record(account), record(account, dimension="seats")]
    aws.ctl("POST", "/control/faults", json={"operation": "BatchMeterUsage", "kind": "throttling"})
    aws.ctl("POST", "/control/faults", json={"operation": "BatchMeterUsage",
                                             "kind": "internal_error"})
    aws.ctl("POST", "/control/faults", json={"operation": "BatchMeterUsage",
                                             "kind": "unprocessed", "records": 1, "calls": 2})
    assert refused(aws, *batch)[:2] == ("ThrottlingException", 400)
    assert refused(aws, *batch)[:2] == ("InternalServiceErrorException", 500)
    for _ in range(2):
        answer = meter(aws, *batch)
        assert [r["Status"] for r in answer["Results"]] == ["Success"]
        assert [r["Dimension"] for r in answer["UnprocessedRecords"]] == ["seats"]
    answer = meter(aws, *batch)
    assert (len(answer["Results"]), answer["UnprocessedRecords"]) == (2, [])
    aws.ctl("POST", "/control/faults", json={"operation": "ResolveCustomer", "kind": "throttling"})
    assert error_of(aws.meter.resolve_customer,
                    RegistrationToken=buyer["registration_token"])[0] == "ThrottlingException"
    assert aws.meter.resolve_customer(RegistrationToken=buyer["registration_token"])


# --- GetEntitlements -------------------------------------------------------------


def test_entitlement_filters_or_within_a_key_and_across_keys(aws: Aws) -> None:
    aws.product(legacy=True)
    a = aws.subscribe(entitlements=[{"dimension": DIMENSION, "value": {"IntegerValue": 10}},
                                    {"dimension": "seats", "value": {"StringValue": "gold"}}])
    b = aws.subscribe()
    c = aws.subscribe()

    def accounts(filters: dict[str, list[str]]) -> list[tuple[str, str]]:
        answer = aws.entitlements.get_entitlements(ProductCode=PRODUCT, Filter=filters)
        return sorted((e["CustomerAWSAccountId"], e["Dimension"]) for e in answer["Entitlements"])

    either = accounts({"CUSTOMER_AWS_ACCOUNT_ID": [a["customer_aws_account_id"],
                                                   b["customer_aws_account_id"]]})
    assert {x[0] for x in either} == {a["customer_aws_account_id"], b["customer_aws_account_id"]}
    both = accounts({"CUSTOMER_AWS_ACCOUNT_ID": [a["customer_aws_account_id"],
                                                 c["customer_aws_account_id"]],
                     "DIMENSION": ["seats"], "LICENSE_ARN": [a["license_arn"], b["license_arn"]]})
    assert both == [(a["customer_aws_account_id"], "seats")]
    by_identifier = accounts({"CUSTOMER_IDENTIFIER": [c["customer_identifier"]]})
    assert {x[0] for x in by_identifier} == {c["customer_aws_account_id"]}
    code = error_of(aws.entitlements.get_entitlements, ProductCode=PRODUCT, Filter={
        "CUSTOMER_IDENTIFIER": [a["customer_identifier"]],
        "CUSTOMER_AWS_ACCOUNT_ID": [a["customer_aws_account_id"]]})
    assert code[:2] == ("InvalidParameterException", 400)


def test_entitlement_values_are_one_of_with_an_expiration_date(aws: Aws) -> None:
    aws.product()
    expires = datetime(2027, 6, 1, tzinfo=UTC)
    aws.subscribe(expires_at=expires.isoformat(), entitlements=[
        {"dimension": DIMENSION, "value": {"IntegerValue": 10}},
        {"dimension": "seats", "value": {"DoubleValue": 2.5}}])
    listed = aws.entitlements.get_entitlements(ProductCode=PRODUCT)["Entitlements"]
    assert [e["Value"] for e in listed] == [{"IntegerValue": 10}, {"DoubleValue": 2.5}]
    assert {e["ExpirationDate"].astimezone(UTC) for e in listed} == {expires}
    bad = aws.control.post(f"/control/products/{PRODUCT}/subscriptions", json={
        "entitlements": [{"dimension": DIMENSION, "value": {"IntegerValue": 1, "BooleanValue": True}}]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_value"


def test_max_results_is_1_to_25(aws: Aws, buyer: dict[str, Any]) -> None:
    for size in (0, 26):
        code = error_of(aws.raw_entitlements.get_entitlements, ProductCode=PRODUCT,
                        MaxResults=size)
        assert code[0] == "InvalidParameterException"
    assert len(aws.entitlements.get_entitlements(ProductCode=PRODUCT, MaxResults=1)[
        "Entitlements"]) == 1


def test_next_token_paging_including_an_empty_page_that_carries_a_token(aws: Aws) -> None:
    aws.product()
    for _ in range(3):
        aws.subscribe()  # two entitlements each: six in all
    aws.ctl("POST", "/control/faults", json={"operation": "GetEntitlements", "kind": "empty_page"})
    first = aws.entitlements.get_entitlements(ProductCode=PRODUCT, MaxResults=4)
    assert first["Entitlements"] == [] and first["NextToken"]
    pages = [first]
    while "NextToken" in pages[-1]:
        pages.append(aws.entitlements.get_entitlements(ProductCode=PRODUCT, MaxResults=4,
                                                       NextToken=pages[-1]["NextToken"]))
    assert [len(p["Entitlements"]) for p in pages] == [0, 4, 2]
    seen = [(e["LicenseArn"], e["Dimension"]) for p in pages for e in p["Entitlements"]]
    assert len(set(seen)) == 6
    # boto3's paginator follows the token through an empty page too.
    aws.ctl("POST", "/control/faults", json={"operation": "GetEntitlements", "kind": "empty_page"})
    paged = aws.entitlements.get_paginator("get_entitlements").paginate(
        ProductCode=PRODUCT, PaginationConfig={"PageSize": 4})
    assert sum(len(p["Entitlements"]) for p in paged) == 6
    code = error_of(aws.entitlements.get_entitlements, ProductCode=PRODUCT, NextToken="forged")
    assert code[0] == "InvalidParameterException"


# --- notifications ---------------------------------------------------------------


def _verified(aws: Aws, envelope: dict[str, Any]) -> None:
    """Check an envelope's signature as AWS documents it, against the served certificate."""
    cert_pem = httpx.get(envelope["SigningCertURL"]).content
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    text = "".join(f"{name}\n{envelope[name]}\n" for name in
                   ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
                   if name in envelope)
    algorithm = hashes.SHA256() if envelope["SignatureVersion"] == "2" else hashes.SHA1()
    key.verify(base64.b64decode(envelope["Signature"]), text.encode(),  # type: ignore[union-attr]
               padding.PKCS1v15(), algorithm)  # type: ignore[call-arg]


def test_sns_envelopes_are_signed_and_verify_with_the_served_certificate(aws: Aws) -> None:
    aws.product(notification_url=aws.receiver_url + "/sns")
    buyer = aws.subscribe(offer_identifier="offer-123", free_trial=True)
    [(headers, body)] = aws.receiver.notifications
    envelope = json.loads(body)
    topic = f"arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-{PRODUCT}"
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == topic
    assert envelope["SignatureVersion"] == "2"
    assert envelope["SigningCertURL"] == aws.endpoint + "/sns/cert.pem"
    assert datetime.fromisoformat(envelope["Timestamp"]) == T0
    assert json.loads(envelope["Message"]) == {
        "action": "subscribe-success", "customer-identifier": buyer["customer_identifier"],
        "product-code": PRODUCT, "offer-identifier": "offer-123",
        "isFreeTrialTermPresent": "true",
        "customer-aws-account-id": buyer["customer_aws_account_id"]}
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-message-id"] == envelope["MessageId"]
    assert headers["x-amz-sns-topic-arn"] == topic
    _verified(aws, envelope)
    tampered = {**envelope, "Message": envelope["Message"].replace("subscribe-success",
                                                                   "unsubscribe-success")}
    with pytest.raises(InvalidSignature):
        _verified(aws, tampered)
    aws.ctl("PUT", "/control/config", json={"sns_signature_version": "1"})
    aws.subscribe()
    version_1 = json.loads(aws.receiver.notifications[-1][1])
    assert version_1["SignatureVersion"] == "1"
    _verified(aws, version_1)


def test_every_lifecycle_action_is_notified(aws: Aws) -> None:
    aws.product(notification_url=aws.receiver_url + "/sns")
    buyer = aws.subscribe()
    failed = aws.subscribe(outcome="fail")
    aws.ctl("POST", f"/control/subscriptions/{buyer['subscription_id']}/entitlements",
            json={"entitlements": [{"dimension": "seats", "value": {"IntegerValue": 3}}]})
    aws.ctl("POST", f"/control/subscriptions/{buyer['subscription_id']}/unsubscribe")
    assert aws.ctl("POST", "/control/tick")["finished"] == []
    aws.clock.advance(HOUR)
    assert aws.ctl("POST", "/control/tick")["finished"] == [buyer["subscription_id"]]
    sent = [json.loads(body) for _, body in aws.receiver.notifications]
    actions = [(json.loads(e["Message"])["action"], json.loads(e["Message"])["customer-identifier"])
               for e in sent]
    assert actions == [("subscribe-success", buyer["customer_identifier"]),
                       ("subscribe-fail", failed["customer_identifier"]),
                       ("entitlement-updated", buyer["customer_identifier"]),
                       ("unsubscribe-pending", buyer["customer_identifier"]),
                       ("unsubscribe-success", buyer["customer_identifier"])]
    assert sent[2]["TopicArn"].endswith(f":aws-mp-entitlement-notification-{PRODUCT}")
    for envelope in sent:
        _verified(aws, envelope)
    # Finished: gone from GetEntitlements.
    assert aws.entitlements.get_entitlements(ProductCode=PRODUCT, Filter={
        "LICENSE_ARN": [buyer["license_arn"]]})["Entitlements"] == []


def test_failed_deliveries_are_recorded_and_retried_on_tick_and_can_be_replayed(aws: Aws) -> None:
    aws.product(notification_url=aws.receiver_url + "/sns")
    aws.receiver.status = 503
    aws.subscribe()
    [listed] = aws.notifications()
    assert listed["delivered"] is False and [a["status"] for a in listed["attempts"]] == [503]
    aws.receiver.status = 200
    assert aws.ctl("POST", "/control/tick") == {"finished": [], "attempted": 1, "delivered": 1,
                                                 "failed": 0}
    replayed = aws.ctl("POST", f"/control/notifications/{listed['id']}/replay")
    assert [a["status"] for a in replayed["attempts"]] == [503, 200, 200]
    bodies = [body for _, body in aws.receiver.notifications]
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert bodies[0].decode() == listed["body"]


def test_post_fulfillment_sends_the_buyer_form_to_the_fulfillment_url(aws: Aws) -> None:
    aws.product(fulfillment_url=aws.receiver_url + "/fulfill")
    buyer = aws.subscribe(post_fulfillment=True)
    assert buyer["fulfillment"]["status"] == 303
    assert buyer["fulfillment"]["location"] == "/welcome?from=aws"
    assert aws.receiver.forms == [
        f"x-amzn-marketplace-token={buyer['registration_token']}".encode()]


def test_meter_usage_one_record_per_hour(aws: Aws, buyer: dict[str, Any]) -> None:
    # MeterUsage is called with the buyer's credentials: the access key names the account.
    client, other = clients_for(aws.endpoint, access_key=buyer["customer_aws_account_id"])
    other.close()
    first = client.meter_usage(ProductCode=PRODUCT, Timestamp=T0, UsageDimension=DIMENSION,
                               UsageQuantity=2)
    again = client.meter_usage(ProductCode=PRODUCT, Timestamp=T0, UsageDimension=DIMENSION,
                               UsageQuantity=2)
    assert first["MeteringRecordId"] == again["MeteringRecordId"]
    code = error_of(client.meter_usage, ProductCode=PRODUCT, Timestamp=T0,
                    UsageDimension=DIMENSION, UsageQuantity=3)
    assert code[0] == "DuplicateRequestException"
    client.close()
