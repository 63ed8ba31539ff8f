"""The README and the pages in docs/ link to each other by path and by heading: a moved section or a
renamed heading must not leave a dead link behind. Anchors follow GitHub's heading slugs, since that
is where owners read these pages. Cheap: it reads a dozen text files."""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_ID = re.compile(r"<a\s+[^>]*?(?:id|name)=\"([^\"]+)\"")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, without HTML comments: where links and headings live."""
    lines: list[str] = []
    fenced = False
    for line in _COMMENT.sub("", text).splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text (inline code kept, link targets and emphasis
    marks dropped), lower-cased, every character but letters, digits, `_`, `-` and spaces removed,
    then each space made a hyphen (runs are not collapsed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)
    text = text.strip().lower()
    kept = "".join(
        c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN" or c.isalnum()
    )
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs, numbered as GitHub numbers repeats
    (`name`, `name-1`, `name-2`), and explicit `<a id=...>` anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose(text):
        match = _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(_HTML_ID.findall(line))
    return found


def dead_links(page: Path) -> list[str]:
    """The relative links and anchors of one page that lead nowhere, each as one readable line."""
    text = page.read_text(encoding="utf-8")
    problems: list[str] = []
    for target in _LINK.findall("\n".join(_prose(text))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto: and the like: not ours to check offline
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{page.name}: ({target}): {path_part} does not exist")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text("utf-8")):
            problems.append(
                f"{page.name}: ({target}): no heading or anchor #{anchor} in {dest.name}"
            )
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_dead_links(page: Path) -> None:
    assert dead_links(page) == []


def test_every_docs_page_is_listed_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in readme]
    assert missing == []


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Videos: encoding and input limits", "videos-encoding-and-input-limits"),
        ("Limits, and direct messages", "limits-and-direct-messages"),
        ("Memory plans: chosen for your card", "memory-plans-chosen-for-your-card"),
        (
            "Learned interpolation and upscaling (`bot/core/enhance/`)",
            "learned-interpolation-and-upscaling-botcoreenhance",
        ),
        ("floor 1: `bot/core/`", "floor-1-botcore"),
        ("2026-11-24: load test, 500 `/video` jobs", "2026-11-24-load-test-500-video-jobs"),
        ("The frame-rate cap (`rates.py`)", "the-frame-rate-cap-ratespy"),
        ("Trust, restarts & data", "trust-restarts--data"),
        ("a **bold** [link](x.md) and `max_upload_mb`", "a-bold-link-and-max_upload_mb"),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_dead_link_or_anchor_is_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "B.md").write_text("# Bee\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "A.md"
    page.write_text(
        '# A\n\n<a id="kept"></a>\n[ok](docs/B.md#twice-1) [ok](#kept) [ok](#a) [web](https://x.y/#z)\n'
        "[gone](docs/C.md) [bad](docs/B.md#twice-2) [bad](#nowhere)\n"
        "```\n[in code](docs/D.md)\n```\n<!-- [commented](docs/E.md) -->\n",
        encoding="utf-8",
    )
    assert dead_links(page) == [
        "A.md: (docs/C.md): docs/C.md does not exist",
        "A.md: (docs/B.md#twice-2): no heading or anchor #twice-2 in B.md",
        "A.md: (#nowhere): no heading or anchor #nowhere in A.md",
    ]
