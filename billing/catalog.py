"""The model catalog: the models a customer can be allowed to call.

One list for the staff forms, the API and the `customers` command (through
customers.validators.allowed_models): every model the price book prices (ModelPrice) and every
model the proxy's alias map names (proxy.models.ALIASES, the embeddings models and both
sandboxes included), with its display name and aliases. An allowed-models entry is a catalog
model's id, one of its aliases, or a cross-region inference profile id of it
("us.anthropic.claude-3-haiku-20240307-v1:0"), which Bedrock bills as the model it routes to.
"""

from collections import defaultdict
from dataclasses import dataclass

from proxy import models as proxy_models

from .models import ModelPrice
from .pricing import price_model_id

# Where staff and API clients find the list, for messages.
WHERE = "the price book (Plans and price book, /staff/billing/catalog/; GET /api/v1/prices/)"


@dataclass(frozen=True)
class CatalogModel:
    model_id: str
    name: str
    aliases: tuple[str, ...]
    embeddings: bool
    free: bool
    priced: bool

    @property
    def label(self) -> str:
        """How a form offers it: "Claude 3 Haiku: anthropic.claude-3-haiku-… (claude-3-haiku)"."""
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        kind = ", embeddings" if self.embeddings else ""
        free = ", free" if self.free else ""
        return f"{self.name}: {self.model_id}{aliases}{kind}{free}"


def catalog() -> list[CatalogModel]:
    """Every model a customer can be allowed, sorted by name (the free sandboxes last)."""
    names: dict[str, str] = {}
    rows = ModelPrice.objects.order_by("model_id", "-effective_from")
    for model_id, name in rows.values_list("model_id", "display_name"):
        if not names.get(model_id):  # the newest row's name, else an older one's
            names[model_id] = name
    priced = set(names)
    aliases: dict[str, list[str]] = defaultdict(list)
    for alias, model_id in proxy_models.ALIASES.items():
        aliases[model_id].append(alias)
    entries = [
        CatalogModel(
            model_id=model_id,
            name=names.get(model_id) or model_id,
            aliases=tuple(aliases.get(model_id, ())),
            embeddings=proxy_models.is_embeddings(model_id),
            free=proxy_models.is_free(model_id),
            priced=model_id in priced,
        )
        for model_id in priced | set(proxy_models.KNOWN_IDS)
    ]
    return sorted(entries, key=lambda m: (m.free, m.embeddings, m.name.lower(), m.model_id))


def find(entry: str, models: list[CatalogModel] | None = None) -> CatalogModel | None:
    """The catalog model an allowed-models entry names (id, alias or inference profile id)."""
    by_id = {m.model_id: m for m in (catalog() if models is None else models)}
    model_id = proxy_models.ALIASES.get(entry, entry)
    return by_id.get(model_id) or by_id.get(price_model_id(model_id))
