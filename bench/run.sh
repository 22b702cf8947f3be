#!/usr/bin/env bash
# Side-by-side benchmark of floodgate and nginx as HTTP reverse proxies on one machine.
#
# The figure that matters is the proxy's CPU time per proxied request (DESIGN.md §5): it stays
# stable on a noisy machine and it is what a fleet pays for. Throughput and latency come with it.
#
# Layout (2 cores assumed):
#   core 0: the proxy under test (floodgate or nginx, 1 worker each)
#   core 1: the shared upstream (a second nginx answering "hello\n") and the load generator
# Both proxies run all the time; only one is loaded at a time, alternating each round so that
# drift on the machine (thermal, noisy neighbours) hits both equally.
#
# Usage: bench/run.sh [--quick]       see bench/README.md for the environment variables.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/route_mix.sh
source "$SCRIPT_DIR/route_mix.sh"

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if (( QUICK )); then
  ROUNDS=1 DURATION=3 TLS_ROUNDS=1 WARMUP=1 SKIP_MEMORY=1
fi
ROUNDS=${ROUNDS:-5}            # rounds of the main HTTP/1.1 comparison
DURATION=${DURATION:-10}       # seconds per measured load run
TLS_ROUNDS=${TLS_ROUNDS:-3}    # rounds of each secondary section (h2c, TLS h1, TLS h2)
WARMUP=${WARMUP:-2}            # seconds of unmeasured load before each measured run
CONNS=${CONNS:-64}             # client connections
H2_STREAMS=${H2_STREAMS:-10}   # concurrent streams per h2 connection (h2load -m)
IDLE_CONNS=${IDLE_CONNS:-10000}
SKIP_MEMORY=${SKIP_MEMORY:-0}
BENCH_ONLY=${BENCH_ONLY:-both} # both | nginx | floodgate
SECTIONS=${SECTIONS:-"h1 h1-resilient h2c h1-tls h2-tls policy-hs256 policy-rs256"}  # which load sections to run
POLICY_ROUNDS=${POLICY_ROUNDS:-3}  # rounds of each policy section
EXTRA_ROUTES=${EXTRA_ROUTES:-0}    # routes added to floodgate's table (bench/routes.sh's mix): its size's cost
# Floodgate-only sections, one plugin each, for each plugin's own cost (A/B against h1):
#   SECTIONS="h1 plugin-jwt-hs256 plugin-jwt-rs256 plugin-rate plugin-cors" BENCH_ONLY=floodgate

# Whether the load section named $1 is in SECTIONS.
section_enabled() { [[ " $SECTIONS " == *" $1 "* ]]; }
OUT=${OUT:-$SCRIPT_DIR/out}    # generated configs, certs, logs, raw tool output (gitignored)

PROXY_CORE=0
LOAD_CORE=1

# Ports. floodgate and nginx each get their own, so both can stay up for the whole run.
UPSTREAM_PORT=18000
NGINX_H1_PORT=18080   NGINX_H2C_PORT=18082   NGINX_TLS_PORT=18444
FG_PLAIN_PORT=18081   FG_TLS_PORT=18443      FG_ADMIN_PORT=19181   # floodgate: h1 + h2c on one port

# Targets from the performance budget, printed next to the memory results.
TARGET_IDLE_MIB=100
TARGET_DOWNLOAD_MIB=32

case "$BENCH_ONLY" in
  both) PROXIES=(floodgate nginx) ;;
  nginx|floodgate) PROXIES=("$BENCH_ONLY") ;;
  *) echo "BENCH_ONLY must be both, nginx or floodgate" >&2; exit 2 ;;
esac

