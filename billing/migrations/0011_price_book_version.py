"""The price book's version counter for the proxy's price items (billing/price_sync.py).

One row, created on first use. Price items reach DynamoDB through the customers outbox, whose
rows may have no customer from customers 0004 on.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0010_claude_2_price"),
        ("customers", "0004_outbox_price_rows"),
    ]

    operations = [
        migrations.CreateModel(
            name="PriceBookVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.PositiveBigIntegerField(default=0)),
            ],
        ),
    ]
