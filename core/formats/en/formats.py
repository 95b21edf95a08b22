"""The one date format of every page: "25 Nov 2026", "25 Nov 2026 14:05 UTC" (all times are UTC).

Templates write `{{ day|date }}` and `{{ moment|date:"DATETIME_FORMAT" }}` (or
"SHORT_DATETIME_FORMAT" without the zone), never a pattern of their own. Input formats are
Django's (ISO dates, as the date pickers send them).
"""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i T"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y H:i"
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
