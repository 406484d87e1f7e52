#!/bin/sh
# Factory-record import benchmark (make bench): a generated 100,000-device
# CSV (keys only), a 20,000-device CSV with certificates, and a 10,000-entry
# signed manifest, each imported into a fresh database; SQLite's bare
# bulk-insert ceiling measured in the same run. Prints rows/s, peak RSS and
# the ratio to the ceiling. Sizes: IMPORT_BENCH_N (100000), _M (10000).
set -eu
b=${top_builddir:-.}
n=${IMPORT_BENCH_N:-100000}
m=${IMPORT_BENCH_M:-10000}
nc=$((n / 5))
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_import.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$b/tests/gen-factory-csv" -n "$n" -o "$tmp/keys.csv"
"$b/tests/gen-factory-csv" -n "$nc" --certs -o "$tmp/certs.csv"
"$b/tests/gen-factory-csv" -n "$m" --manifest "$tmp/manifest.json" \
	--signer-out "$tmp/signer.pem"

run() {
	rm -f "$tmp/db" "$tmp/db-wal" "$tmp/db-shm"
	"$b/bench/bench_import" "$@" "$tmp/db"
}
ceil=$(run ceiling "$n")
keys=$(run csv "$tmp/keys.csv")
certs=$(run csv "$tmp/certs.csv")
man=$(run manifest "$tmp/manifest.json" "$tmp/signer.pem")
ver=$("$b/bench/bench_import" verify "$m")

echo "== import benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs) =="
printf '%s\n%s\n%s\n%s\n%s\n' "$ceil" "$keys" "$certs" "$man" "$ver" | awk '
	BEGIN {
		label[1] = "SQLite bare insert (ceiling)"; label[2] = "CSV, keys only"
		label[3] = "CSV with certificates"; label[4] = "manifest (ES256 + x5c)"
		printf "%-30s %8s %9s %13s %10s\n", "what", "rows", "rows/s", "peak RSS MiB", "x ceiling"
	}
	{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[NR, kv[1]] = kv[2] }
		if (NR == 1) c = v[1, "rows_per_s"]
		if (NR == 5) {
			printf "%-30s %8d %9d %13s %10s\n", "ES256 verify (ceiling)", v[5, "rows"], v[5, "rows_per_s"], "-", "-"
			printf "manifest entries/s / ES256 verifies/s = %.3f\n", v[4, "rows_per_s"] / v[5, "rows_per_s"]
			next
		}
		printf "%-30s %8d %9d %13.1f %10.3f\n", label[NR], v[NR, "rows"], v[NR, "rows_per_s"], v[NR, "peak_rss_kib"] / 1024, v[NR, "rows_per_s"] / c
	}'
