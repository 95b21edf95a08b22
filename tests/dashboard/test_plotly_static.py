"""plotly.min.js is vendored into the portal's static files, with its licence, nothing else."""

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders

PLOTLY_STATIC_PATH = "vendor/plotly/plotly.min.js"
VENDORED = Path(__file__).resolve().parents[2] / "portal" / "static" / "vendor" / "plotly"


def test_the_vendored_bundle_is_the_one_served_and_keeps_its_notice():
    assert finders.find(PLOTLY_STATIC_PATH, find_all=True) == [str(VENDORED / "plotly.min.js")]
    with open(VENDORED / "plotly.min.js", encoding="utf-8") as bundle:
        header = bundle.read(300)
    assert header.startswith("/**\n* plotly.js v"), header
    assert "Licensed under the MIT license" in header
    assert "Permission is hereby granted" in (VENDORED / "LICENSE.txt").read_text()


def test_no_python_package_is_needed_for_it():
    """The bundle used to come from the `plotly` package through a custom finder."""
    assert not any("plotly" in finder.lower() for finder in settings.STATICFILES_FINDERS)


def test_no_page_loads_anything_from_another_host():
    """No CDN at run time: no template's script, style sheet or image comes from another host."""
    import re

    remote = re.compile(r"""(src|href)\s*=\s*["'](https?:)?//""", re.IGNORECASE)
    templates = Path(__file__).resolve().parents[2] / "templates"
    checked = 0
    for template in templates.rglob("*.html"):
        if "email" in template.parts:  # emails link to the portal's own absolute URLs
            continue
        text = template.read_text(encoding="utf-8")
        assert "cdn.plot.ly" not in text and "cdn.jsdelivr" not in text, template
        assert not remote.search(text), template
        checked += 1
    assert checked > 20
