#!/bin/sh
# The database password comes from a file (a compose or Kubernetes secret), never
# from the command line: libpq and psycopg read PGPASSWORD from the environment.
set -e
if [ -z "${PGPASSWORD:-}" ] && [ -r "${PGPASSWORD_FILE:-/run/secrets/pg_password}" ]; then
  PGPASSWORD="$(cat "${PGPASSWORD_FILE:-/run/secrets/pg_password}")"
  export PGPASSWORD
fi
exec "$@"
