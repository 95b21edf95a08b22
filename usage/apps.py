from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"

    def ready(self):
        from core import live
        from customers import live as customers_live

        from .selectors import budget_usage, month_usage_many, staff_live_today, with_last_use
        from .services import utc_today

        # Today's live totals of the active customers, kept fresh for the staff pages.
        live.figure_register(live.STAFF_TODAY, staff_live_today)
        # The customers pages show live figures from the proxy's counters, read here.
        customers_live.readers_register(
            month_usage=lambda customers: month_usage_many(customers=customers, today=utc_today()),
            last_use=with_last_use,
            budget=lambda customer: budget_usage(customer=customer, today=utc_today()),
        )
