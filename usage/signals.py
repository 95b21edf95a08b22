"""Signals of the usage app, for the layers above it (which usage does not import)."""

from django.dispatch import Signal

# Sent after an import run wrote billed usage rows (nightly or staff-started). The portal's
# dashboards listen to refresh their cached billed views (portal/apps.py).
usage_imported = Signal()
