#!/usr/bin/env bash
# `make demo`: the local stack, two workers, the API/dashboard, a replay of the seed week,
# then the leaderboard and the weekly report. Services keep running; `make demo-down` stops them.
set -euo pipefail
cd "$(dirname "$0")/../.."
TB=.venv/bin/tokenboard
RUN="${TOKENBOARD_RUN_DIR:-.run}"
export TOKENBOARD_RUN_DIR="$RUN"
mkdir -p "$RUN/pids" "$RUN/logs"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

stop_services() {
  for pidfile in "$RUN"/pids/worker-*.pid "$RUN"/pids/api.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = "down" ]; then
  stop_services
  $TB stack down
  exit 0
fi

step "local stack (Kafka 3.9 KRaft + Redis)"
$TB stack up
$TB topics create

step "stream workers (2 processes, one consumer group)"
stop_services
sleep 1
for i in 1 2; do
  TOKENBOARD_WORKER_WEB_PORT=$((6065 + i)) nohup $TB worker --loglevel warning \
    >"$RUN/logs/worker-$i.log" 2>&1 &
  echo $! >"$RUN/pids/worker-$i.pid"
  echo "worker $i: pid $!, health on http://127.0.0.1:$((6065 + i))/healthz, log $RUN/logs/worker-$i.log"
done
nohup $TB api >"$RUN/logs/api.log" 2>&1 &
echo $! >"$RUN/pids/api.pid"

step "waiting for the workers to join their consumer groups"
for i in 1 2; do
  for _ in $(seq 1 120); do
    if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "http://127.0.0.1:$((6065 + i))/readyz" >/dev/null 2>&1; then echo "worker $i ready"; break; fi
    sleep 0.5
  done
done

step "replaying the seed scenario (ISO weeks 2026-W41..W47, 76 models)"
$TB replay tests/data/seed-2026-w47.json --events 20 --timeout 180

step "leaderboard: top 10 models of 2026-W47"
$TB top --by model --week 2026-W47 -n 10 || true

step "leaderboard: countries of 2026-W47"
$TB top --by country --week 2026-W47 -n 10 || true

step "weekly report 2026-W47"
$TB report --week 2026-W47

step "top 10 straight from Redis"
echo "\$ redis-cli -p ${TOKENBOARD_REDIS_PORT:-6379} ZRANGE tb:lb:model:2026-W47 0 9 REV WITHSCORES"
if command -v redis-cli >/dev/null 2>&1; then
  redis-cli -p "${TOKENBOARD_REDIS_PORT:-6379}" ZRANGE tb:lb:model:2026-W47 0 9 REV WITHSCORES | paste - -
fi

printf '\nDashboard: http://127.0.0.1:%s/   (workers and API keep running; stop with: make demo-down)\n' \
  "${TOKENBOARD_API_PORT:-8080}"
