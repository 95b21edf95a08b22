from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_user_session_epoch"),
    ]

    operations = [
        migrations.CreateModel(
            name="Heartbeat",
            fields=[
                (
                    "name",
                    models.CharField(max_length=32, primary_key=True, serialize=False),
                ),
                ("at", models.DateTimeField()),
                ("host", models.CharField(blank=True, max_length=255)),
                ("pid", models.PositiveIntegerField(blank=True, null=True)),
            ],
        ),
    ]
