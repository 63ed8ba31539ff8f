"""The README's model table says which memory plan each model gets on a 12, 16, 24, 48 and 80 GB
card (issue 23). It is typed for people to read, so this test recomputes every cell with the
chooser and fails when the code and the table part, and when a model is missing from it."""

from __future__ import annotations

import re
from pathlib import Path

from bot.core.plans import Card, choose
from bot.core.registry import REGISTRY

README = Path(__file__).resolve().parents[1] / "README.md"
CARDS_GB = (12, 16, 24, 48, 80)
ROW = re.compile(
    r"^\| `(?P<key>[a-z0-9_]+)`(?P<partner> \(\+ `(?P<suffix>_[a-z0-9]+)`\))? \|[^|]*\|(?P<cells>.*)\|$"
)


def table_rows() -> dict[str, list[str]]:
    """Each model key of the table with its five plan cells; a ``(+ `_lightx2v`)`` row stands for
    its partner too."""
    rows: dict[str, list[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if not match or match["key"] not in REGISTRY:
            continue
        cells = [cell.strip() for cell in match["cells"].split("|")]
        rows[match["key"]] = cells
        if match["suffix"]:
            rows[match["key"] + match["suffix"]] = cells
    return rows


def test_the_readme_table_is_the_choosers() -> None:
    rows = table_rows()
    assert len(rows) > 10, "the README's model table was not found"
    for key, cells in rows.items():
        chosen = []
        for vram in CARDS_GB:
            choice = choose(REGISTRY[key], Card(vram, 64, (8, 9)))
            chosen.append(choice.chosen.key if choice.chosen else "none")
        assert cells == chosen, f"{key}: the README says {cells}, the chooser {chosen}"


def test_every_model_is_in_the_table() -> None:
    missing = sorted(k for k, spec in REGISTRY.items() if not spec.tiny and k not in table_rows())
    assert not missing, f"models missing from the README's table: {missing}"
