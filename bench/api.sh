#!/bin/sh
# bench/api.sh — operator API throughput and p99 latency under wrk on
# loopback, on an inventory of $API_BENCH_DEVICES (default 1,000,000)
# devices, next to a ceiling measured in the same run: wrk against the same
# httpd layer (tests/httpd-testd, same thread count) answering a constant
# 2-byte body with no authentication and no database.
#	GET /v1/devices/{id}		random ids
#	GET /v1/devices?limit=100	pages at random cursors
# Prints a Markdown table for doc/performance.md "Operator API".
set -eu
: "${top_srcdir:=.}" "${top_builddir:=.}"
B=$top_builddir
N=${API_BENCH_DEVICES:-1000000}
DUR=${API_BENCH_SECONDS:-10}
CONNS=${API_BENCH_CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "bench/api.sh: wrk not installed (Debian package wrk)"; exit 1; }
T=$(mktemp -d)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM

TOK=bench-$(openssl rand -hex 16)
printf 'read %s\n' "$(printf %s "$TOK" | sha256sum | cut -d' ' -f1)" > "$T/tokens"
chmod 600 "$T/tokens"
printf '[daemon]\nlog_level = warn\n[database]\npath = %s\n[api]\nlisten = 127.0.0.1:0\ntokens_file = %s\n' "$T/db.sqlite" "$T/tokens" > "$T/conf"

echo "seeding $N devices..." >&2
s0=$(date +%s)
"$B/tests/api-seed" "$T/db.sqlite" "$N"
echo "seeded in $(( $(date +%s) - s0 )) s" >&2

wait_port() { i=0; while [ ! -s "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; cat "$1"; }
"$B/tests/httpd-testd" --threads 4 --port-file "$T/ceil.port" >/dev/null 2>&1 & PIDS="$PIDS $!"
"$B/tests/api-testd" -c "$T/conf" --port-file "$T/api.port" 2>"$T/api.err" & PIDS="$PIDS $!"
CP=$(wait_port "$T/ceil.port"); AP=$(wait_port "$T/api.port")

# Cursors spread over the first 200 pages of 1000, for the list benchmark.
cur=""; : > "$T/cursors"
for i in $(seq 1 200); do
	q="limit=1000"; [ -n "$cur" ] && q="$q&cursor=$cur"
	cur=$(curl -s -H "Authorization: Bearer $TOK" "http://127.0.0.1:$AP/v1/devices?$q" | jq -r '.nextCursor // empty')
	[ -z "$cur" ] && break
	echo "$cur" >> "$T/cursors"
done

cat > "$T/get.lua" <<EOF
math.randomseed(os.time())
local tok = os.getenv("API_TOKEN")
request = function()
  return wrk.format("GET", string.format("/v1/devices/dev-%07d", math.random(0, $N - 1)),
    { ["Authorization"] = "Bearer " .. tok })
end
EOF
cat > "$T/list.lua" <<EOF
math.randomseed(os.time())
local tok = os.getenv("API_TOKEN")
local cursors = {}
for line in io.lines("$T/cursors") do cursors[#cursors + 1] = line end
request = function()
  return wrk.format("GET", "/v1/devices?limit=100&cursor=" .. cursors[math.random(1, #cursors)],
    { ["Authorization"] = "Bearer " .. tok })
end
EOF

# run NAME URL [script]: prints "rps p99" of one wrk run
run() {
	name=$1; url=$2; shift 2
	API_TOKEN=$TOK wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "$@" "$url" > "$T/$name.out" 2>&1
	rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$T/$name.out")
	p99=$(sed -n 's/^ *99% *\([0-9.]*[a-z]*\).*/\1/p' "$T/$name.out")
	non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$T/$name.out")
	[ -z "$non2xx" ] || { echo "bench/api.sh: $name: $non2xx non-2xx answers" >&2; cat "$T/$name.out" >&2; exit 1; }
	echo "$rps $p99"
}
ceil=$(run ceiling "http://127.0.0.1:$CP/tiny")
# A second ceiling: a constant body as large as a 100-device page.
psize=$(curl -s -H "Authorization: Bearer $TOK" "http://127.0.0.1:$AP/v1/devices?limit=100&cursor=$(head -n 1 "$T/cursors")" | wc -c)
ceilp=$(run ceilpage "http://127.0.0.1:$CP/blob/$psize")
get=$(run get "http://127.0.0.1:$AP" -s "$T/get.lua")
list=$(run list "http://127.0.0.1:$AP" -s "$T/list.lua")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
set -- $ceil; crps=$1; cp99=$2
set -- $ceilp; cprps=$1; cpp99=$2
set -- $get; grps=$1; gp99=$2
set -- $list; lrps=$1; lp99=$2

echo
echo "Operator API, $N devices, wrk -t2 -c$CONNS -d${DUR}s --latency on loopback, $(nproc) CPUs, API threads 4"
echo
echo "| request | requests/s | p99 | vs tiny ceiling |"
echo "|---|---|---|---|"
echo "| ceiling: httpd-testd GET /tiny (same httpd, no auth, no db) | $crps | $cp99 | 100% |"
echo "| GET /v1/devices/{id} (random id) | $grps | $gp99 | $(ratio "$grps" "$crps") |"
echo "| GET /v1/devices?limit=100&cursor= (random page, $psize bytes) | $lrps | $lp99 | $(ratio "$lrps" "$crps") |"
echo "| ceiling for the page: httpd-testd GET /blob/$psize (constant body) | $cprps | $cpp99 | $(ratio "$cprps" "$crps") |"
echo
echo "The page runs at $(ratio "$lrps" "$cprps") of a constant body of its size."
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
