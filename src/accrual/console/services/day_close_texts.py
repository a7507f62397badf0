"""The hot path of a close: detail ids and texts for hundreds of thousands of details.

Hand-written equivalents of ``contract.messages.detail_id``, ``format_decimal`` and
``format_minor``, pinned to them by tests/unit/test_fast_paths.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal

from accrual.contract.messages import _NAMESPACE, detail_id
from accrual.money import format_decimal

_NAMESPACE_BYTES = _NAMESPACE.bytes


def _uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, name))``, without building UUID objects."""
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _fast_detail_id(site: str, workspace_id: str, day: date, item: str, tier: int,
                    revision: int) -> str:
    return _uuid5_text(f"{site}/{workspace_id}/{day.isoformat()}/{item}/{tier}/{revision}")


# The contract's detail_id is the reference; the fast one is used only while they agree.
_SAMPLE_ID = ("cn1", "0f" * 16, date(2026, 11, 25), "logs", 7, 2)
_detail_id = (_fast_detail_id if _fast_detail_id(*_SAMPLE_ID) == detail_id(*_SAMPLE_ID)
              else detail_id)

_json_text = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _json_or_null(value: str | None) -> str:
    return "null" if value is None else _json_text(value)  # type: ignore[no-any-return]


def _decimal_text(value: Decimal) -> str:
    """``format_decimal``, with a shortcut for the whole numbers quantities mostly are."""
    whole = int(value)
    if 0 < whole < 10**18 and whole == value:
        return str(whole)
    return format_decimal(value)


def _minor_text(amount_minor: int, digits: int) -> str:
    """``format_minor`` for whole minor units, in integer arithmetic."""
    if not digits:
        return str(amount_minor)
    whole, part = divmod(abs(amount_minor), 10**digits)
    return f"{'-' if amount_minor < 0 else ''}{whole}.{part:0{digits}d}"
