"""The entitlement service: ``GetEntitlements`` (marketplaces.md §1.4).

* ``ProductCode`` is required (1-255 characters); an unknown product has no
  entitlements.
* ``Filter`` maps ``CUSTOMER_IDENTIFIER | DIMENSION | CUSTOMER_AWS_ACCOUNT_ID |
  LICENSE_ARN`` to a non-empty list: values within a key are OR-ed, keys AND-ed;
  ``CUSTOMER_IDENTIFIER`` with ``CUSTOMER_AWS_ACCOUNT_ID`` is
  ``InvalidParameterException``, as are an unknown key, an empty list,
  ``MaxResults`` outside 1..25 and a ``NextToken`` that is not this query's.
* One entitlement per (subscription in force, dimension): a subscription is listed
  from its start until its unsubscription is finished. ``Value`` carries exactly one
  of ``IntegerValue``, ``DoubleValue``, ``BooleanValue``, ``StringValue``;
  ``ExpirationDate`` is the term's end (the unsubscribe instant once cancelled).
  ``CustomerIdentifier`` is answered only for a product in legacy mode.
* Paging: ``NextToken`` while more remain. An injected ``empty_page`` fault answers
  an empty list that still carries a token (which continues where it was), as AWS
  may.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from accrual.sandbox.aws.protocol import AwsError, epoch, raise_fault
from accrual.sandbox.aws.state import SandboxState

FILTER_KEYS = {"CUSTOMER_IDENTIFIER": "CustomerIdentifier", "DIMENSION": "Dimension",
               "CUSTOMER_AWS_ACCOUNT_ID": "CustomerAWSAccountId", "LICENSE_ARN": "LicenseArn"}
MAX_RESULTS = 25
MAX_FILTER_VALUES = 100


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def get_entitlements(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    code = body.get("ProductCode")
    if not isinstance(code, str) or not 1 <= len(code) <= 255:
        raise _invalid("ProductCode is required (1 to 255 characters)")
    filters = _filters(body.get("Filter"))
    limit = body.get("MaxResults", MAX_RESULTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise _invalid(f"MaxResults must be between 1 and {MAX_RESULTS}")
    query = hashlib.sha256(json.dumps([code, sorted((k, sorted(v)) for k, v in filters.items())])
                           .encode()).hexdigest()[:16]
    offset = _offset(body.get("NextToken"), query)
    with state.lock:
        fault = state.take_fault("GetEntitlements")
        raise_fault(fault)
        if fault is not None and fault.kind == "empty_page":
            return {"Entitlements": [], "NextToken": _token(offset, query)}
        listed = _listed(state, code)
    matching = [item for item, identifier in listed
                if all((identifier if key == "CUSTOMER_IDENTIFIER" else item.get(FILTER_KEYS[key]))
                       in values for key, values in filters.items())]
    page = matching[offset:offset + limit]
    answer: dict[str, Any] = {"Entitlements": page}
    if offset + limit < len(matching):
        answer["NextToken"] = _token(offset + limit, query)
    return answer


def _filters(raw: object) -> dict[str, set[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _invalid("Filter must be a map")
    filters: dict[str, set[str]] = {}
    for key, values in raw.items():
        if key not in FILTER_KEYS:
            raise _invalid(f"Unknown filter {key!r}")
        if (not isinstance(values, list) or not 1 <= len(values) <= MAX_FILTER_VALUES
                or not all(isinstance(v, str) and v for v in values)):
            raise _invalid(f"Filter {key} needs 1 to {MAX_FILTER_VALUES} non-empty strings")
        filters[key] = set(values)
    if "CUSTOMER_IDENTIFIER" in filters and "CUSTOMER_AWS_ACCOUNT_ID" in filters:
        raise _invalid("CUSTOMER_IDENTIFIER and CUSTOMER_AWS_ACCOUNT_ID cannot be used together")
    return filters


def _token(offset: int, query: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": query}).encode()).decode()


def _offset(token: object, query: str) -> int:
    if token is None:
        return 0
    try:
        assert isinstance(token, str) and len(token) <= 512
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        assert decoded["q"] == query and isinstance(decoded["o"], int) and decoded["o"] >= 0
        return int(decoded["o"])
    except (AssertionError, ValueError, KeyError, TypeError):
        raise _invalid("NextToken is not valid for this request") from None


def _listed(state: SandboxState, code: str) -> list[tuple[dict[str, Any], str]]:
    """Every entitlement of the product, with its buyer's CustomerIdentifier (which a
    filter matches even for a product that does not answer it)."""
    product = state.products.get(code)
    if product is None:
        return []
    subs = sorted((s for s in state.subscriptions.values()
                   if s.product_code == code and s.in_force()),
                  key=lambda s: (s.subscribed_at, s.id))
    listed = []
    for sub in subs:
        for entitlement in sub.entitlements:
            item: dict[str, Any] = {
                "ProductCode": code, "Dimension": entitlement.dimension,
                "CustomerAWSAccountId": sub.account_id, "LicenseArn": sub.license_arn,
                "Value": dict(entitlement.value)}
            if product.legacy:
                item["CustomerIdentifier"] = sub.customer_identifier
            if sub.expires_at is not None:
                item["ExpirationDate"] = epoch(sub.expires_at)
            listed.append((item, sub.customer_identifier))
    return listed
