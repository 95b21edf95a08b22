"""What Django's debug error page may show of the settings (DEBUG is on only under `make run`)."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SettingsFilter(SafeExceptionReporterFilter):
    """Django's filter hides settings named like API, KEY, SECRET, TOKEN, PASS; ours also hides
    webhook addresses (a Slack incoming-webhook URL is its own secret) and every *_URL (a
    DATABASE_URL, REDIS_URL or EMAIL_URL carries a password)."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|WEBHOOK|_URL$", flags=re.IGNORECASE
    )
