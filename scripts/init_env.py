"""Write the local `.env` that `make run` and hand-run commands share, once.

It holds a fresh SECRET_KEY, the demo passwords and the addresses of the embedded services.
An existing `.env` is never overwritten: it is how a second `make run` keeps its data.
"""

import os
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    target = BASE_DIR / ".env"
    if target.exists():
        return 0
    aws_port = os.environ.get("AWS_EMULATOR_PORT", "5000")
    lines = [
        "# Written by `make run` for this machine only; never commit it. See .env.example.",
        "DEBUG=true",
        f"SECRET_KEY={secrets.token_urlsafe(50)}",
        f"DATABASE_URL=sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}",
        "ALLOWED_HOSTS=127.0.0.1,localhost,[::1]",
        "EMAIL_URL=consolemail://",
        "CELERY_BROKER_URL=filesystem://",
        f"AWS_ENDPOINT_URL=http://127.0.0.1:{aws_port}",
        "AWS_REGION=us-east-1",
        "AWS_ACCESS_KEY_ID=local-emulator",
        "AWS_SECRET_ACCESS_KEY=local-emulator",
        f"USAGE_EVENTS_DIR={BASE_DIR / 'var' / 'usage-events'}",
        f"DEMO_STAFF_PASSWORD={secrets.token_urlsafe(12)}",
        f"DEMO_CUSTOMER_PASSWORD={secrets.token_urlsafe(12)}",
    ]
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o600)
    print(f"Wrote {target} (local settings and demo passwords).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
