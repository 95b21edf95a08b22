"""Outbox rows for the price book: kind "price", with no customer (billing/price_sync.py).

Only makes `customer` nullable (on PostgreSQL: ALTER COLUMN ... DROP NOT NULL, no rewrite) and
adds the choice; existing rows keep their customer.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0003_imported_token_display_prefix"),
    ]

    operations = [
        migrations.AlterField(
            model_name="syncoutbox",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="outbox",
                to="customers.customer",
            ),
        ),
        migrations.AlterField(
            model_name="syncoutbox",
            name="kind",
            field=models.CharField(
                choices=[("customer", "Customer"), ("token", "Token"), ("price", "Price")],
                max_length=16,
            ),
        ),
    ]
