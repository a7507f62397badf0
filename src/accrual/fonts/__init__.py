"""Fonts shipped with Accrual: a subset of Noto Sans CJK SC (SIL Open Font License 1.1,
``OFL.txt``), made by ``tools/subset_cjk_font.py``. The PDF statements are set in it,
and the pages fall back on it where a machine has no Chinese font."""

from __future__ import annotations

from pathlib import Path

FONTS = Path(__file__).parent
REGULAR = FONTS / "NotoSansSC-Subset-Regular.ttf"
BOLD = FONTS / "NotoSansSC-Subset-Bold.ttf"
