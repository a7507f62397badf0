"""Every text of the pages has its Chinese translation, and the catalogs are well formed."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import accrual

PACKAGES = sorted(p.parent for p in Path(accrual.__file__).parent.rglob("templates")
                  if (p.parent / "locale").is_dir())
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                    "lstrip_blocks": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def test_the_page_packages_are_found() -> None:
    names = {p.relative_to(Path(accrual.__file__).parent).as_posix() for p in PACKAGES}
    assert {"web", "console/pages"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name if p.name != "pages" else p.parent.name)
def test_every_text_is_translated_into_chinese(package: Path) -> None:
    texts = {message[2] if isinstance(message[2], str) else message[2][0]
             for message in extract_from_dir(package, METHODS, OPTIONS, KEYWORDS)}
    with (package / "locale" / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po)
    missing = sorted(text for text in texts
                     if text not in catalog or not catalog[text].string or catalog[text].fuzzy)
    assert not missing, f"run `make messages` and translate in {package.name}: {missing[:20]}"
    for message in catalog:
        if message.id and message.string and isinstance(message.id, str):
            # The same placeholders on both sides, or the page fails when it is shown.
            assert _placeholders(message.id) == _placeholders(str(message.string)), message.id


def _placeholders(text: str) -> list[str]:
    import re
    return sorted(re.findall(r"%\(\w+\)s", text))
