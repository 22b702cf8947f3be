#!/usr/bin/env bash
# What the size of the route table costs: instructions per request on a table of N routes against a
# table of one, how long applying a change to an N-route configuration takes, and the p99 of traffic
# while 100 such changes are applied. Uses bench/out's upstream and certificates (run bench/run.sh once
# first) and the release binary.
#
#   bench/routes.sh [FLOODGATE_BIN]      N=10000 by default (ROUTES=N to change)
#
# Then the same table in etcd (etcd-server and etcd-client needed), one route changed at a time
# through the admin API: the PUT round trip, and the p99 of traffic while 100 such changes apply.
#
# floodgate runs unpinned here, so a rebuild can use the core the worker is not on, as on a machine with
# cores to spare. The N routes mix the kinds a large deployment has: 40% prefixes (/svcI/*), 30% with a parameter
# (/api/vI/users/{id}), 20% exact paths (/exact/I) and 10% bound to a host (hI.example.com, /*). The
# measured requests go to /bench/x, a prefix route every table has.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/route_mix.sh
BIN=${1:-target/release/floodgate}
N=${ROUTES:-10000}
OUT=bench/out
[[ -f $OUT/upstream/nginx.conf ]] || { echo "run bench/run.sh once first" >&2; exit 1; }
command -v wrk >/dev/null || apt-get install -y -qq wrk
WORK=$(mktemp -d)
trap 'kill "$(cat "$PWD/$OUT/upstream/nginx.pid" 2>/dev/null)" 2>/dev/null || true; [[ -n ${FG:-} ]] && kill "$FG" 2>/dev/null; [[ -n ${ETCD:-} ]] && kill "$ETCD" 2>/dev/null; rm -rf "$WORK"' EXIT

# A configuration with the bench route and N more; $2 names the generation, so two differ by one route.
config() {
  local n=$1 mark=${2:-0}
  cat <<YAML
workers: 1
listeners: [{ name: plain, address: "127.0.0.1:18081" }]
admin: { address: "127.0.0.1:19181" }
upstreams: [{ id: origin, targets: [{ address: "127.0.0.1:18000" }] }]
routes:
  - { id: bench, paths: ["/bench/*"], upstream: origin }
  - { id: marked, paths: ["/marked-$mark/*"], upstream: origin }
YAML
  route_mix "$n"
}

# The p99 of 20 s of wrk on /bench/x, alone.
p99_quiet() {
  wrk -t1 -c16 -d20s --latency http://127.0.0.1:18081/bench/x | awk '/ 99%/ {print $2}'
}

# The same while "$@" runs once: sets p99, took (the command's seconds) and errors (wrk's).
p99_during() {
  wrk -t1 -c16 -d20s --latency http://127.0.0.1:18081/bench/x > "$WORK/wrk.txt" &
  local wrk=$! start
  start=$(date +%s.%N)
  "$@" >/dev/null
  took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  wait "$wrk"
  p99=$(awk '/ 99%/ {print $2}' "$WORK/wrk.txt")
  errors=$(awk '/Non-2xx|Socket errors/' "$WORK/wrk.txt")
}

# "$2: median M ms, max X ms, R refused" of curl's `STATUS SECONDS` lines in file $1.
timings() {
  local refused
  refused=$(awk '$1 != 200' "$1" | wc -l)
  awk '{ print $2 * 1000 }' "$1" | sort -n | awk -v refused="$refused" -v what="$2" '
    { t[NR] = $1 } END { printf "%s: median %.0f ms, max %.0f ms, %d refused\n", what, t[int((NR+1)/2)], t[NR], refused }'
}

config 0 > "$WORK/one.yaml"
config "$N" > "$WORK/many.yaml"
"$BIN" validate -c "$WORK/many.yaml" >/dev/null

echo "== instructions per request, /bench/x"
one=$(CONFIG="$WORK/one.yaml" bench/instructions.sh "$BIN" /bench/x 2>/dev/null | awk '{print $NF}')
many=$(CONFIG="$WORK/many.yaml" bench/instructions.sh "$BIN" /bench/x 2>/dev/null | awk '{print $NF}')
echo "1 route: $one   $N routes: $many   ratio: $(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.3f", a / b }')"

