#!/bin/sh
# Factory-record import benchmark (make bench). Generates a 100,000-device
# CSV (keys only), a 20,000-device CSV with certificates and a 10,000-entry
# signed manifest, imports each into a fresh database, and measures in the
# same run the ceilings they are compared with:
#   - SQLite bare insert: rows of a device row's size, bare prepared
#     statement, one transaction (the ceiling named in
#     performance-ceilings.md);
#   - schema: the rows a keys-only import writes (devices + audit, with
#     fleetcert's indexes), bare statements, no checks;
#   - ES256 verify: the manifest's per-entry signature check alone.
# Each measurement is the best of IMPORT_BENCH_ROUNDS (3) rounds, since
# the machines are shared and noisy. Sizes: IMPORT_BENCH_N (100000),
# IMPORT_BENCH_M (10000).
set -eu
b=${top_builddir:-.}
n=${IMPORT_BENCH_N:-100000}
m=${IMPORT_BENCH_M:-10000}
rounds=${IMPORT_BENCH_ROUNDS:-3}
nc=$((n / 5))
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_import.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$b/tests/gen-factory-csv" -n "$n" -o "$tmp/keys.csv"
"$b/tests/gen-factory-csv" -n "$nc" --certs -o "$tmp/certs.csv"
"$b/tests/gen-factory-csv" -n "$m" --manifest "$tmp/manifest.json" \
	--signer-out "$tmp/signer.pem"

# Runs one measurement in a fresh database; appends "label <output>".
run() {
	label=$1
	shift
	rm -f "$tmp/db" "$tmp/db-wal" "$tmp/db-shm"
	printf '%s %s\n' "$label" "$("$b/bench/bench_import" "$@")" >> "$tmp/out"
}
: > "$tmp/out"
r=0
while [ "$r" -lt "$rounds" ]; do
	run ceiling ceiling "$n" "$tmp/db"
	run schema schema "$n" "$tmp/db"
	run keys csv "$tmp/keys.csv" "$tmp/db"
	run certs csv "$tmp/certs.csv" "$tmp/db"
	run manifest manifest "$tmp/manifest.json" "$tmp/signer.pem" "$tmp/db"
	run verify verify "$m"
	run parse parse "$tmp/certs.csv"
	r=$((r + 1))
done

echo "== import benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, best of $rounds) =="
awk '
	{
		for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		if ($1 == "parse") {
			for (k in f) if (k ~ /_us$/ && (!(k in pmin) || f[k] + 0 < pmin[k] + 0)) pmin[k] = f[k]
			next
		}
		if (f["rows_per_s"] + 0 > best[$1] + 0) {
			best[$1] = f["rows_per_s"]; rows[$1] = f["rows"]
			rss[$1] = f["peak_rss_kib"]; base[$1] = f["base_rss_kib"]
		}
	}
	END {
		c = best["ceiling"]; s = best["schema"]; v = best["verify"]
		printf "%-34s %7s %8s %9s %9s %9s\n", "what", "rows", "rows/s", "RSS MiB", "/bare", "/schema"
		line("ceiling", "SQLite bare insert (ceiling)")
		line("schema", "devices+audit bare (ceiling)")
		line("keys", "CSV import, keys only")
		line("certs", "CSV import, with certificates")
		line("manifest", "manifest import (ES256 + x5c)")
		printf "%-34s %7d %8d\n", "ES256 verify alone (ceiling)", rows["verify"], v
		printf "manifest entries/s / ES256 verifies/s = %.3f\n", best["manifest"] / v
		printf "per row: identity key check %.2f us vs d2i_PUBKEY %.2f us (%.0fx); certificate read %.2f us vs d2i_X509 %.2f us (%.1fx)\n", pmin["key_check_us"], pmin["d2i_PUBKEY_us"], pmin["d2i_PUBKEY_us"] / pmin["key_check_us"], pmin["cert_parse_us"], pmin["d2i_X509_us"], pmin["d2i_X509_us"] / pmin["cert_parse_us"]
		printf "RSS is the process peak (getrusage ru_maxrss); before the import started (input read, database open) it was %.1f / %.1f / %.1f MiB for the three imports\n", base["keys"] / 1024, base["certs"] / 1024, base["manifest"] / 1024
	}
	function line(k, label) {
		if (k == "ceiling" || k == "schema" || k == "keys")
			printf "%-34s %7d %8d %9.1f %9.3f %9.3f\n", label, rows[k], best[k], rss[k] / 1024, best[k] / c, best[k] / s
		else
			printf "%-34s %7d %8d %9.1f %9.3f %9s\n", label, rows[k], best[k], rss[k] / 1024, best[k] / c, "-"
	}' "$tmp/out"
