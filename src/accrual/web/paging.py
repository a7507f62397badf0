"""Sorting and paginating a table's rows, read from the query string.

Page tables show what a service returned (a bounded list: a month of details,
an account's vouchers); the page sorts and cuts it, keeping the other query
parameters in its links.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

Row = TypeVar("Row")
PER_PAGE = 20
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Table(Generic[Row]):
    rows: list[Row]
    page: int
    pages: int
    total: int
    sort: str
    descending: bool
    params: dict[str, str]

    def link(self, **changes: Any) -> str:
        """The query string of this table with some parameters changed."""
        values = {**self.params, "sort": self.sort, "order": "desc" if self.descending else "asc",
                  "page": str(self.page)}
        values.update({k: str(v) for k, v in changes.items()})
        return "?" + urlencode(values)

    def sort_link(self, key: str) -> str:
        descending = not self.descending if key == self.sort else False
        return self.link(sort=key, order="desc" if descending else "asc", page=1)

    def aria_sort(self, key: str) -> str:
        if key != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"


def _whole(text: str | None, default: int, upper: int) -> int:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 18:
        return default
    return max(1, min(int(text), upper))


def table(rows: Sequence[Row], query: Mapping[str, str], keys: Mapping[str, Callable[[Row], Any]],
          *, default_sort: str, default_descending: bool = False,
          per_page: int = PER_PAGE) -> Table[Row]:
    """Rows sorted by ``?sort=<key>&order=asc|desc`` (only the given keys; otherwise the
    default) and cut to ``?page=N``; an out-of-range page shows the last one."""
    sort = query.get("sort", default_sort)
    if sort not in keys:
        sort = default_sort
    order = query.get("order")
    descending = default_descending if order not in ("asc", "desc") else order == "desc"
    key = keys[sort]
    ordered = sorted(rows, key=lambda row: (key(row) is None, key(row)), reverse=descending)
    pages = max(1, -(-len(ordered) // per_page))
    page = min(_whole(query.get("page"), 1, MAX_PAGE), pages)
    params = {k: v for k, v in query.items() if k not in ("sort", "order", "page")}
    return Table(ordered[(page - 1) * per_page: page * per_page], page, pages, len(ordered),
                 sort, descending, params)
