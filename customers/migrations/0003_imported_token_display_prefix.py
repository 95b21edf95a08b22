"""Imported tokens showed their first 8 characters (plus the last 4): 12 of a 20-character
token. Keep only the first 4 of them in the token rows, in the outbox payloads and in the
audit trail's masked forms. DynamoDB items still holding 8 are rewritten by the next
reconciliation (it compares display_prefix), nightly or `manage.py customers reconcile`.

Values are fixed here (not read from proxy.contract) so this migration never changes meaning.
"""

from django.db import migrations

OUR_PREFIX = "bup_"
SHOWN = 4


def _replace_strings(value, replacements: dict):
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_replace_strings(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: _replace_strings(v, replacements) for k, v in value.items()}
    return value


def shorten(apps, schema_editor):
    Token = apps.get_model("customers", "Token")
    SyncOutbox = apps.get_model("customers", "SyncOutbox")
    AuditEvent = apps.get_model("customers", "AuditEvent")

    masked_by_customer: dict = {}
    shortened: dict = {}
    for token in Token.objects.exclude(display_prefix__startswith=OUR_PREFIX).iterator():
        if len(token.display_prefix) <= SHOWN:
            continue
        new_prefix = token.display_prefix[:SHOWN]
        old_masked = f"{token.display_prefix}…{token.last4}"
        masked_by_customer.setdefault(token.customer_id, {})[old_masked] = (
            f"{new_prefix}…{token.last4}"
        )
        shortened[str(token.pk)] = new_prefix
        Token.objects.filter(pk=token.pk).update(display_prefix=new_prefix)
    if not shortened:
        return

    outbox = SyncOutbox.objects.filter(kind="token", token_id__in=list(shortened))
    for row in outbox.iterator():
        payload = dict(row.payload or {})
        if "display_prefix" in payload:
            payload["display_prefix"] = shortened[str(row.token_id)]
            SyncOutbox.objects.filter(pk=row.pk).update(payload=payload)

    for customer_id, replacements in masked_by_customer.items():
        for event in AuditEvent.objects.filter(customer_id=customer_id).iterator():
            before = _replace_strings(event.before, replacements)
            after = _replace_strings(event.after, replacements)
            if (before, after) != (event.before, event.after):
                AuditEvent.objects.filter(pk=event.pk).update(before=before, after=after)


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_tokens_outbox_audit")]

    # Not reversible in substance: the removed characters are not stored anywhere.
    operations = [migrations.RunPython(shorten, migrations.RunPython.noop)]