echo "== applying one changed route to a configuration of $N (POST /floodgate/admin/config)"
taskset -c 1 nginx -c "$PWD/$OUT/upstream/nginx.conf"
"$BIN" run --config "$WORK/many.yaml" >"$WORK/floodgate.log" 2>&1 &
FG=$!
for _ in $(seq 100); do curl -sf 127.0.0.1:19181/readyz >/dev/null && break; sleep 0.1; done
apply() {
  config "$N" "$1" > "$WORK/next.yaml"
  curl -s -o "$WORK/reply.json" -w '%{http_code} %{time_total}\n' -H 'content-type: application/yaml' \
    --data-binary @"$WORK/next.yaml" 127.0.0.1:19181/floodgate/admin/config
}
for i in $(seq 10); do apply "$i"; done > "$WORK/applies.txt"
timings "$WORK/applies.txt" "10 applies"

echo "== p99 of traffic (wrk -c16, 20 s) without and with 100 applies"
quiet=$(p99_quiet)
apply_100() { for i in $(seq 100 199); do apply "$i"; done; }
p99_during apply_100
echo "p99 without applies: $quiet   with 100 applies (in ${took}s): $p99   ${errors:-no errors}"
kill "$FG"; wait "$FG" 2>/dev/null || true; FG=

# The same table in etcd, and one route changed at a time through the admin API: the change is
# checked, written to etcd, watched and applied, and the answer comes once it is in service here.
echo "== one route changed through the admin API, configuration in etcd ($N routes)"
command -v etcd >/dev/null || apt-get install -y -qq etcd-server etcd-client
etcd --name bench --data-dir "$WORK/etcd" \
  --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
  --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
  --initial-cluster bench=http://127.0.0.1:12380 > "$WORK/etcd.log" 2>&1 &
ETCD=$!
until etcdctl --endpoints http://127.0.0.1:12379 endpoint health >/dev/null 2>&1; do sleep 0.2; done
{
  echo '/floodgate/upstreams/origin {"targets":[{"address":"127.0.0.1:18000"}]}'
  echo '/floodgate/routes/bench {"paths":["/bench/*"],"upstream":"origin"}'
  route_mix "$N" "" etcd
} > "$WORK/keys.txt"
# 64 writers at once: etcd commits concurrent writes with one fsync.
split -n l/64 "$WORK/keys.txt" "$WORK/keys."
for part in "$WORK"/keys.??; do
  (while read -r key value; do etcdctl --endpoints http://127.0.0.1:12379 put "$key" "$value" >/dev/null; done < "$part") &
done
wait $(jobs -p | grep -vx "$ETCD")
cat > "$WORK/etcd.yaml" <<YAML
workers: 1
listeners: [{ name: plain, address: "127.0.0.1:18081" }]
admin: { address: "127.0.0.1:19181" }
config_source: { type: etcd, etcd: { endpoints: ["http://127.0.0.1:12379"], copy_file: "$WORK/copy.json", timeout: 10s } }
YAML
"$BIN" run --config "$WORK/etcd.yaml" >"$WORK/floodgate-etcd.log" 2>&1 &
FG=$!
for _ in $(seq 300); do curl -sf 127.0.0.1:19181/readyz >/dev/null && break; sleep 0.1; done
put_route() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X PUT 127.0.0.1:19181/floodgate/admin/routes/marked \
    -d "{\"paths\": [\"/marked-$1/*\"], \"upstream\": \"origin\"}"
}
put_route 0 >/dev/null
for i in $(seq 10); do put_route "$i"; done > "$WORK/puts.txt"
timings "$WORK/puts.txt" "10 PUTs (check, etcd commit, watch, apply)"
grep -o 'configuration applied version=[0-9]*' "$WORK/floodgate-etcd.log" | tail -1
quiet=$(p99_quiet)
put_100() { for i in $(seq 100 199); do put_route "$i"; done; }
p99_during put_100
echo "p99 without changes: $quiet   with 100 route PUTs (in ${took}s): $p99   ${errors:-no errors}"
# The control: the same 100 PUTs, of the route as it already is. Each is checked, committed to etcd and
# watched as a change is, but leaves the configuration as it was, so nothing is applied: what the p99
# rises by here is what the writes and their processes cost this machine, not applying them.
put_same() {
  curl -s -o /dev/null -w '%{http_code}\n' -X PUT 127.0.0.1:19181/floodgate/admin/routes/marked \
    -d '{"paths": ["/marked-same/*"], "upstream": "origin"}'
}
put_same >/dev/null
put_same_100() { for _ in $(seq 100); do put_same; done; }
p99_during put_same_100
echo "control, 100 PUTs of the route unchanged (in ${took}s, nothing applied): p99 $p99   ${errors:-no errors}"
