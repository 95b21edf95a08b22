from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        # The usage pages show cost beside tokens; usage does not import billing, so billing
        # hands it the function that prices usage (usage/costing.py).
        from core import model_catalog
        from customers import reconcile
        from usage import costing

        from . import catalog
        from .price_sync import prices_reconcile
        from .selectors import usage_cost_for_customer

        costing.cost_function_register(usage_cost_for_customer)
        # The catalog of models for customers' allowed models and every page's model names.
        model_catalog.catalog_register(catalog)
        # Reconciliation checks the proxy's price items with the customers' and tokens' items.
        reconcile.price_check_register(prices_reconcile)
