"""JSON as the marketplace speaks it, with exact numbers.

Quantities are doubles on Azure's wire. The emulator reads every JSON number as a
``Decimal`` (never through a float) and writes a ``Decimal`` back as the number
literal it holds, so what a client sent is what it sees echoed.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def loads(body: bytes) -> Any:
    """JSON with every non-integer number as a ``Decimal``; ``ValueError`` if not JSON."""
    return json.loads(body, parse_float=Decimal,
                      parse_constant=lambda name: _refuse(f"{name} is not a JSON number"))


def dumps(value: Any) -> bytes:
    """Compact JSON; a ``Decimal`` is written as its exact number literal."""
    return _encode(value).encode()


def number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


def _refuse(message: str) -> Any:
    raise ValueError(message)
