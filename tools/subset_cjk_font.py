"""Subset Noto Sans CJK SC to the characters a statement needs, for the PDF statements
and as the pages' fallback web font.

Source: Noto Sans CJK SC (Regular and Bold), version 2.004, SIL Open Font License 1.1,
https://github.com/notofonts/noto-cjk; Debian ships it as ``fonts-noto-cjk``
(1:20220127+repack1-1), which installs the collections this script reads by default:
``/usr/share/fonts/opentype/noto/NotoSansCJK-{Regular,Bold}.ttc`` (the SC face is the
one whose family name is "Noto Sans CJK SC").

Character set (see :func:`characters`):
- GB2312: its symbol rows 1-3 and 6-9 (CJK punctuation, full-width forms, Greek,
  Cyrillic, pinyin, box drawing; not the kana of rows 4-5) and its level-1 hanzi
  (rows 16-55, the 3,755 most common characters, which hold the 3,500 of the
  common-characters list);
- printable ASCII, Latin-1, general punctuation, currency signs;
- the CJK Symbols and Punctuation block and the full-width and half-width forms.

The CFF outlines are converted to TrueType (glyf) outlines with cu2qu, within 1 unit
of the 1,000-unit em: fpdf2 embeds a CFF font with an encoding CMap that text
extraction (pypdf) misreads, while a TrueType font goes in as Identity-H and its text
is extracted as written. Hinting, the vertical metrics and the layout tables are
dropped (a statement is set horizontally without shaping), and with them the glyphs
only they reach. Each weight comes out near 1.1 MB.

Run from the repository root (fontTools comes with fpdf2):

    python tools/subset_cjk_font.py                 # Debian's fonts, into the package
    python tools/subset_cjk_font.py --regular R.ttc --bold B.ttc --out-dir DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.subset import Options, Subsetter
from fontTools.ttLib import TTCollection, TTFont, newTable

DEBIAN_FONTS = Path("/usr/share/fonts/opentype/noto")
FAMILY = "Noto Sans CJK SC"
OUT_DIR = Path(__file__).resolve().parent.parent / "src" / "accrual" / "fonts"


def _gb2312_rows(first: int, last: int) -> set[str]:
    found = set()
    for row in range(first, last + 1):
        for cell in range(0xA1, 0xFF):
            try:
                found.add(bytes((row, cell)).decode("gb2312"))
            except UnicodeDecodeError:
                continue  # an unassigned cell
    return found


def characters() -> set[str]:
    chars = _gb2312_rows(0xA1, 0xA3) | _gb2312_rows(0xA6, 0xA9) | _gb2312_rows(0xB0, 0xD7)
    for first, last in ((0x20, 0x7E), (0xA0, 0xFF), (0x2010, 0x2044), (0x20A0, 0x20BF),
                        (0x2100, 0x2122), (0x2190, 0x2193), (0x3000, 0x303F),
                        (0xFF01, 0xFF9F), (0xFFE0, 0xFFE6)):
        chars.update(chr(code) for code in range(first, last + 1))
    return chars


def sc_face(collection: Path) -> TTFont:
    for font in TTCollection(str(collection)).fonts:
        if font["name"].getDebugName(1) == FAMILY:
            return font
    raise SystemExit(f"{collection}: no face named {FAMILY!r}")


def subset(collection: Path, target: Path) -> None:
    font = sc_face(collection)
    options = Options()
    options.hinting = False
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]  # keep the copyright and licence
    options.name_languages = [0x409]
    options.notdef_outline = True
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "vhea", "vmtx", "VORG"]
    subsetter = Subsetter(options)
    subsetter.populate(unicodes=[ord(char) for char in characters()])
    subsetter.subset(font)
    to_truetype(font)
    target.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(target))
    print(f"{target}: {target.stat().st_size:,} bytes, {len(font.getBestCmap()):,} characters")


def to_truetype(font: TTFont, max_error: float = 1.0) -> None:
    """Replace the CFF outlines by quadratic (glyf) ones, ``max_error`` font units off."""
    order = font.getGlyphOrder()
    glyphs = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder, glyf.glyphs = order, {}
    for name in order:
        pen = TTGlyphPen(glyphs)
        glyphs[name].draw(Cu2QuPen(pen, max_error, reverse_direction=True))
        glyf[name] = pen.glyph()
    font["glyf"], font["loca"] = glyf, newTable("loca")
    del font["CFF "]
    font["head"].glyphDataFormat = 0
    maxp = font["maxp"] = newTable("maxp")
    maxp.tableVersion = 0x00010000
    for field in ("maxZones", "maxTwilightPoints", "maxStorage", "maxFunctionDefs",
                  "maxInstructionDefs", "maxStackElements", "maxSizeOfInstructions",
                  "maxComponentElements"):
        setattr(maxp, field, 1 if field == "maxZones" else 0)
    post = font["post"]
    post.formatType, post.extraNames, post.mapping = 3.0, [], {}
    font.sfntVersion = "\x00\x01\x00\x00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--regular", type=Path, default=DEBIAN_FONTS / "NotoSansCJK-Regular.ttc")
    parser.add_argument("--bold", type=Path, default=DEBIAN_FONTS / "NotoSansCJK-Bold.ttc")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    subset(args.regular, args.out_dir / "NotoSansSC-Subset-Regular.ttf")
    subset(args.bold, args.out_dir / "NotoSansSC-Subset-Bold.ttf")


if __name__ == "__main__":
    main()
