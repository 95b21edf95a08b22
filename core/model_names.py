"""Model display names for the pages: "Claude 3 Haiku" for anthropic.claude-3-haiku-…

From the model catalog (core/model_catalog.py, which billing fills: the price book's display
names and the proxy's alias map), kept in the cache for CACHE_SECONDS so a page that names
several models costs at most one query. An id the catalog does not know is shown as it is.
"""

from django.core.cache import cache

from core import model_catalog

CACHE_KEY = "portal:model-catalog"
CACHE_SECONDS = 300


def _catalog() -> list:
    models = cache.get(CACHE_KEY)
    if models is None:
        models = model_catalog.catalog()
        cache.set(CACHE_KEY, models, CACHE_SECONDS)
    return models


def display_name(model_id: str) -> str:
    """The catalog's name of a model id, alias or inference profile id; else the id itself."""
    if not model_id:
        return ""
    found = model_catalog.find(str(model_id), _catalog())
    return found.name if found and found.name else str(model_id)


def display_names(model_ids) -> dict[str, str]:
    return {model_id: display_name(model_id) for model_id in model_ids}


def refresh() -> None:
    cache.delete(CACHE_KEY)
    _catalog()