RESULTS=$OUT/results.tsv
RAW=$OUT/raw
CLK_TCK=$(getconf CLK_TCK)
declare -A PID=()       # name -> pid of every long-running process we started
declare -a EXTRA_PIDS=() # short-lived helpers (curl, idle_conns.py) to reap on exit

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
proxy_enabled() { [[ " ${PROXIES[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
  local -a missing=()
  have nginx || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  have wrk || missing+=(wrk)
  have h2load || missing+=(nghttp2-client)
  have curl || missing+=(curl)
  have taskset || missing+=(util-linux)
  have openssl || missing+=(openssl)
  have python3 || missing+=(python3)
  have fallocate || have truncate || missing+=(coreutils)
  if (( ${#missing[@]} )); then
    (( EUID == 0 )) || die "missing packages (${missing[*]}) and not root; install them first"
    log "installing ${missing[*]}"
    # Only update the package lists when something is actually missing. Debian starts services
    # on install unless policy-rc.d says no; RUNLEVEL=1 keeps a packaged nginx from grabbing :80.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  PATH=$PATH:/usr/sbin:/sbin
  nginx -V 2>&1 | grep -q http_v2_module || die "this nginx lacks http_v2_module"
}

build_floodgate() {
  if [[ -n ${FLOODGATE_BIN:-} ]]; then
    [[ -x $FLOODGATE_BIN ]] || die "FLOODGATE_BIN=$FLOODGATE_BIN is not executable"
    return
  fi
  log "building floodgate (cargo build --release -p floodgate)"
  (cd "$REPO_ROOT" && cargo build --release -p floodgate) >&2
  FLOODGATE_BIN=$REPO_ROOT/target/release/floodgate
  [[ -x $FLOODGATE_BIN ]] || die "no binary at $FLOODGATE_BIN after the build"
}

# Raise the open-file limit for everything started from here (10k idle connections need 10k fds
# in the client and in the proxy). Containers often cap the hard limit below 65536; take what we get.
raise_nofile() {
  local hard
  ulimit -n 65536 2>/dev/null || { hard=$(ulimit -Hn); [[ $hard == unlimited ]] && hard=65536; ulimit -n "$hard"; }
  NOFILE=$(ulimit -n)
  if (( NOFILE < IDLE_CONNS + 256 )); then
    log "open-file limit is $NOFILE; lowering IDLE_CONNS from $IDLE_CONNS to $((NOFILE - 256))"
    IDLE_CONNS=$((NOFILE - 256))
  fi
}

# ---------------------------------------------------------------------------------------------
# Generated files
# ---------------------------------------------------------------------------------------------
make_cert() {
  [[ -s $OUT/cert.pem && -s $OUT/key.pem ]] && return
  # P-256 keeps the handshake cheap and is what both stacks support well.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
}

make_big_file() {
  # Sparse is fine: nginx sends the zeros from the page cache; we measure the proxy, not the disk.
  [[ $(stat -c %s "$OUT/big.bin" 2>/dev/null || echo 0) == 1073741824 ]] && return
  rm -f "$OUT/big.bin"
  truncate -s 1G "$OUT/big.bin" 2>/dev/null || fallocate -l 1G "$OUT/big.bin"
}

# A JWT's three parts, base64url without padding.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# The policy sections' keys and tokens: an HMAC secret and an RSA key pair, and one long-lived token
# for each (the same token on every request, as a client with a session does).
make_policy_keys() {
  [[ -s $OUT/jwt-rsa.pem ]] || openssl genrsa -out "$OUT/jwt-rsa.pem" 2048 2>/dev/null
  openssl rsa -in "$OUT/jwt-rsa.pem" -pubout -out "$OUT/jwt-rsa.pub.pem" 2>/dev/null
  JWT_SECRET=bench-secret-0123456789abcdef0123456789
  local payload input
  payload=$(printf '{"sub":"bench","exp":%d}' $(( $(date +%s) + 86400 * 365 )) | b64url)
  input="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$payload"
  HS256_TOKEN="$input.$(printf '%s' "$input" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)"
  input="$(printf '{"alg":"RS256","typ":"JWT"}' | b64url).$payload"
  RS256_TOKEN="$input.$(printf '%s' "$input" | openssl dgst -sha256 -sign "$OUT/jwt-rsa.pem" -binary | b64url)"
  # For bench/instructions.sh on the same routes.
  printf '%s\n' "$HS256_TOKEN" >"$OUT/hs256.token"
  printf '%s\n' "$RS256_TOKEN" >"$OUT/rs256.token"
}

# Lines every nginx instance here needs: its own pid file, logs and temp dirs inside $OUT, so
# nothing touches /var/lib/nginx or /var/log/nginx and the system nginx (if any) is unaffected.
nginx_common() {
  local dir=$1
  # Workers run as the invoking user so they can read $OUT (nginx as root would drop to nobody).
  if (( EUID == 0 )); then echo "user root root;"; fi
  cat <<EOF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $((NOFILE - 64)); }
EOF
}
nginx_http_common() {
  local dir=$1
  cat <<EOF
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  # The default (1000) would close every client connection after 1000 requests and make the
  # load generator reconnect; floodgate has no such limit, so lift it for a like-for-like run.
  keepalive_requests 1000000;
  keepalive_timeout 300s;
EOF
}

write_configs() {
  local d
  for d in upstream nginx; do mkdir -p "$OUT/$d/tmp"; done

  # The shared upstream: a tiny fixed answer, plus /big for the streaming-memory test.
  { nginx_common "$OUT/upstream"; cat <<EOF
http {
$(nginx_http_common "$OUT/upstream")
  sendfile on;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location = /big { alias $OUT/big.bin; default_type application/octet-stream; }
    location / { default_type text/plain; return 200 "hello\n"; }
  }
}
EOF
  } > "$OUT/upstream/nginx.conf"

  # nginx as the proxy, set up the way a careful operator would: upstream keep-alive, HTTP/1.1
  # to the upstream, no access log (floodgate logs nothing per request by default either).
  { nginx_common "$OUT/nginx"; cat <<EOF
http {
$(nginx_http_common "$OUT/nginx")
  upstream origin {
    server 127.0.0.1:$UPSTREAM_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_H1_PORT;
    listen 127.0.0.1:$NGINX_H2C_PORT http2;       # h2c with prior knowledge (no TLS)
    listen 127.0.0.1:$NGINX_TLS_PORT ssl http2;   # h2 and http/1.1 via ALPN
    ssl_certificate $OUT/cert.pem;
    ssl_certificate_key $OUT/key.pem;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream large bodies straight through instead of spooling them to a temp file, which is
      # what floodgate does; keeps the 1 GiB download comparable and off the disk.
      proxy_max_temp_file_size 0;
    }
  }
}
EOF
  } > "$OUT/nginx/nginx.conf"

  cat > "$OUT/floodgate.yaml" <<EOF
workers: 1
listeners:
  - { name: plain, address: "127.0.0.1:$FG_PLAIN_PORT" }
  - name: tls
    address: "127.0.0.1:$FG_TLS_PORT"
    tls: { certificates: [{ cert: $OUT/cert.pem, key: $OUT/key.pem }] }
admin: { address: "127.0.0.1:$FG_ADMIN_PORT" }
upstreams:
  - id: origin
    targets: [{ address: "127.0.0.1:$UPSTREAM_PORT" }]
  # The resilience features, one upstream each and then all together, for bench/instructions.sh
  # (/r/active/x, /r/passive/x, /r/breaker/x, /r/ewma/x, /r/all/x, against /r/none/x on the same
  # kind of route without them): what each costs per request.
  - id: active
    targets: [{ address: "127.0.0.1:$UPSTREAM_PORT" }]
    health_checks: { active: { type: http, path: /, interval: 5s } }
  - id: passive
    targets: [{ address: "127.0.0.1:$UPSTREAM_PORT" }]
    health_checks: { passive: { consecutive_5xx: 5, consecutive_gateway_errors: 5 } }
  - id: breaker
    targets: [{ address: "127.0.0.1:$UPSTREAM_PORT" }]
    circuit_breaker:
      max_connections: 100000
      max_requests: 100000
      failure_ratio: { threshold: 0.5, minimum_requests: 100, window: 10s, open_time: 5s }
  - id: ewma
    balancer: ewma
    targets: [{ address: "127.0.0.1:$UPSTREAM_PORT" }]
  - id: resilient
    balancer: ewma
    targets: [{ address: "127.0.0.1:$UPSTREAM_PORT" }]
    health_checks:
      active: { type: http, path: /, interval: 5s }
      passive: { consecutive_5xx: 5, consecutive_gateway_errors: 5 }
    circuit_breaker:
      max_connections: 100000
      max_requests: 100000
      failure_ratio: { threshold: 0.5, minimum_requests: 100, window: 10s, open_time: 5s }
routes:
  - { id: all, paths: ["/*"], upstream: origin }
  - { id: r-none, paths: ["/r/none/*"], upstream: origin }
  - { id: r-active, paths: ["/r/active/*"], upstream: active }
  - { id: r-passive, paths: ["/r/passive/*"], upstream: passive }
  - { id: r-breaker, paths: ["/r/breaker/*"], upstream: breaker }
  - { id: r-ewma, paths: ["/r/ewma/*"], upstream: ewma }
  - id: r-all
    paths: ["/r/all/*"]
    upstream: resilient
    retries: { attempts: 2, retry_on: [connect_failure, refused_stream] }
  # The policy sections: one plugin each, then the API-gateway set (JWT, a rate limit never reached,
  # CORS; metrics are always on).
  - id: jwt-hs256
    paths: ["/p/jwt-hs256/*"]
    upstream: origin
    plugins: { jwt-auth: { algorithms: [HS256], secret: "$JWT_SECRET" } }
  - id: jwt-rs256
    paths: ["/p/jwt-rs256/*"]
    upstream: origin
    plugins: { jwt-auth: { algorithms: [RS256], public_key_file: "$OUT/jwt-rsa.pub.pem" } }
  - id: rate
    paths: ["/p/rate/*"]
    upstream: origin
    plugins: { rate-limit: { algorithm: token_bucket, rate: 100000000, burst: 100000000, key: client_ip } }
  - id: cors
    paths: ["/p/cors/*"]
    upstream: origin
    plugins: { cors: { allow_origins: ["https://app.example.com"] } }
  - id: policy-hs256
    paths: ["/p/hs256/*"]
    upstream: origin
    plugins:
      jwt-auth: { algorithms: [HS256], secret: "$JWT_SECRET" }
      rate-limit: { algorithm: token_bucket, rate: 100000000, burst: 100000000, key: client_ip }
      cors: { allow_origins: ["https://app.example.com"] }
  - id: policy-rs256
    paths: ["/p/rs256/*"]
    upstream: origin
    plugins:
      jwt-auth: { algorithms: [RS256], public_key_file: "$OUT/jwt-rsa.pub.pem" }
      rate-limit: { algorithm: token_bucket, rate: 100000000, burst: 100000000, key: client_ip }
      cors: { allow_origins: ["https://app.example.com"] }
EOF
  # A large table, the mix bench/routes.sh measures too (route_mix.sh).
  route_mix "$EXTRA_ROUTES" x- >> "$OUT/floodgate.yaml"
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
port_in_use() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" ; }

# Wait until URL answers 200 with the upstream's body, i.e. the whole path works.
wait_ready() {
  local name=$1 url=$2 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "${PID[$name]}" 2>/dev/null || { show_log "$name"; die "$name exited during startup"; }
    [[ $(curl -sk --max-time 1 "$url" 2>/dev/null) == hello ]] && return 0
    sleep 0.1
  done
  show_log "$name"; die "$name not ready at $url after 10s"
}

show_log() {
  local f
  case $1 in upstream|nginx) f=$OUT/$1/error.log ;; floodgate) f=$OUT/floodgate.log ;; esac
  [[ -f $f ]] && { log "last lines of $f:"; tail -n 20 "$f" >&2; }
  return 0
}

start() {
  local name=$1
  case $name in
    upstream)
      # -e: nginx opens its compiled-in error log before reading the config; keep it in $OUT too.
      taskset -c "$LOAD_CORE" nginx -p "$OUT/upstream" -e "$OUT/upstream/error.log" \
        -c "$OUT/upstream/nginx.conf" -g 'daemon off;' &
      PID[$name]=$!
      wait_ready upstream "http://127.0.0.1:$UPSTREAM_PORT/" ;;
    nginx)
      taskset -c "$PROXY_CORE" nginx -p "$OUT/nginx" -e "$OUT/nginx/error.log" \
        -c "$OUT/nginx/nginx.conf" -g 'daemon off;' &
      PID[$name]=$!
      wait_ready nginx "http://127.0.0.1:$NGINX_H1_PORT/" ;;
    floodgate)
      taskset -c "$PROXY_CORE" "$FLOODGATE_BIN" run --config "$OUT/floodgate.yaml" \
        >>"$OUT/floodgate.log" 2>&1 &
      PID[$name]=$!
      wait_ready floodgate "http://127.0.0.1:$FG_PLAIN_PORT/" ;;
  esac
}

