from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        # The usage pages show cost beside tokens; usage does not import billing, so billing
        # hands it the function that prices usage (usage/costing.py).
        from usage import costing

        from .selectors import usage_cost_for_customer

        costing.cost_function_register(usage_cost_for_customer)
