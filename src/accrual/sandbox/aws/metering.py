"""The metering service: ``ResolveCustomer``, ``BatchMeterUsage``, ``MeterUsage``.

Rules (marketplaces.md §1.2-1.3, §6; the installed botocore model's shapes):

* ``ResolveCustomer``: a registration token resolves once, within
  ``SandboxConfig.token_ttl`` of its issue; again, or later, is
  ``ExpiredTokenException``; a token never issued is ``InvalidTokenException``.
  ``CustomerIdentifier`` is answered only for a product in legacy mode.
* ``BatchMeterUsage``: the whole call is refused (nothing recorded) for
  - more than ``max_records`` (25) records, or a body of ``max_request_bytes`` or
    more: ``ValidationException`` (AWS documents the limits, not the error; ours);
  - a record without ``Timestamp`` or ``Dimension``, a quantity out of
    0..2^31-1, both ``Quantity`` and ``QuantityAsDecimal``, both
    ``CustomerIdentifier`` and ``CustomerAWSAccountId``, no way to name the buyer,
    or records of more than one product: ``ValidationException``;
  - an unknown product: ``InvalidProductCodeException``; a dimension the product
    does not have: ``InvalidUsageDimensionException``; a ``LicenseArn`` unknown,
    of another buyer or product, or not active at the record's time:
    ``InvalidLicenseException``; a ``CustomerIdentifier`` unknown, or sent for a
    product not in legacy mode: ``InvalidCustomerIdentifierException``;
  - allocations that do not add up to the quantity, mix whole and decimal
    quantities, repeat a tag set or are more than ``max_allocations``:
    ``InvalidUsageAllocationsException``; more than 5 tags, a repeated key, or a
    key/value off the pattern: ``InvalidTagException``;
  - **any** record out of the time window: ``TimestampOutOfBoundsException``.
    The window: younger than ``window`` (6 h default, or 24 h), not more than
    ``future_tolerance`` ahead; with ``month_end_grace`` a record of the previous
    month is also taken until 06:00 UTC on the 1st when it was within the window
    at the month's end, and never after that hour.

  Then each record is answered on its own: ``CustomerNotSubscribed`` (no
  subscription, a failed one, or one whose final hour after unsubscribing is over),
  ``Success`` with a new ``MeteringRecordId``, ``Success`` with the **same** id for
  the same (product, subscription, dimension, hour or exact timestamp) and the same
  quantity (compared by value), or ``DuplicateRecord`` for that key with another
  quantity. Injected faults: throttling, an internal error, or N records of each
  call left in ``UnprocessedRecords`` (not recorded).
* ``MeterUsage`` (the AMI/container call; minimal): the caller's access key id is
  taken as the buyer's account id; one record per (product, buyer, dimension, hour),
  another quantity for it is ``DuplicateRequestException``.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from accrual.sandbox.aws.protocol import (
    AwsError,
    raise_fault,
    string,
    timestamp,
    validation,
)
from accrual.sandbox.aws.state import (
    MeteringRecord,
    Product,
    SandboxConfig,
    SandboxState,
    Subscription,
    hour_floor,
)

MAX_QUANTITY = 2**31 - 1
MAX_TAGS = 5
MONTH_END_GRACE = timedelta(hours=6)
DECIMAL_QUANTITY = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$")
# The model's pattern, verbatim: " -=" is the range from space to "=".
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9+ -=._:\/@]+$")
PRODUCT_CODE = re.compile(r"^[-a-zA-Z0-9/=:_.@]*$")
ACCOUNT_ID = re.compile(r"^[0-9]+$")


def take_fault(state: SandboxState, operation: str) -> int:
    """Raise an injected throttling or internal error; else how many records of
    this call to leave unprocessed."""
    fault = state.take_fault(operation)
    raise_fault(fault)
    return fault.records if fault is not None and fault.kind == "unprocessed" else 0


# --- ResolveCustomer -------------------------------------------------------------


def resolve_customer(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    value = string(body, "RegistrationToken", required=True, min_len=1, max_len=4096)
    with state.lock:
        take_fault(state, "ResolveCustomer")
        now = state.now()
        token = state.tokens.get(value or "")
        if token is None:
            raise AwsError("InvalidTokenException", "Registration token is invalid")
        if token.used_at is not None:
            raise AwsError("ExpiredTokenException", "Registration token was already used")
        if now - token.issued_at >= state.config.token_ttl:
            raise AwsError("ExpiredTokenException", "Registration token has expired")
        token.used_at = now
        sub = state.subscriptions[token.subscription_id]
        answer = {"CustomerAWSAccountId": sub.account_id, "ProductCode": sub.product_code,
                  "LicenseArn": sub.license_arn}
        if state.products[sub.product_code].legacy:
            answer["CustomerIdentifier"] = sub.customer_identifier
        return answer


# --- BatchMeterUsage -------------------------------------------------------------


@dataclass
class _Record:
    echo: dict[str, Any]  # as sent; answered back in its result
    timestamp: datetime
    dimension: str
    quantity: Decimal
    decimal: bool
    customer_identifier: str | None
    account_id: str | None
    license_arn: str | None
    allocations: list[dict[str, Any]] | None


def batch_meter_usage(state: SandboxState, body: dict[str, Any], size: int) -> dict[str, Any]:
    with state.lock:
        unprocessed = take_fault(state, "BatchMeterUsage")
        config = state.config
        if size >= config.max_request_bytes:
            raise validation(f"The request must be smaller than {config.max_request_bytes} bytes")
        raw = body.get("UsageRecords")
        if not isinstance(raw, list):
            raise validation("UsageRecords is required and must be a list")
        if len(raw) > config.max_records:
            raise validation(f"UsageRecords has {len(raw)} records; at most "
                             f"{config.max_records} are accepted in one call")
        product_code = string(body, "ProductCode")
        if product_code is not None and not PRODUCT_CODE.match(product_code):
            raise validation("ProductCode does not match its pattern")
        records = [_parse_record(item, i) for i, item in enumerate(raw)]
        product = _one_product(state, product_code, records)
        subs = [_check_record(state, product, record) for record in records]
        now = state.now()
        late = [r for r in records if not in_window(r.timestamp, now, config)]
        if late:
            raise AwsError("TimestampOutOfBoundsException",
                           f"{len(late)} record(s) out of the allowed time range, e.g. "
                           f"{late[0].timestamp.isoformat()}; the batch was not processed")
        cut = len(records) - min(unprocessed, len(records))
        results = [_meter(state, product, record, sub, now)
                   for record, sub in zip(records[:cut], subs[:cut], strict=True)]
        return {"Results": results, "UnprocessedRecords": [r.echo for r in records[cut:]]}


def in_window(instant: datetime, now: datetime, config: SandboxConfig) -> bool:
    if instant > now + config.future_tolerance:
        return False
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if config.month_end_grace and instant < month_start:
        if now >= month_start + MONTH_END_GRACE:
            return False
        return month_start - instant < config.window or now - instant < config.window
    return now - instant < config.window


def _parse_record(item: object, index: int) -> _Record:
    where = f"UsageRecords[{index}]"
    if not isinstance(item, dict):
        raise validation(f"{where} must be an object")
    if "Timestamp" not in item:
        raise validation(f"{where}.Timestamp is required")
    when = timestamp(item["Timestamp"], f"{where}.Timestamp")
    dimension = string(item, "Dimension", required=True, min_len=1)
    if "Quantity" in item and "QuantityAsDecimal" in item:
        raise validation(f"{where}: Quantity and QuantityAsDecimal cannot both be given")
    quantity, decimal = _quantity(item, "Quantity", "QuantityAsDecimal", where)
    identifier = string(item, "CustomerIdentifier")
    account = string(item, "CustomerAWSAccountId", min_len=1)
    if account is not None and not ACCOUNT_ID.match(account):
        raise validation(f"{where}.CustomerAWSAccountId must be digits")
    if identifier is not None and account is not None:
        raise validation(f"{where}: CustomerIdentifier and CustomerAWSAccountId cannot both "
                         "be given")
    arn = string(item, "LicenseArn", min_len=1, max_len=2048)
    if identifier is None and account is None and arn is None:
        raise validation(f"{where} names no buyer: give CustomerAWSAccountId or LicenseArn")
    allocations = item.get("UsageAllocations")
    if allocations is not None and (not isinstance(allocations, list) or not allocations):
        raise validation(f"{where}.UsageAllocations must be a non-empty list")
    assert dimension is not None
    return _Record(echo=item, timestamp=when, dimension=dimension, quantity=quantity,
                   decimal=decimal, customer_identifier=identifier, account_id=account,
                   license_arn=arn, allocations=allocations)


def _quantity(item: dict[str, Any], whole: str, as_decimal: str,
              where: str) -> tuple[Decimal, bool]:
    if as_decimal in item:
        value = item[as_decimal]
        if not isinstance(value, str) or not DECIMAL_QUANTITY.match(value):
            raise validation(f"{where}.{as_decimal} must be a non-negative decimal string")
        return Decimal(value), True
    value = item.get(whole, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        raise validation(f"{where}.{whole} must be a whole number in 0..{MAX_QUANTITY}")
    return Decimal(value), False


def _one_product(state: SandboxState, product_code: str | None,
                 records: list[_Record]) -> Product:
    codes = set()
    for record in records:
        if record.license_arn is not None:
            sub = state.by_license(record.license_arn)
            if sub is None:
                raise AwsError("InvalidLicenseException",
                               f"LicenseArn {record.license_arn} is not valid")
            if product_code is not None and sub.product_code != product_code:
                raise AwsError("InvalidLicenseException",
                               f"LicenseArn {record.license_arn} is not a license of "
                               f"product {product_code}")
            codes.add(sub.product_code)
        elif product_code is None:
            raise validation("ProductCode is required for records that carry no LicenseArn")
        else:
            codes.add(product_code)
    if product_code is not None:
        codes.add(product_code)
    if len(codes) > 1:
        raise validation("Each BatchMeterUsage request is for only one product")
    if not codes:  # no records and no product code
        raise validation("ProductCode is required")
    product = state.products.get(codes.pop())
    if product is None:
        raise AwsError("InvalidProductCodeException",
                       "The product code passed does not match a published product")
    return product


def _check_record(state: SandboxState, product: Product, record: _Record) -> Subscription | None:
    """The whole-call checks of one record; the subscription it meters against, if any."""
    if record.dimension not in product.dimensions:
        raise AwsError("InvalidUsageDimensionException",
                       f"The usage dimension {record.dimension!r} does not match one of the "
                       f"product's dimensions")
    sub: Subscription | None = None
    if record.customer_identifier is not None:
        if not product.legacy:
            raise AwsError("InvalidCustomerIdentifierException",
                           "CustomerIdentifier is not supported for this product; use "
                           "CustomerAWSAccountId")
        sub = state.by_customer_identifier(product.code, record.customer_identifier)
        if sub is None:
            raise AwsError("InvalidCustomerIdentifierException",
                           f"CustomerIdentifier {record.customer_identifier!r} does not exist")
    if record.license_arn is not None:
        licensed = state.by_license(record.license_arn)
        assert licensed is not None  # checked by _one_product
        if (sub is not None and sub is not licensed) or (
                record.account_id is not None and record.account_id != licensed.account_id):
            raise AwsError("InvalidLicenseException",
                           "The LicenseArn does not match the customer")
        if not _license_active(licensed, record.timestamp):
            raise AwsError("InvalidLicenseException",
                           "The usage falls outside the license's active period")
        sub = licensed
    if sub is None and record.account_id is not None:
        # One account may hold several agreements; metering goes to one that takes it.
        candidates = state.by_account(product.code, record.account_id)
        now = state.now()
        sub = next((s for s in candidates if s.meterable(now)), None) or next(
            iter(candidates), None)
    if record.allocations is not None:
        _check_allocations(state.config, record)
    return sub


def _license_active(sub: Subscription, instant: datetime) -> bool:
    if sub.status == "failed" or instant < sub.license_start():
        return False
    if sub.unsubscribed_at is not None and instant >= sub.unsubscribed_at:
        return False
    return sub.expires_at is None or instant < sub.expires_at


def _check_allocations(config: SandboxConfig, record: _Record) -> None:
    allocations = record.allocations or []
    if len(allocations) > config.max_allocations:
        raise AwsError("InvalidUsageAllocationsException",
                       f"More than {config.max_allocations} allocations in one record")
    total = Decimal(0)
    seen: set[frozenset[tuple[str, str]]] = set()
    for i, allocation in enumerate(allocations):
        where = f"UsageAllocations[{i}]"
        if not isinstance(allocation, dict):
            raise validation(f"{where} must be an object")
        given = [m for m in ("AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal")
                 if m in allocation]
        if len(given) != 1:
            raise AwsError("InvalidUsageAllocationsException",
                           f"{where} must give exactly one of AllocatedUsageQuantity and "
                           "AllocatedUsageQuantityAsDecimal")
        quantity, decimal = _quantity(allocation, "AllocatedUsageQuantity",
                                      "AllocatedUsageQuantityAsDecimal", where)
        if decimal != record.decimal:
            raise AwsError("InvalidUsageAllocationsException",
                           "Allocations must use the same type of quantity as the record")
        total += quantity
        tags = _tag_set(allocation.get("Tags"), where)
        if tags in seen:
            raise AwsError("InvalidUsageAllocationsException",
                           f"{where} repeats the tag set of another allocation")
        seen.add(tags)
    if total != record.quantity:
        raise AwsError("InvalidUsageAllocationsException",
                       f"Sum of allocated usage quantities ({total}) is not equal to the usage "
                       f"quantity ({record.quantity})")


def _tag_set(tags: object, where: str) -> frozenset[tuple[str, str]]:
    if tags is None:
        return frozenset()
    if not isinstance(tags, list) or not tags:
        raise AwsError("InvalidTagException", f"{where}.Tags must be a non-empty list")
    if len(tags) > MAX_TAGS:
        raise AwsError("InvalidTagException", f"{where} has more than {MAX_TAGS} tags")
    pairs: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict):
            raise AwsError("InvalidTagException", f"{where}: a tag must be an object")
        key, value = tag.get("Key"), tag.get("Value")
        if not (isinstance(key, str) and 1 <= len(key) <= 100 and TAG_PATTERN.match(key)):
            raise AwsError("InvalidTagException", f"{where}: tag key {key!r} is not valid")
        if not (isinstance(value, str) and 1 <= len(value) <= 256 and TAG_PATTERN.match(value)):
            raise AwsError("InvalidTagException", f"{where}: tag value {value!r} is not valid")
        if key in pairs:
            raise AwsError("InvalidTagException", f"{where}: tag key {key!r} is repeated")
        pairs[key] = value
    return frozenset(pairs.items())


def _key_time(config: SandboxConfig, instant: datetime) -> datetime:
    return hour_floor(instant) if config.dedupe == "hour" else instant


def _meter(state: SandboxState, product: Product, record: _Record, sub: Subscription | None,
           now: datetime) -> dict[str, Any]:
    if sub is None or not sub.meterable(now):
        return {"UsageRecord": record.echo, "Status": "CustomerNotSubscribed"}
    key = (product.code, sub.id, record.dimension, _key_time(state.config, record.timestamp))
    existing = state.records.get(key)
    if existing is not None:
        if existing.quantity != record.quantity:
            return {"UsageRecord": record.echo, "Status": "DuplicateRecord"}
        existing.answers += 1
        return {"UsageRecord": record.echo, "MeteringRecordId": existing.record_id,
                "Status": "Success"}
    accepted = MeteringRecord(
        record_id=str(uuid.uuid4()), product_code=product.code, account_id=sub.account_id,
        customer_identifier=sub.customer_identifier, license_arn=sub.license_arn,
        dimension=record.dimension, timestamp=record.timestamp, key_time=key[3],
        quantity=record.quantity, accepted_at=now, operation="BatchMeterUsage",
        allocations=record.allocations or [])
    state.records[key] = accepted
    return {"UsageRecord": record.echo, "MeteringRecordId": accepted.record_id,
            "Status": "Success"}


# --- MeterUsage ------------------------------------------------------------------


def meter_usage(state: SandboxState, caller: str, body: dict[str, Any]) -> dict[str, Any]:
    code = string(body, "ProductCode", required=True)
    if "Timestamp" not in body:
        raise validation("Timestamp is required")
    when = timestamp(body["Timestamp"], "Timestamp")
    dimension = string(body, "UsageDimension", required=True, min_len=1)
    if "UsageQuantity" in body and "UsageQuantityAsDecimal" in body:
        raise validation("UsageQuantity and UsageQuantityAsDecimal cannot both be given")
    quantity, decimal = _quantity(body, "UsageQuantity", "UsageQuantityAsDecimal", "request")
    with state.lock:
        take_fault(state, "MeterUsage")
        product = state.products.get(code or "")
        if product is None:
            raise AwsError("InvalidProductCodeException",
                           "The product code passed does not match a published product")
        assert dimension is not None
        record = _Record(echo=body, timestamp=when, dimension=dimension, quantity=quantity,
                         decimal=decimal, customer_identifier=None, account_id=caller,
                         license_arn=None, allocations=body.get("UsageAllocations"))
        _check_record(state, product, record)
        now = state.now()
        if not in_window(when, now, state.config):
            raise AwsError("TimestampOutOfBoundsException",
                           "The timestamp is out of the allowed range")
        sub = next((s for s in state.by_account(product.code, caller) if s.meterable(now)), None)
        if sub is None:
            raise AwsError("CustomerNotEntitledException",
                           "The caller's account is not subscribed to this product")
        if body.get("DryRun") is True:
            return {}
        key = (product.code, sub.id, dimension, hour_floor(when))
        existing = state.records.get(key)
        if existing is not None:
            if existing.quantity != quantity:
                raise AwsError("DuplicateRequestException",
                               "A metering record for this hour has another quantity")
            existing.answers += 1
            return {"MeteringRecordId": existing.record_id}
        state.records[key] = MeteringRecord(
            record_id=str(uuid.uuid4()), product_code=product.code, account_id=sub.account_id,
            customer_identifier=sub.customer_identifier, license_arn=sub.license_arn,
            dimension=dimension, timestamp=when, key_time=key[3], quantity=quantity,
            accepted_at=now, operation="MeterUsage", allocations=record.allocations or [])
        return {"MeteringRecordId": state.records[key].record_id}


def new_token() -> str:
    return secrets.token_urlsafe(48)
