"""The pages' languages: gettext catalogs (Babel), and money and dates per locale.

The message ids are English, so English needs no catalog. Each package of pages
(the shared one here, each side's) keeps its own catalog beside its templates,
``locale/<lang>/LC_MESSAGES/messages.po``; a page sees its package's catalog
over the shared one. Catalogs are compiled in memory when first asked for, so
there is no build step and no compiled file to go stale. ``make messages``
extracts the texts and updates the catalogs.
"""

from __future__ import annotations

import gettext
import re
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

CATALOGS = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "en"
# The language code a person picks → the CLDR locale that formats for them.
LANGUAGES: dict[str, str] = {"en": "en", "zh": "zh_Hans_CN"}
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "zh": "简体中文"}


def N_(text: str) -> str:  # gettext's name for "extract, translate later"
    """Marks a text for the catalogs where it is defined; pages translate it when shown."""
    return text


def supported(language: object) -> str | None:
    """The language code if the pages speak it (``zh-CN``, ``zh_Hans`` → ``zh``)."""
    if not isinstance(language, str):
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else None


def best_accepted(header: str | None) -> str:
    """The first supported language of an ``Accept-Language`` header, by weight."""
    choices: list[tuple[Decimal, int, str]] = []
    for index, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = Decimal(1)
        if params.strip().startswith("q="):
            q = params.strip()[2:]
            if not re.fullmatch(r"[01](\.\d{0,3})?", q):  # RFC 9110's qvalue
                continue
            weight = Decimal(q)
        code = supported(tag)
        if code is not None and weight > 0:
            choices.append((-weight, index, code))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


@cache
def translations(language: str, *catalogs: Path) -> gettext.NullTranslations:
    """The language's texts from the given catalog folders, the first one winning, over
    the shared catalog."""
    if language == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    merged = _compiled(CATALOGS, language)
    for folder in reversed(catalogs):
        if folder != CATALOGS:
            merged.merge(_compiled(folder, language))
    return merged


def _compiled(folder: Path, language: str) -> Translations:
    po_file = folder / language / "LC_MESSAGES" / "messages.po"
    if not po_file.exists():
        return Translations()
    with po_file.open("rb") as po:
        catalog = read_po(po, locale=LANGUAGES[language])
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries stay out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled)


def money(amount: Decimal | str, currency: str, language: str) -> str:
    """An amount with its currency's symbol as the language writes it (¥1,234.50,
    CN¥1,234.50, US$3.40); never through a float."""
    value = amount if isinstance(amount, Decimal) else Decimal(amount)
    return str(format_currency(value, currency, locale=LANGUAGES[language]))


def number(value: Decimal | str | int, language: str) -> str:
    exact = value if isinstance(value, Decimal) else Decimal(value)
    return str(format_decimal(exact, locale=LANGUAGES[language], decimal_quantization=False))


def day(value: date, language: str) -> str:
    return str(babel_date(value, "medium", locale=LANGUAGES[language]))


def moment(value: datetime, zone: str, language: str) -> str:
    """A point in time in the given zone (the site's or the center's), with the zone."""
    return str(babel_datetime(value, "medium", tzinfo=ZoneInfo(zone),
                              locale=LANGUAGES[language])) + f" ({zone})"
