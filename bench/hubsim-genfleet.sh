#!/bin/sh
# Benchmark: fleetcert-hubsim gen-fleet devices per second (P-256 key
# generation + certificate issuance + PEM/DER encoding + JSON/CSV output),
# next to `openssl speed ecdsap256` signs per second measured in the same
# run, and the ratio. Usage: bench/hubsim-genfleet.sh [COUNT]
set -eu
: "${top_builddir:=.}"
n=${1:-5000}
d=$(mktemp -d "${TMPDIR:-/tmp}/hubsim-bench.XXXXXX")
trap 'rm -rf "$d"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$d/ca.key" -out "$d/ca.pem" -days 3650 -subj "/CN=bench CA" \
	-addext "basicConstraints=critical,CA:TRUE" >/dev/null 2>&1
t0=$(date +%s%N)
/usr/bin/time -f '%U %S' -o "$d/cpu" "$top_builddir/fleetcert-hubsim" gen-fleet \
	--count "$n" --ca-cert "$d/ca.pem" --ca-key "$d/ca.key" --self-signed 0.2 \
	--out "$d/f.json" --csv "$d/f.csv" 2>/dev/null
t1=$(date +%s%N)
wall=$(awk -v n="$n" -v ns=$((t1 - t0)) 'BEGIN{printf "%.0f", n / (ns / 1e9)}')
rate=$(awk -v n="$n" '{printf "%.0f", n / ($1 + $2)}' "$d/cpu")
signs=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/{print $(NF-1)}')
ratio=$(awk -v a="$rate" -v b="$signs" 'BEGIN{printf "%.3f", a / b}')
echo "hubsim gen-fleet: $n devices, $rate devices per CPU-second ($wall/s wall clock); openssl ecdsap256 $signs signs/s; ratio $ratio"
