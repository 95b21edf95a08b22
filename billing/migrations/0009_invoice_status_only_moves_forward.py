"""PostgreSQL: an invoice's status only moves forward, even through QuerySet.update() or raw SQL.

draft -> issued -> paid, and issued or paid -> void; anything else (issued or paid back to draft,
paid back to issued, void to anything) is refused. Before this, `UPDATE billing_invoice SET
status = 'draft'` reopened an issued invoice, which could then be edited and issued again under
the same number. The model refuses the same moves (Invoice.save() against the stored row).
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION billing_invoice_immutable() RETURNS trigger AS $$
BEGIN
  IF OLD.status <> 'draft' AND (
       NEW.customer_id, NEW.period_start, NEW.period_end, NEW.number, NEW.currency,
       NEW.plan_name, NEW.subtotal, NEW.credits_applied, NEW.tax_rate, NEW.tax, NEW.total,
       NEW.replaces_id, NEW.issued_at, NEW.kind, NEW.credited_invoice_id
     ) IS DISTINCT FROM (
       OLD.customer_id, OLD.period_start, OLD.period_end, OLD.number, OLD.currency,
       OLD.plan_name, OLD.subtotal, OLD.credits_applied, OLD.tax_rate, OLD.tax, OLD.total,
       OLD.replaces_id, OLD.issued_at, OLD.kind, OLD.credited_invoice_id
     ) THEN
    RAISE EXCEPTION 'invoice % is %: it cannot change', OLD.number, OLD.status;
  END IF;
  IF OLD.status = 'void' AND NEW.status <> 'void' THEN
    RAISE EXCEPTION 'invoice % is void for good', OLD.number;
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
       (OLD.status = 'draft' AND NEW.status = 'issued')
    OR (OLD.status = 'issued' AND NEW.status IN ('paid', 'void'))
    OR (OLD.status = 'paid' AND NEW.status = 'void')
  ) THEN
    RAISE EXCEPTION 'invoice % is %: it cannot move to % (%)', COALESCE(OLD.number, '(no number)'),
      OLD.status, NEW.status, 'only draft -> issued -> paid, and issued or paid -> void';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
"""

# The function as migration 0005 left it.
PREVIOUS = """
CREATE OR REPLACE FUNCTION billing_invoice_immutable() RETURNS trigger AS $$
BEGIN
  IF OLD.status <> 'draft' AND (
       NEW.customer_id, NEW.period_start, NEW.period_end, NEW.number, NEW.currency,
       NEW.plan_name, NEW.subtotal, NEW.credits_applied, NEW.tax_rate, NEW.tax, NEW.total,
       NEW.replaces_id, NEW.issued_at, NEW.kind, NEW.credited_invoice_id
     ) IS DISTINCT FROM (
       OLD.customer_id, OLD.period_start, OLD.period_end, OLD.number, OLD.currency,
       OLD.plan_name, OLD.subtotal, OLD.credits_applied, OLD.tax_rate, OLD.tax, OLD.total,
       OLD.replaces_id, OLD.issued_at, OLD.kind, OLD.credited_invoice_id
     ) THEN
    RAISE EXCEPTION 'invoice % is %: it cannot change', OLD.number, OLD.status;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.status = 'void' AND NEW.status <> 'void' THEN
    RAISE EXCEPTION 'invoice % is void for good', OLD.number;
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FUNCTION)  # no params: the % in RAISE are not placeholders


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_embeddings_prices")]
    operations = [migrations.RunPython(forwards, backwards)]
