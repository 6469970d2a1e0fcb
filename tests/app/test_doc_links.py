"""Every relative link in the README and the other Markdown pages leads somewhere: the file
exists, and a `#fragment` names a heading of the page it points at (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.M)
# A path of the test suite named in prose or a comment: `tests/…` up to a space or quote.
TEST_PATH = re.compile(r"\btests/[\w./<>-]*[\w/>]")
NAMING_TESTS = [*PAGES, ROOT / "Makefile", ROOT / "pyproject.toml", ROOT / ".ci" / "run"]
NAMING_TESTS += sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())


def prose(page: Path) -> str:
    return FENCE.sub("", page.read_text(encoding="utf-8"))  # links and headings, not code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(prose(page))}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for link in LINK.findall(prose(page)):
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path) if path else page
        if not target.resolve().is_relative_to(ROOT):
            continue  # beside the repository (the steering folder's shared/): not ours
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{link}: no such heading")
    assert broken == []


def test_a_broken_link_would_be_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\nSee [a](missing.py) and [b](#title) and [c](#nope).\n")
    assert anchors(page) == {"title"}
    assert [link for link in LINK.findall(prose(page))] == ["missing.py", "#title", "#nope"]


def named_test_paths(text: str) -> list[str]:
    """The paths below tests/ that `text` names, but for patterns (`tests/test_<kind>.py`)."""
    return [path for path in TEST_PATH.findall(text) if "<" not in path]


def test_every_test_path_named_exists() -> None:
    """The docs, the Makefile, pyproject.toml, CI and deploy/ name test files by path: each
    one is there (the suite's folders mirror gateway/, so a moved test moves its mentions)."""
    stale = [
        f"{page.relative_to(ROOT)}: {path}"
        for page in NAMING_TESTS
        for path in named_test_paths(page.read_text(encoding="utf-8", errors="replace"))
        if not (ROOT / path).exists()
    ]
    assert stale == []


def test_a_stale_test_path_would_be_found() -> None:
    text = "See `tests/cache/test_read_through.py`, tests/fleet/ and tests/test_<kind>.py."
    assert named_test_paths(text) == ["tests/cache/test_read_through.py", "tests/fleet/"]
    assert not (ROOT / "tests/test_cache.py").exists()
