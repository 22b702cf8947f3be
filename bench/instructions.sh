#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: deterministic where CPU time is not,
# so two builds can be told apart on a noisy machine. Uses the configuration and upstream that
# bench/run.sh writes to bench/out (run that once first).
#
#   bench/instructions.sh [FLOODGATE_BIN [PATH [HEADER...]]]
#       FLOODGATE_BIN   default target/release/floodgate
#       PATH            default /; e.g. /p/rate/x, the rate-limited route of bench/out/floodgate.yaml
#       HEADER          sent with every request, e.g. "Origin: https://app.example.com"
#   KEEP_PROFILE=DIR    also copy callgrind's output files there, for callgrind_annotate
#   CONFIG=FILE         the gateway's configuration (default bench/out/floodgate.yaml); its plain
#                       listener must be 127.0.0.1:18081 and its upstream bench/out's (bench/routes.sh)
#
# floodgate runs with one worker under callgrind, counting nothing until a warm-up has passed; then
# `wrk -t1 -c8 -d10` loads it and only those ten seconds are counted.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/floodgate}
URL=http://127.0.0.1:18081${2:-/}
HEADERS=()
for h in "${@:3}"; do HEADERS+=(-H "$h"); done
OUT=bench/out
CONFIG=${CONFIG:-$OUT/floodgate.yaml}
[[ -f $CONFIG && -f $OUT/upstream/nginx.conf ]] || { echo "run bench/run.sh once first" >&2; exit 1; }
command -v valgrind >/dev/null || apt-get install -y -qq valgrind
CG=$(mktemp -d)
taskset -c 1 nginx -c "$PWD/$OUT/upstream/nginx.conf"
trap 'kill "$(cat "$PWD/$OUT/upstream/nginx.pid")" 2>/dev/null || true; rm -rf "$CG"' EXIT
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$CG/out" \
  "$BIN" run --config "$CONFIG" >"$CG/floodgate.log" 2>&1 &
VG=$!
sleep 8
wrk -t1 -c8 -d3 "${HEADERS[@]}" "$URL" >/dev/null
callgrind_control -i on "$VG" >/dev/null
wrk -t1 -c8 -d10 "${HEADERS[@]}" "$URL" >"$CG/wrk.txt"
callgrind_control -i off "$VG" >/dev/null
callgrind_control -d "$VG" >/dev/null
sleep 1
kill "$VG"; wait "$VG" 2>/dev/null || true
[[ -n ${KEEP_PROFILE:-} ]] && cp "$CG"/out* "$KEEP_PROFILE"/
requests=$(awk '/requests in/ {print $1}' "$CG/wrk.txt")
if grep -q "Non-2xx" "$CG/wrk.txt"; then echo "warning: $(grep Non-2xx "$CG/wrk.txt")" >&2; fi
instructions=0
# Each dump's `totals:` line is its instruction count (callgrind_annotate's PROGRAM TOTALS reads the
# `summary:` line, which a dump taken with callgrind_control leaves at 0).
for f in "$CG"/out*; do
  n=$(awk '/^totals:/ {print $2; exit}' "$f")
  instructions=$((instructions + ${n:-0}))
done
echo "requests $requests  instructions $instructions  per request $((instructions / requests))"
