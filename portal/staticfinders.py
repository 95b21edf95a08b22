"""Serve the plotly.js bundle shipped inside the `plotly` PyPI package as a static file.

The project installs `plotly` (pyproject.toml), whose wheel carries `package_data/plotly.min.js`.
This finder exposes only that one file, as `vendor/plotly/plotly.min.js`, so `collectstatic`
(and WhiteNoise) serve it like any other static file: no CDN at run time, and no third-party
JavaScript copied into the repository.
"""

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PLOTLY_STATIC_PATH = "vendor/plotly/plotly.min.js"


def plotly_bundle_dir() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    folder = Path(plotly.__file__).resolve().parent / "package_data"
    return folder if (folder / "plotly.min.js").is_file() else None


class PlotlyFinder(BaseFinder):
    prefix = "vendor/plotly"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        folder = plotly_bundle_dir()
        self.storage = FileSystemStorage(location=str(folder)) if folder else None
        if self.storage is not None:
            self.storage.prefix = self.prefix

    def check(self, **kwargs):
        if self.storage is None:
            return [
                Error(
                    "plotly.min.js not found: install the dependencies (pip install -e .)",
                    id="portal.E010",
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        if self.storage is None or path != PLOTLY_STATIC_PATH:
            return [] if find_all else None
        found = self.storage.path("plotly.min.js")
        return [found] if find_all else found

    def list(self, ignore_patterns):
        if self.storage is not None:
            yield "plotly.min.js", self.storage
