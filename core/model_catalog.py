"""The models the portal knows (ids, names, aliases), for the apps below billing.

The catalog is billing's (billing/catalog.py: the price book's models and the proxy's alias
map), but customers validate allowed models and every page shows model names, and neither may
import billing (docs/architecture.md). So billing hands its catalog in: its AppConfig.ready()
registers it here, and the others ask through these functions. Without billing installed the
catalog is empty.
"""

from typing import Any, Protocol


class Catalog(Protocol):
    WHERE: str

    def catalog(self) -> list[Any]: ...

    def find(self, entry: str, models: list[Any] | None = None) -> Any | None: ...


_source: Catalog | None = None


def catalog_register(source: Catalog | None) -> None:
    """Set (or, with None, remove) the catalog the portal uses."""
    global _source
    _source = source


def catalog() -> list:
    """Every model of the catalog (objects with model_id, name, aliases, ...)."""
    return _source.catalog() if _source is not None else []


def find(entry: str, models: list | None = None):
    """The catalog model an entry names (id, alias or inference profile id), or None."""
    return _source.find(entry, models) if _source is not None else None


def where() -> str:
    """Where the catalog's models come from, for error messages."""
    return _source.WHERE if _source is not None else "the price book"
