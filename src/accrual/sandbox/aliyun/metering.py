"""``PushMeteringData``, both versions (marketplaces.md §2.4, §6 Alibaba).

* Market ``2015-11-01`` (``alibabacloud_market20151101``): one parameter ``Metering``,
  a JSON array serialised to a string, of ``{InstanceId, StartTime, EndTime,
  Entities: [{Key, Value, meteringAssit?}]}``; answers ``{RequestId, Success}``;
  a refusal is an OpenAPI error (HTTP 400).
* MarketplaceIntl ``2022-12-30`` (``alibabacloud_marketplaceintl20221230``, served by
  the International profile only): form fields ``MeteringData.N.{InstanceId,
  StartTime, EndTime, MeteringEntity, MeteringAssist, PushOrderBizId}`` and
  ``GmtCreate``; ``MeteringEntity`` is a JSON object ``{"<Key>": <value>}``. It
  answers ``{RequestId, Success, Result, Code, Message}``; a refusal comes in that
  body with HTTP 200, ``Success`` false (the response model carries Code, Message,
  DynamicMessage and ForceFatal; the HTTP status of a refusal is not documented).

The rules, all-or-nothing for a call: 1 to ``max_records`` records; every InstanceId
an instance the ISV opened, all of one product; StartTime/EndTime Unix seconds with
EndTime > StartTime (and, for a product billed hourly or daily, more than 5 minutes
apart), not in the future; a known Key of the product, with a ``meteringAssit`` of
its list when it has one; Value a decimal >= 0; the billing deadline (hourly: before
HH+1:59 for usage starting in hour HH; daily: before 01:59 Beijing time the next
day); at most one accepted call per InstanceId per 60 seconds. Usage starting at or
after the instance's expiry or release is accepted but not billable (``billable``
false in the records), as Alibaba documents it.

No deduplication: the same window pushed twice is billed twice, and both show in
``/control/pushes`` and ``/control/usage``.

Refusal codes are the emulator's own where Alibaba documents none:
``InvalidParameter.Metering``, ``InvalidInstanceId.NotFound``,
``InvalidParameter.ProductMismatch``, ``InvalidParameter.MeteringTime``,
``InvalidParameter.MeteringKey``, ``InvalidParameter.MeteringValue``,
``MeteringDataExpired`` (past the billing deadline), ``Throttling.Instance``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from accrual.sandbox.aliyun.openapi import Call, PopError
from accrual.sandbox.aliyun.state import (
    BEIJING,
    INTL_VERSION,
    MARKET_VERSION,
    Entity,
    Instance,
    Product,
    SandboxState,
    UsageRecord,
)

MAX_METERING_CHARS = 200 * 1024
MAX_VALUE_CHARS = 40
MAX_ID_CHARS = 64
_INTL_FIELD = re.compile(r"^MeteringData\.([1-9][0-9]{0,3})\.([A-Za-z]+)$")
_INTL_FIELDS = {"InstanceId", "StartTime", "EndTime", "MeteringEntity", "MeteringAssist",
                "PushOrderBizId"}


def push_metering_data(state: SandboxState, call: Call
                       ) -> tuple[int, dict[str, Any], list[UsageRecord]]:
    if call.version == MARKET_VERSION:
        records = accept(state, _market_records(call.params))
        return 200, {"Success": True}, records
    if call.version == INTL_VERSION:
        try:
            records = accept(state, _intl_records(call.params))
        except PopError as error:
            if error.status >= 500 or error.code.startswith("Throttling"):
                raise
            return 200, {"Success": False, "Result": False, "Code": error.code,
                         "Message": error.message, "DynamicMessage": error.message,
                         "ForceFatal": False}, []
        return 200, {"Success": True, "Result": True, "Code": "200", "Message": "success"}, records
    raise PopError("InvalidVersion", f"Specified parameter Version {call.version} is not valid.")


def accept(state: SandboxState, records: list[UsageRecord]) -> list[UsageRecord]:
    """Check a call's records against the products and instances; keep them all or none."""
    config, now = state.config, state.now()
    if not 1 <= len(records) <= config.max_records:
        raise PopError("InvalidParameter.Metering",
                       f"a call carries 1 to {config.max_records} records, not {len(records)}")
    instances: dict[str, Instance] = {}
    for record in records:
        instance = state.by_instance_id(record.instance_id)
        if instance is None or instance.status == "OPENING":
            raise PopError("InvalidInstanceId.NotFound",
                           f"Instance {record.instance_id} does not exist.")
        instances[record.instance_id] = instance
        record.product_code = instance.product_code
    products = {i.product_code for i in instances.values()}
    if len(products) > 1:
        raise PopError("InvalidParameter.ProductMismatch",
                       f"all instances of a call are of one product, not {sorted(products)}")
    product = state.products[products.pop()]
    for record in records:
        _check_record(state, product, record, now)
    throttled = sorted(i for i, inst in instances.items() if inst.last_push_at is not None
                       and now < inst.last_push_at + config.rate_window)
    if throttled:
        raise PopError("Throttling.Instance",
                       f"one push per instance every {config.rate_window.total_seconds():.0f} "
                       f"s: {', '.join(throttled)} pushed too recently")
    for instance in instances.values():
        instance.last_push_at = now
    for record in records:
        cutoff = _cutoff(instances[record.instance_id], now)
        if cutoff is not None and record.start >= cutoff:
            record.billable, record.reason = False, f"starts after the instance ended ({cutoff})"
    return records


