from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The top floor: project settings and URLs, staff dashboards, cross-app tasks and
    commands. It composes core, customers, usage and billing, and nothing imports it."""

    name = "portal"
    label = "site"
    verbose_name = "Portal"

    def ready(self):
        from core import live
        from usage.signals import usage_imported

        from .dashboard.selectors import compute_quota_watch

        # The customers near a limit, kept fresh for the staff dashboards.
        live.figure_register(live.QUOTA_WATCH, compute_quota_watch)
        # A page that finds a live figure old or missing queues its read (portal.tasks).
        live.refresh_queue_register(_queue_live_figure_read)
        # New billed usage rows: recompute the dashboards' cached billed views in the background.
        usage_imported.connect(_warm_dashboards_later, dispatch_uid="portal.warm_dashboards")


def _queue_live_figure_read(key: str) -> None:
    from .tasks import queue_live_figure_read

    queue_live_figure_read(key)


def _warm_dashboards_later(**_kwargs) -> None:
    from .tasks import warm_dashboards

    warm_dashboards.delay()
