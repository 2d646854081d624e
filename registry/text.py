"""Text people type that ends up in spreadsheets and on dispatchers' screens: names and cells.

- `check_name`: a person's or a unit's name is printable text of bounded length. Control
  characters (CR, LF, tab, NUL …), bidirectional overrides and isolates (U+202A–U+202E,
  U+2066–U+2069), zero-width and other format characters, and unassigned code points are
  refused: they reorder or hide what a dispatcher reads and break sheets.
- `csv_cell` / `csv_uncell`: a CSV cell beginning with = + - @ tab or CR is evaluated as a
  formula by spreadsheet programs; it is written with a leading apostrophe, which the importer
  removes again. XLSX cells are written as string cells (never formulas) by `roster_io.to_xlsx`.
"""

from __future__ import annotations

import re
import unicodedata

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"\+[0-9]{1,20}(;ext=[0-9]{1,10})?")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class InvalidText(ValueError):
    """The text may not be stored; the message says why (English, for the 422 problem)."""


def check_name(text: str, *, max_len: int) -> str:
    """The name stripped of surrounding spaces, or InvalidText."""
    name = text.strip()
    if not name:
        raise InvalidText("the name is empty")
    if len(name) > max_len:
        raise InvalidText(f"the name is longer than {max_len} characters")
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise InvalidText(
                f"the name contains a control or formatting character (U+{ord(ch):04X})"
            )
    return name


def csv_cell(value: str) -> str:
    """A cell spreadsheet programs show as text, never evaluate. A stored phone number
    (`+8613812345678`, `+868334212345;ext=8001`) is left as it is: a plus sign and digits
    cannot form a formula that does anything."""
    if value.startswith(FORMULA_START) and not _PHONE.fullmatch(value):
        return "'" + value
    return value


def csv_uncell(value: str) -> str:
    """Undo `csv_cell` on import (an apostrophe before a formula character)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value
