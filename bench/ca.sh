#!/bin/sh
# bench/ca.sh — certificates per second through the signer on one core
# (same-key renewal and CSR), next to `openssl speed ecdsap256` measured in
# the same run on the same core, and the time to build and sign a
# 100,000-entry CRL. Run by `make bench`; see doc/performance.md.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=.}"
secs=${BENCH_SECONDS:-3}
t=$(mktemp -d /tmp/fleetcert-bench-ca.XXXXXX)
trap 'rm -rf "$t"' EXIT INT TERM
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"

sh "$top_srcdir/tests/mkca.sh" "$t/ca" ec >/dev/null
raw=$($pin openssl speed -seconds "$secs" ecdsap256 2>/dev/null |
	awk '/ecdsa \(nistp256\)/ { print $(NF-1) }')
$pin "$top_builddir/bench/bench_ca" "$t/ca" "$secs" > "$t/out"
get() { sed -n "s/^$1=//p" "$t/out"; }
sk=$(get signer_same_key_per_s)
csr=$(get signer_csr_per_s)
crl=$(get signer_crl_100k_seconds)
awk -v raw="$raw" -v sk="$sk" -v csr="$csr" -v crl="$crl" \
    -v isk="$(get inproc_same_key_per_s)" -v icsr="$(get inproc_csr_per_s)" \
    -v icrl="$(get inproc_crl_100k_seconds)" -v bytes="$(get crl_100k_bytes)" 'BEGIN {
	printf "== CA and signer (bench and signer pinned to one core) ==\n"
	printf "openssl speed ecdsap256 sign:        %8.0f /s (ceiling)\n", raw
	printf "same-key issuance through signer:    %8.0f /s  ratio %.3f (target >= 0.30) %s\n", sk, sk / raw, (sk / raw >= 0.30) ? "met" : "MISSED"
	printf "CSR -> certificate through signer:   %8.0f /s  ratio %.3f (target >= 0.10) %s\n", csr, csr / raw, (csr / raw >= 0.10) ? "met" : "MISSED"
	printf "same-key issuance in process:        %8.0f /s  ratio %.3f\n", isk, isk / raw
	printf "CSR -> certificate in process:       %8.0f /s  ratio %.3f\n", icsr, icsr / raw
	printf "100,000-entry CRL through signer:    %8.3f s (target < 1 s) %s; in process %.3f s; %d bytes\n", crl, (crl < 1) ? "met" : "MISSED", icrl, bytes
}'
