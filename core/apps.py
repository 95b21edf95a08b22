from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The ground every app stands on: users and API keys, access rules, web and API helpers,
    AWS clients. Its models keep the database label `portal` (tables portal_user, ...), which
    they had before the core package was split out, so databases and migrations carry over."""

    name = "core"
    label = "portal"
    verbose_name = "Core"

    def ready(self):
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
