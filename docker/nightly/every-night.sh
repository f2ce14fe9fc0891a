#!/bin/sh
# Sleep until HPO_NIGHTLY_AT (UTC, HH:MM), run `python -m hpo $HPO_NIGHTLY_ARGS`, repeat.
# The scheduler of the compose service (compose.yaml); a failed night is logged and the
# loop goes on to the next one.
set -u
at="${HPO_NIGHTLY_AT:-02:00}"
while true; do
  now=$(date -u +%s)
  next=$(date -u -d "today $at" +%s)
  if [ "$next" -le "$now" ]; then
    next=$(date -u -d "tomorrow $at" +%s)
  fi
  echo "hpo nightly: next run at $(date -u -d "@$next" +%Y-%m-%dT%H:%M:%SZ)"
  sleep $((next - now))
  # shellcheck disable=SC2086  # the arguments are meant to split
  python -m hpo $HPO_NIGHTLY_ARGS || echo "hpo nightly: the run exited with status $?"
done
