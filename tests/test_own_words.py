"""The product speaks in its own words: no page, message, code comment or doc names the
documents it started from ("seed 003's view" once appeared on the heatmap)."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
SOURCES = (
    "templates",
    "portal",
    "customers",
    "billing",
    "usage",
    "core",
    "proxy",
    "docs",
    "deploy",
)
SPEC_WORDS = re.compile(r"\bseeds?[ _-]?#?0\d\d\b|\bseed document|\bseeds/", re.IGNORECASE)


def _files():
    yield ROOT / "README.md"
    for top in SOURCES:
        for path in (ROOT / top).rglob("*"):
            if path.suffix in {".py", ".html", ".md", ".txt", ".yaml", ".yml", ".json", ".js"}:
                yield path


def test_no_page_code_or_doc_names_the_starting_documents():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if SPEC_WORDS.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_pattern_catches_what_it_is_for():
    assert SPEC_WORDS.search("Seed 003's view")
    assert SPEC_WORDS.search("as seed-002 says")
    assert not SPEC_WORDS.search("manage.py seed_demo")
    assert not SPEC_WORDS.search("a seeded random generator")
