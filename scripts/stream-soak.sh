#!/usr/bin/env bash
# Stream-mode soak run (not part of CI): readbot in Stream mode against the
# fake gateway; @mentions pushed for SECONDS (default 1800 = 30 minutes) while
# the gateway randomly sends disconnect frames, drops and stalls connections,
# and pings. Prints connections opened, messages pushed and answered, file
# descriptors and tasks at start and end; fails on a double answer, on
# unexplained losses, or on descriptors/tasks that kept growing.
#
#   scripts/stream-soak.sh            # 30 minutes
#   scripts/stream-soak.sh 60         # one minute
#   READBOT_SOAK_PUSHES_PER_SEC=10 scripts/stream-soak.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
export READBOT_SOAK_SECS="${1:-${READBOT_SOAK_SECS:-1800}}"
profile=()
if [ "${READBOT_SOAK_RELEASE:-0}" = "1" ]; then profile=(--release); fi
exec cargo test --locked "${profile[@]}" --test api -- --ignored --exact stream::soak --nocapture