stop() {
  local name=$1 pid=${PID[$1]:-} i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}

restart() { stop "$1"; start "$1"; }

cleanup() {
  local rc=$? name pid
  trap - EXIT INT TERM
  for pid in "${EXTRA_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for name in "${!PID[@]}"; do stop "$name"; done
  exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Measurements from /proc
# ---------------------------------------------------------------------------------------------
# A process and its children (nginx: master + worker; floodgate: one process, all threads).
proc_tree() {
  local pid=$1
  echo "$pid"
  cat /proc/"$pid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true
}

# "utime stime" in clock ticks, summed over the tree. Fields 14 and 15 of /proc/PID/stat; the
# command name (field 2) may contain spaces, so split after its closing parenthesis.
cpu_ticks() {
  local p stat rest u=0 s=0
  local -a f
  for p in $(proc_tree "$1"); do
    stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    rest=${stat##*) }
    read -r -a f <<<"$rest"   # f[0] is field 3
    u=$((u + f[11])) s=$((s + f[12]))
  done
  echo "$u $s"
}

# Sum of a /proc/PID/status field (VmRSS, VmHWM) over the tree, in KiB.
mem_kib() {
  local p total=0 v
  for p in $(proc_tree "$1"); do
    v=$(awk -v k="$2:" '$1 == k { print $2 }' /proc/"$p"/status 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# ---------------------------------------------------------------------------------------------
# Load runs
# ---------------------------------------------------------------------------------------------
url_for() {
  local proxy=$1 section=$2
  if [[ $proxy == floodgate ]]; then
    case $section in
      h1|h2c) echo "http://127.0.0.1:$FG_PLAIN_PORT/" ;;
      # The plain route again, with active and passive health checks, the breaker, ewma and retries.
      h1-resilient) echo "http://127.0.0.1:$FG_PLAIN_PORT/r/all/x" ;;
      h1-tls|h2-tls) echo "https://127.0.0.1:$FG_TLS_PORT/" ;;
      policy-*) echo "http://127.0.0.1:$FG_PLAIN_PORT/p/${section#policy-}/x" ;;
      plugin-*) echo "http://127.0.0.1:$FG_PLAIN_PORT/p/${section#plugin-}/x" ;;
    esac
  else
    case $section in
      # nginx's side of a policy section is its plain proxying: the yardstick of the policy target.
      h1|h1-resilient|policy-*|plugin-*) echo "http://127.0.0.1:$NGINX_H1_PORT/" ;;
      h2c) echo "http://127.0.0.1:$NGINX_H2C_PORT/" ;;
      h1-tls|h2-tls) echo "https://127.0.0.1:$NGINX_TLS_PORT/" ;;
    esac
  fi
}