def _check_record(state: SandboxState, product: Product, record: UsageRecord,
                  now: datetime) -> None:
    config = state.config
    if record.end <= record.start:
        raise PopError("InvalidParameter.MeteringTime", "EndTime must be after StartTime")
    if product.billing != "realtime" and record.end - record.start <= config.min_window:
        raise PopError("InvalidParameter.MeteringTime",
                       f"a product billed {product.billing} takes windows longer than "
                       f"{config.min_window}")
    if record.end > now + config.future_tolerance:
        raise PopError("InvalidParameter.MeteringTime", "EndTime is in the future")
    deadline = billing_deadline(product, record.start)
    if deadline is not None and now >= deadline:
        raise PopError("MeteringDataExpired",
                       f"usage starting {record.start.isoformat()} had to arrive before "
                       f"{deadline.isoformat()} to be billed")
    if not record.entities:
        raise PopError("InvalidParameter.MeteringKey", "a record needs at least one entity")
    for entity in record.entities:
        if entity.key not in product.items:
            raise PopError("InvalidParameter.MeteringKey",
                           f"Key {entity.key!r} is not metered by {product.code} "
                           f"({', '.join(product.items)})")
        assists = product.items[entity.key]
        if assists and entity.assist not in assists:
            raise PopError("InvalidParameter.MeteringKey",
                           f"Key {entity.key} needs meteringAssit, one of {list(assists)}")


