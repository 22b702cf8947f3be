# shellcheck shell=bash
# Sourced by bench/run.sh and bench/routes.sh: the routes of a large deployment, as both put them in
# floodgate's table.
#
#   route_mix N [ID_PREFIX] [yaml|etcd]
#
# N routes, none of which matches the measured requests: 40% prefixes (/svcI/*), 30% with a
# parameter (/api/vI/users/{id}), 20% exact paths (/exact/I) and 10% bound to a host
# (hI.example.com, /*), all forwarding to the upstream `origin`. As YAML list items (the default), or
# as `KEY VALUE` lines for `etcdctl put` under /floodgate/routes/.
route_mix() {
  awk -v n="$1" -v prefix="${2:-}" -v form="${3:-yaml}" 'BEGIN {
    for (i = 0; i < n; i++) {
      k = i % 10
      host = ""
      if (k < 4)      { id = "p" i; path = "/svc" i "/*" }
      else if (k < 7) { id = "m" i; path = "/api/v" i "/users/{id}" }
      else if (k < 9) { id = "e" i; path = "/exact/" i }
      else            { id = "h" i; path = "/*"; host = "h" i ".example.com" }
      if (form == "etcd") {
        hosts = host == "" ? "" : "\"hosts\":[\"" host "\"],"
        printf "/floodgate/routes/%s%s {%s\"paths\":[\"%s\"],\"upstream\":\"origin\"}\n", prefix, id, hosts, path
      } else {
        hosts = host == "" ? "" : "hosts: [\"" host "\"], "
        printf "  - { id: %s%s, %spaths: [\"%s\"], upstream: origin }\n", prefix, id, hosts, path
      }
    }
  }'
}