tool_for() { case $1 in h1|h1-resilient|h1-tls|policy-*|plugin-*) echo wrk ;; *) echo h2load ;; esac; }

# The request headers of a section: a policy request carries its token and an Origin (nginx gets
# the same bytes and ignores them).
headers_for() {
  case $1 in
    *hs256*) printf '%s\n' "Authorization: Bearer $HS256_TOKEN" "Origin: https://app.example.com" ;;
    *rs256*) printf '%s\n' "Authorization: Bearer $RS256_TOKEN" "Origin: https://app.example.com" ;;
    plugin-cors) printf '%s\n' "Origin: https://app.example.com" ;;
  esac
}

# Run the load tool on the load core for SECONDS; `timeout` bounds it even if it hangs.
load() {
  local tool=$1 url=$2 secs=$3 section=${4:-} line
  local -a extra=()
  while IFS= read -r line; do [[ -n $line ]] && extra+=(-H "$line"); done < <(headers_for "$section")
  if [[ $tool == wrk ]]; then
    timeout $((secs + 30)) taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${secs}s" --latency "${extra[@]}" "$url"
  else
    # http:// means h2c with prior knowledge; https:// negotiates h2 through ALPN.
    timeout $((secs + 30)) taskset -c "$LOAD_CORE" h2load -t1 -c"$CONNS" -m"$H2_STREAMS" -D "$secs" "$url"
  fi
}

