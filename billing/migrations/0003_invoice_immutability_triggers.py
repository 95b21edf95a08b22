"""PostgreSQL triggers: an issued, paid or void invoice and its lines cannot change, even through
QuerySet.update() or raw SQL. Only the lifecycle columns may move. (The model layer enforces the
same rules on every database; this is the belt to those braces.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION billing_invoice_immutable() RETURNS trigger AS $$
BEGIN
  IF OLD.status <> 'draft' AND (
       NEW.customer_id, NEW.period_start, NEW.period_end, NEW.number, NEW.currency,
       NEW.plan_name, NEW.subtotal, NEW.credits_applied, NEW.tax_rate, NEW.tax, NEW.total,
       NEW.replaces_id, NEW.issued_at
     ) IS DISTINCT FROM (
       OLD.customer_id, OLD.period_start, OLD.period_end, OLD.number, OLD.currency,
       OLD.plan_name, OLD.subtotal, OLD.credits_applied, OLD.tax_rate, OLD.tax, OLD.total,
       OLD.replaces_id, OLD.issued_at
     ) THEN
    RAISE EXCEPTION 'invoice % is %: it cannot change', OLD.number, OLD.status;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.status = 'void' AND NEW.status <> 'void' THEN
    RAISE EXCEPTION 'invoice % is void for good', OLD.number;
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION billing_invoice_no_delete() RETURNS trigger AS $$
BEGIN
  IF OLD.status <> 'draft' THEN
    RAISE EXCEPTION 'invoice % is %: it cannot be deleted', OLD.number, OLD.status;
  END IF;
  RETURN OLD;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION billing_invoiceline_immutable() RETURNS trigger AS $$
DECLARE
  parent_status text;
BEGIN
  SELECT status INTO parent_status FROM billing_invoice
   WHERE id = COALESCE(NEW.invoice_id, OLD.invoice_id);
  IF parent_status IS NOT NULL AND parent_status <> 'draft' THEN
    RAISE EXCEPTION 'lines of an issued invoice cannot change';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_immutable BEFORE UPDATE ON billing_invoice
  FOR EACH ROW EXECUTE FUNCTION billing_invoice_immutable();
CREATE TRIGGER billing_invoice_no_delete BEFORE DELETE ON billing_invoice
  FOR EACH ROW EXECUTE FUNCTION billing_invoice_no_delete();
CREATE TRIGGER billing_invoiceline_immutable BEFORE INSERT OR UPDATE OR DELETE
  ON billing_invoiceline FOR EACH ROW EXECUTE FUNCTION billing_invoiceline_immutable();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_invoiceline_immutable ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_invoice_no_delete ON billing_invoice;
DROP TRIGGER IF EXISTS billing_invoice_immutable ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoiceline_immutable();
DROP FUNCTION IF EXISTS billing_invoice_no_delete();
DROP FUNCTION IF EXISTS billing_invoice_immutable();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(CREATE)  # no params: the % in RAISE are not placeholders


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_seed_price_book")]
    operations = [migrations.RunPython(forwards, backwards)]
