#!/bin/sh
# Container entrypoint: web (gunicorn), worker, beat, or a manage.py command.
set -e
case "$1" in
  web)
    shift
    exec gunicorn portal.wsgi:application --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-3}" --access-logfile - --forwarded-allow-ips '*' "$@"
    ;;
  worker)
    shift
    exec celery -A portal worker --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  beat)
    shift
    exec celery -A portal beat --loglevel "${LOG_LEVEL:-INFO}" --schedule /app/var/celerybeat-schedule "$@"
    ;;
  manage)
    shift
    exec python manage.py "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