# Print "rps p50_ms p99_ms requests errors" from wrk --latency output.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000;  if (v ~ /s$/) return v * 1000; return v + 0 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { errs += $NF }
    /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errs += $i }
    END { printf "%s %s %s %s %d\n", rps ? rps : 0, p50 ? p50 : "nan", p99 ? p99 : "nan", reqs ? reqs : 0, errs }'
}

# Print "rps mean_ms - succeeded errors protocol" from h2load output (it has no percentiles).
parse_h2load() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
      if (v ~ /s$/) return v * 1000; return v + 0 }
    /^finished in/ { rps = $4 }
    /^requests:/ { ok = $8; failed = $10 + $12 + $14 }
    /^status codes:/ { bad = $7 + $9 }   # 4xx + 5xx; h2load may or may not count them as failed
    END { errs = (failed > bad) ? failed : bad }
    /^time for request:/ { mean = ms($6) }
    /^Application protocol:/ { proto = $3 }
    END { printf "%s %s nan %s %d %s\n", rps ? rps : 0, mean ? mean : "nan", ok ? ok : 0, errs, proto ? proto : "none" }'
}

# One measured run: warm up, then load for DURATION while reading the proxy's CPU time before
# and after. Appends a row to $RESULTS and prints it.
measure() {
  local section=$1 proxy=$2 round=$3
  local tool url pid raw u0 s0 u1 s1 rps p50 p99 reqs errs proto=""
  tool=$(tool_for "$section") url=$(url_for "$proxy" "$section") pid=${PID[$proxy]}
  raw=$RAW/$section-$proxy-$round.txt

  load "$tool" "$url" "$WARMUP" "$section" >/dev/null 2>&1 || true
  read -r u0 s0 < <(cpu_ticks "$pid")
  load "$tool" "$url" "$DURATION" "$section" >"$raw" 2>&1 || log "$tool exited non-zero, see $raw"
  read -r u1 s1 < <(cpu_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || { show_log "$proxy"; die "$proxy died during $section round $round"; }

  if [[ $tool == wrk ]]; then
    read -r rps p50 p99 reqs errs < <(parse_wrk <"$raw")
  else
    read -r rps p50 p99 reqs errs proto < <(parse_h2load <"$raw")
    [[ $proto == h2* ]] || log "warning: $proxy $section negotiated '$proto', not h2 (see $raw)"
  fi
  (( reqs > 0 )) || log "warning: no successful requests in $raw"
  # ticks -> microseconds per request, total and split into user and kernel time.
  awk -v sec="$section" -v px="$proxy" -v r="$round" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
      -v n="$reqs" -v e="$errs" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v hz="$CLK_TCK" 'BEGIN {
    k = (n > 0) ? 1e6 / hz / n : 0
    printf "%s\t%s\t%d\t%.0f\t%s\t%s\t%.2f\t%.2f\t%.2f\t%d\t%d\n",
      sec, px, r, rps, p50, p99, (du + ds) * k, du * k, ds * k, n, e }' | tee -a "$RESULTS" | print_rows
}

# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------
# results.tsv columns: section proxy round rps p50 p99 cpu_us usr_us sys_us requests errors
header() {
  printf '%-10s %5s %10s %9s %9s %11s %8s %8s %10s %7s\n' \
    proxy round "req/s" "$1" "p99 ms" "cpu us/req" "usr us" "sys us" requests errors
}
print_rows() {
  awk -F'\t' '{ printf "%-10s %5s %10.0f %9s %9s %11.2f %8.2f %8.2f %10d %7d\n",
    $2, $3, $4, fmt($5), fmt($6), $7, $8, $9, $10, $11 }
    function fmt(v) { return v == "nan" ? "-" : sprintf("%.3f", v) }'
}

median() {
  awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p && $c != "nan" { print $c }' "$RESULTS" |
    sort -g | awk '{ a[NR] = $1 } END {
      if (NR == 0) { print "nan"; exit }
      print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# The median over the rounds of `section` ($1) of floodgate's CPU per request over nginx's in the same
# round. The two runs of a round are next to each other in time, so the machine's drift over a section
# (other tenants of the host) cancels out of each pair, where it does not out of two medians.
paired_ratio() {
  awk -F'\t' -v s="$1" '$1 == s && $3 != "median" && $7 > 0 { v[$2 SUBSEP $3] = $7; round[$3] = 1 }
    END {
      n = 0
      for (r in round) if ((("floodgate" SUBSEP r) in v) && (("nginx" SUBSEP r) in v)) q[++n] = v["floodgate" SUBSEP r] / v["nginx" SUBSEP r]
      if (n == 0) { print "-"; exit }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
      printf "%.2f\n", (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
    }' "$RESULTS"
}

# a/b, or "-" when either side is missing or zero (a proxy that served nothing has no ratio).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "nan" || b == "nan" || a == 0 || b == 0) ? "-" : sprintf("%.2f", a / b) }'; }

summarize() {
  local section=$1 proxy
  declare -A rps p50 p99 cpu usr sys
  echo "-- medians"
  for proxy in "${PROXIES[@]}"; do
    rps[$proxy]=$(median "$section" "$proxy" 4) p50[$proxy]=$(median "$section" "$proxy" 5)
    p99[$proxy]=$(median "$section" "$proxy" 6) cpu[$proxy]=$(median "$section" "$proxy" 7)
    usr[$proxy]=$(median "$section" "$proxy" 8) sys[$proxy]=$(median "$section" "$proxy" 9)
    printf '%s\t%s\tmedian\t%s\t%s\t%s\t%s\t%s\t%s\t0\t0\n' "$section" "$proxy" "${rps[$proxy]}" \
      "${p50[$proxy]}" "${p99[$proxy]}" "${cpu[$proxy]}" "${usr[$proxy]}" "${sys[$proxy]}" | print_rows
  done
  if (( ${#PROXIES[@]} == 2 )); then
    printf -- '-- floodgate/nginx: cpu/req %s (usr %s, sys %s)   req/s %s' \
      "$(ratio "${cpu[floodgate]}" "${cpu[nginx]}")" "$(ratio "${usr[floodgate]}" "${usr[nginx]}")" \
      "$(ratio "${sys[floodgate]}" "${sys[nginx]}")" "$(ratio "${rps[floodgate]}" "${rps[nginx]}")"
    printf '   paired cpu/req %s' "$(paired_ratio "$section")"
    if [[ $(tool_for "$section") == wrk ]]; then
      printf '   p99 %s' "$(ratio "${p99[floodgate]}" "${p99[nginx]}")"
    else
      printf '   mean latency %s' "$(ratio "${p50[floodgate]}" "${p50[nginx]}")"
    fi
    printf '\n'
  fi
}

run_section() {
  local section=$1 rounds=$2 title=$3 r proxy order latcol
  latcol="p50 ms"; [[ $(tool_for "$section") == h2load ]] && latcol="mean ms"
  echo
  echo "== $section: $title, $rounds round(s) of ${DURATION}s =="
  header "$latcol"
  for ((r = 1; r <= rounds; r++)); do
    # Alternate who goes first so a slow drift of the machine does not favour either proxy.
    order=("${PROXIES[@]}")
    if (( r % 2 == 0 && ${#PROXIES[@]} == 2 )); then order=("${PROXIES[1]}" "${PROXIES[0]}"); fi
    for proxy in "${order[@]}"; do measure "$section" "$proxy" "$r"; done
  done
  summarize "$section"
}

# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "ok" : "OVER" }'; }

plain_port() { [[ $1 == floodgate ]] && echo "$FG_PLAIN_PORT" || echo "$NGINX_H1_PORT"; }

# RSS of a freshly started proxy, then with IDLE_CONNS idle keep-alive connections open.
mem_idle() {
  local proxy=$1 pid rss0 rss1 out hpid line i delta opened failed secs open
  restart "$proxy"; pid=${PID[$proxy]}
  sleep 1
  rss0=$(mem_kib "$pid" VmRSS)
  out=$OUT/idle-$proxy.txt; : >"$out"
  timeout 300 taskset -c "$LOAD_CORE" python3 "$SCRIPT_DIR/idle_conns.py" \
    --port "$(plain_port "$proxy")" --count "$IDLE_CONNS" --hold 10 >"$out" 2>&1 &
  hpid=$!; EXTRA_PIDS+=("$hpid")
  for ((i = 0; i < 2400; i++)); do grep -qs '^ready' "$out" && break; kill -0 "$hpid" 2>/dev/null || break; sleep 0.1; done
  line=$(grep '^ready' "$out" || true)
  [[ -n $line ]] || { cat "$out" >&2; die "idle connection helper failed against $proxy"; }
  read -r _ opened failed secs <<<"$line"
  # Measured once the connections are idle, not while they are still being answered: floodgate frees a
  # connection's buffers when it goes idle, and its allocator hands freed pages back about 1 s later.
  sleep 5
  rss1=$(mem_kib "$pid" VmRSS)
  wait "$hpid" || true
  open=$(awk '/^open/ { print $2 }' "$out")
  delta=$((rss1 - rss0))
  printf '%-10s idle %7s MiB   with %d conns %7s MiB   delta %7s MiB (%s KiB/conn)   target < %d MiB: %s   [opened %d in %ss, failed %d, still open after hold %s]\n' \
    "$proxy" "$(mib "$rss0")" "$opened" "$(mib "$rss1")" "$(mib "$delta")" \
    "$(awk -v d="$delta" -v n="$opened" 'BEGIN { printf "%.1f", n ? d / n : 0 }')" \
    "$TARGET_IDLE_MIB" "$(verdict "$(mib "$delta")" "$TARGET_IDLE_MIB")" "$opened" "$secs" "$failed" "${open:-?}"
}

# Peak RSS growth while a 1 GiB response streams through the proxy to a client.
mem_download() {
  local proxy=$1 pid rss0 peak r hwm cpid out p code size speed delta
  restart "$proxy"; pid=${PID[$proxy]}
  sleep 1
  # Reset VmHWM to the current RSS ("5" in clear_refs), so a transient peak during startup
  # is not charged to the download. Best effort: older kernels lack it.
  for p in $(proc_tree "$pid"); do echo 5 2>/dev/null >"/proc/$p/clear_refs" || true; done
  rss0=$(mem_kib "$pid" VmRSS) peak=$rss0
  out=$OUT/download-$proxy.txt
  taskset -c "$LOAD_CORE" curl -sS -o /dev/null --max-time 300 \
    -w '%{http_code} %{size_download} %{speed_download}\n' "http://127.0.0.1:$(plain_port "$proxy")/big" >"$out" 2>&1 &
  cpid=$!; EXTRA_PIDS+=("$cpid")
  # Sample VmRSS as a cross-check; VmHWM (peak RSS of a fresh process) is the real figure.
  while kill -0 "$cpid" 2>/dev/null; do
    r=$(mem_kib "$pid" VmRSS); (( r > peak )) && peak=$r
    sleep 0.05
  done
  wait "$cpid" || true
  hwm=$(mem_kib "$pid" VmHWM); (( hwm > peak )) && peak=$hwm
  read -r code size speed <"$out" || true
  [[ ${code:-} == 200 && ${size:-} == 1073741824 ]] || log "warning: $proxy download: $(cat "$out")"
  delta=$((peak - rss0))
  printf '%-10s before %7s MiB   peak %7s MiB   delta %7s MiB   target < %d MiB: %s   [status %s, %s bytes, %s MiB/s]\n' \
    "$proxy" "$(mib "$rss0")" "$(mib "$peak")" "$(mib "$delta")" "$TARGET_DOWNLOAD_MIB" \
    "$(verdict "$(mib "$delta")" "$TARGET_DOWNLOAD_MIB")" "${code:-?}" "${size:-?}" \
    "$(awk -v s="${speed:-0}" 'BEGIN { printf "%.0f", s / 1048576 }')"
}

# ---------------------------------------------------------------------------------------------
main() {
  mkdir -p "$OUT" "$RAW"
  : >"$RESULTS"
  # Everything printed goes to the terminal and to $OUT/report.txt.
  exec > >(tee "$OUT/report.txt") 2>&1
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  ensure_tools
  if proxy_enabled floodgate; then build_floodgate; fi
  raise_nofile

  local p
  for p in $UPSTREAM_PORT $NGINX_H1_PORT $FG_PLAIN_PORT; do
    if port_in_use "$p"; then die "127.0.0.1:$p already answers; is another benchmark running?"; fi
  done
  make_cert
  make_policy_keys
  (( SKIP_MEMORY )) || make_big_file
  write_configs
  : >"$OUT/floodgate.log"

  echo "floodgate vs nginx reverse-proxy benchmark   $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(uname -sr), CLK_TCK=$CLK_TCK, nofile=$NOFILE"
  echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //')   wrk: $(wrk -v 2>&1 | head -n1 | awk '{print $2}')   h2load: $(h2load --version | awk '{print $NF}')"
  if proxy_enabled floodgate; then echo "floodgate: $FLOODGATE_BIN ($(timeout 5 "$FLOODGATE_BIN" --version </dev/null 2>/dev/null || echo '?'))"; fi
  echo "proxies on core $PROXY_CORE; upstream nginx and load generator on core $LOAD_CORE; $CONNS connections"
  echo "cpu us/req = (utime+stime of the proxy process tree) / requests; lower is better"

  start upstream
  for p in "${PROXIES[@]}"; do start "$p"; done

  section_enabled h1     && run_section h1     "$ROUNDS"     "HTTP/1.1 cleartext, wrk -t1 -c$CONNS"
  section_enabled h1-resilient && run_section h1-resilient "$ROUNDS" \
    "HTTP/1.1 cleartext, floodgate's route with active and passive health checks, circuit breaker, ewma and retries; nginx plain"
  section_enabled h2c    && run_section h2c    "$TLS_ROUNDS" "HTTP/2 prior knowledge (h2c), h2load -t1 -c$CONNS -m$H2_STREAMS"
  section_enabled h1-tls && run_section h1-tls "$TLS_ROUNDS" "HTTP/1.1 over TLS, wrk -t1 -c$CONNS"
  section_enabled h2-tls && run_section h2-tls "$TLS_ROUNDS" "HTTP/2 over TLS (ALPN h2), h2load -t1 -c$CONNS -m$H2_STREAMS"
  local policy
  for policy in hs256 rs256; do
    section_enabled "policy-$policy" && run_section "policy-$policy" "$POLICY_ROUNDS" \
      "jwt-auth ${policy^^} (one repeated token) + rate-limit (never reached) + cors + metrics; nginx plain proxying"
  done
  # One plugin each, floodgate only: each plugin's own cost is its user time minus h1's.
  local -a saved=("${PROXIES[@]}")
  if proxy_enabled floodgate; then
    PROXIES=(floodgate)
    for policy in jwt-hs256 jwt-rs256 rate cors; do
      section_enabled "plugin-$policy" && run_section "plugin-$policy" "$POLICY_ROUNDS" "floodgate, a route with $policy only"
    done
    PROXIES=("${saved[@]}")
  fi

  if (( SKIP_MEMORY )); then
    echo; echo "(memory section skipped)"
  else
    echo; echo "== memory: $IDLE_CONNS idle keep-alive connections (RSS of the proxy process tree) =="
    for p in "${PROXIES[@]}"; do mem_idle "$p"; done
    echo; echo "== memory: 1 GiB streamed download through the proxy (curl to /dev/null) =="
    for p in "${PROXIES[@]}"; do mem_download "$p"; done
  fi
  echo
  echo "raw tool output: $RAW   all rows: $RESULTS   report: $OUT/report.txt"
}

# On one line so bash never reads past it: editing this file during a run cannot break the run.
main "$@"; exit