def billing_deadline(product: Product, start: datetime) -> datetime | None:
    """The instant from which usage starting at ``start`` is refused."""
    if product.billing == "hourly":
        return start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=59)
    if product.billing == "daily":
        day = start.astimezone(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
        return (day + timedelta(days=1, hours=1, minutes=59)).astimezone(UTC)
    return None


def _cutoff(instance: Instance, now: datetime) -> datetime | None:
    ends = [t for t in (instance.expired_at, instance.closed_at) if t is not None]
    if instance.expires_on is not None and instance.expires_on <= now:
        ends.append(instance.expires_on)
    return min(ends) if ends else None


# --- the two wire forms -----------------------------------------------------------


def _market_records(params: dict[str, str]) -> list[UsageRecord]:
    raw = params.get("Metering")
    if not raw:
        raise PopError("MissingParameter", "Metering is mandatory for this action.")
    if len(raw) > MAX_METERING_CHARS:
        raise PopError("InvalidParameter.Metering", f"Metering exceeds {MAX_METERING_CHARS} "
                                                    "characters")
    try:
        parsed = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise PopError("InvalidParameter.Metering", "Metering is not JSON") from None
    if not isinstance(parsed, list):
        raise PopError("InvalidParameter.Metering", "Metering must be a JSON array")
    records = []
    for index, item in enumerate(parsed):
        where = f"Metering[{index}]"
        if not isinstance(item, dict):
            raise PopError("InvalidParameter.Metering", f"{where} is not an object")
        entities = item.get("Entities")
        if not isinstance(entities, list):
            raise PopError("InvalidParameter.Metering", f"{where}.Entities must be an array")
        parsed_entities = []
        for e_index, entity in enumerate(entities):
            if not isinstance(entity, dict):
                raise PopError("InvalidParameter.Metering",
                               f"{where}.Entities[{e_index}] is not an object")
            assist = entity.get("meteringAssit")
            if assist is not None and not isinstance(assist, str):
                raise PopError("InvalidParameter.Metering", "meteringAssit is a string")
            parsed_entities.append(Entity(_text(entity.get("Key"), f"{where} Key"),
                                          _value(entity.get("Value"), f"{where} Value"), assist))
        records.append(UsageRecord(
            instance_id=_text(item.get("InstanceId"), f"{where}.InstanceId", numbers=True),
            product_code="", start=_seconds(item.get("StartTime"), f"{where}.StartTime"),
            end=_seconds(item.get("EndTime"), f"{where}.EndTime"), entities=parsed_entities))
    return records


def _intl_records(params: dict[str, str]) -> list[UsageRecord]:
    rows: dict[int, dict[str, str]] = {}
    for name, value in params.items():
        match = _INTL_FIELD.match(name)
        if match is None:
            if name == "GmtCreate" or not name.startswith("MeteringData"):
                continue
            raise PopError("InvalidParameter.Metering", f"{name} is not a MeteringData field")
        if match.group(2) not in _INTL_FIELDS:
            raise PopError("InvalidParameter.Metering", f"{name} is not a MeteringData field")
        rows.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if sorted(rows) != list(range(1, len(rows) + 1)):
        raise PopError("InvalidParameter.Metering", "MeteringData.N are numbered 1, 2, 3, ...")
    records = []
    for index in sorted(rows):
        row, where = rows[index], f"MeteringData.{index}"
        try:
            entity = json.loads(row.get("MeteringEntity", ""), parse_float=Decimal)
        except ValueError:
            raise PopError("InvalidParameter.Metering",
                           f"{where}.MeteringEntity is not JSON") from None
        if not isinstance(entity, dict) or not entity:
            raise PopError("InvalidParameter.Metering",
                           f"{where}.MeteringEntity is a JSON object {{Key: value}}")
        assist = row.get("MeteringAssist")
        order = row.get("PushOrderBizId")
        if order is not None and not 1 <= len(order) <= MAX_ID_CHARS:
            raise PopError("InvalidParameter.Metering",
                           f"{where}.PushOrderBizId has 1 to {MAX_ID_CHARS} characters")
        records.append(UsageRecord(
            instance_id=_text(row.get("InstanceId"), f"{where}.InstanceId"), product_code="",
            start=_seconds(row.get("StartTime"), f"{where}.StartTime"),
            end=_seconds(row.get("EndTime"), f"{where}.EndTime"),
            entities=[Entity(str(key), _value(value, f"{where} {key}"), assist)
                      for key, value in entity.items()],
            push_order_biz_id=order))
    return records


def _text(value: object, where: str, *, numbers: bool = False) -> str:
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        raise PopError("InvalidParameter.Metering",
                       f"{where} is a string of 1 to {MAX_ID_CHARS} characters")
    return value


def _seconds(value: object, where: str) -> datetime:
    """Unix seconds, as a JSON number or a string of digits (Alibaba's sample)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**11:
        raise PopError("InvalidParameter.MeteringTime", f"{where} is Unix seconds")
    return datetime.fromtimestamp(value, UTC)


def _value(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PopError("InvalidParameter.MeteringValue", f"{where} is a number")
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        raise PopError("InvalidParameter.MeteringValue", f"{where} is too long")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise PopError("InvalidParameter.MeteringValue", f"{where} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise PopError("InvalidParameter.MeteringValue", f"{where} must be a number >= 0")
    return amount
