"""plotly.min.js comes from the installed `plotly` package through staticfiles, nothing else."""

from django.contrib.staticfiles import finders

from portal.staticfinders import PLOTLY_STATIC_PATH, PlotlyFinder


def test_the_bundle_is_found_and_is_plotly():
    path = finders.find(PLOTLY_STATIC_PATH)
    assert path and path.endswith("plotly/package_data/plotly.min.js")
    with open(path, encoding="utf-8") as bundle:
        assert "plotly.js" in bundle.read(2000)


def test_only_that_file_is_exposed():
    finder = PlotlyFinder()
    assert [name for name, _ in finder.list([])] == ["plotly.min.js"]
    assert finder.find("vendor/plotly/widgetbundle.js") is None
    assert finder.find("vendor/plotly/../plotly/__init__.py") is None
    assert finder.check() == []


def test_no_page_loads_anything_from_another_host():
    """No CDN at run time: no template's script, style sheet or image comes from another host."""
    import re
    from pathlib import Path

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
