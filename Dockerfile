# One production image: `web` (gunicorn, the default), `worker` or `beat`, chosen by the command.
#   docker build -t bedrock-usage-portal .
#   docker run --env-file prod.env -p 8000:8000 bedrock-usage-portal            # web
#   docker run --env-file prod.env bedrock-usage-portal worker
#   docker run --env-file prod.env bedrock-usage-portal beat
#   docker run --env-file prod.env bedrock-usage-portal manage migrate
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORTAL_READ_DOT_ENV=false

WORKDIR /app

# Dependencies first, so code changes don't reinstall them: the production lock only (exact
# versions, every file checked against its hash; no moto, DuckDB or test tools: they are the
# `run` and `dev` extras). The code runs from /app and is not installed as a package.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --require-hashes --no-deps -r requirements/runtime.txt \
    && pip check

COPY . .

# Static files are collected at build time and served by WhiteNoise. collectstatic needs
# settings, not secrets: throwaway values that exist only in this build step.
RUN SECRET_KEY="$(python -c "import secrets; print(secrets.token_urlsafe(50))")" \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 ALLOWED_HOSTS=localhost EMAIL_URL=consolemail:// \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --no-input -v 0

RUN useradd --system --uid 10001 --home /app portal \
    && mkdir -p /app/var && chown -R portal /app/var
USER portal

EXPOSE 8000
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["web"]
