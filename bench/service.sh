#!/bin/sh
# bench/service.sh — how fast fleetcertd starts and stops, as systemd sees
# it: from exec to READY=1 on a notify socket (signer forked and its EC key
# loaded, database opened and migrated, operator API on a Unix socket,
# enrolment listener with TLS), and from SIGTERM to exit. Twice: a fresh
# database, and one holding BENCH_FLEET devices with one certificate each
# (default 1,000,000; READY=1 carries the certificate counts, so the first
# STATUS= scans them). Ceiling, same run: one `openssl x509 -req` process
# (process start + key load + one signature), the cheapest thing that
# starts a process and uses a CA key. Medians of BENCH_RUNS (default 5).
# Run from a build directory: `make bench` or `sh ../bench/service.sh`.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=.}"
RUNS=${BENCH_RUNS:-5}
FLEET=${BENCH_FLEET:-1000000}
D=$(cd "$top_builddir" && pwd)/fleetcertd
T=$(mktemp -d /tmp/fc-bench-svc.XXXXXX)
trap 'rm -rf "$T"' EXIT
sh "$top_srcdir/tests/mkca.sh" "$T/ca" > /dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/tls.key" -out "$T/tls.pem" -subj /CN=127.0.0.1 -days 2 2> /dev/null
chmod 600 "$T/tls.key"
printf 'admin %064d\n' 0 > "$T/tokens"
chmod 600 "$T/tokens"
conf() {	# conf DB [LEVEL]
	cat <<CNF
[daemon]
log_level = ${2:-warn}
[database]
path = $1
[ca]
certificate = $T/ca/intermediate.pem
chain = $T/ca/chain.pem
key = $T/ca/intermediate.key
[api]
listen = unix:$T/api.sock
tokens_file = $T/tokens
[enrol]
listen = 127.0.0.1:0
tls_certificate = $T/tls.pem
tls_key = $T/tls.key
CNF
}

# The fleet: devices and active certificates straight into SQLite (the
# daemon creates the schema first).
conf "$T/big.db" info > "$T/big.conf"
"$D" -c "$T/big.conf" 2> "$T/mk.err" & pid=$!
i=0
while ! grep -q 'info: ready' "$T/mk.err" 2> /dev/null; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 $pid 2> /dev/null; then
		cat "$T/mk.err"; kill $pid 2> /dev/null; exit 1
	fi
	sleep 0.1
done
kill -TERM $pid; wait $pid || true
conf "$T/big.db" > "$T/big.conf"
sqlite3 "$T/big.db" > /dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $FLEET)
INSERT INTO devices (device_id, se_serial, created_at, updated_at)
SELECT printf('dev-%07d', i), printf('0123%014x', i), 0, 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $FLEET)
INSERT INTO certificates (serial, device_id, not_before, not_after, status,
	issued_by, created_at, updated_at)
SELECT printf('%032x', i), printf('dev-%07d', i), 0,
	1800000000 + (i % 31536000), 'active', 'import', 0, 0 FROM n;
COMMIT;
SQL

cat > "$T/time.py" <<'PY'
import os, signal, socket, subprocess, sys, time
binary, conf, sock, runs, fresh = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
starts, stops = [], []
for r in range(runs):
    if fresh != "-":
        for suffix in ("", "-wal", "-shm", ".lock"):
            try:
                os.unlink(fresh + suffix)
            except FileNotFoundError:
                pass
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock)
    s.settimeout(60)
    env = dict(os.environ, NOTIFY_SOCKET=sock)
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "-c", conf], env=env, stderr=subprocess.DEVNULL)
    while b"READY=1" not in s.recv(65536):
        pass
    t1 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(30)
    t2 = time.monotonic()
    s.close()
    starts.append(t1 - t0)
    stops.append(t2 - t1)
starts.sort(); stops.sort()
print("%.4f %.4f" % (starts[len(starts) // 2], stops[len(stops) // 2]))
PY
# Ceiling: one openssl process that loads the CA key and signs.
openssl req -new -key "$T/tls.key" -subj /CN=x -out "$T/x.csr" 2> /dev/null
ceil=$(python3 - "$T" "$RUNS" <<'PY'
import subprocess, sys, time
T, runs = sys.argv[1], int(sys.argv[2])
ts = []
for r in range(runs):
    t0 = time.monotonic()
    subprocess.run(["openssl", "x509", "-req", "-in", T + "/x.csr", "-CA",
        T + "/ca/intermediate.pem", "-CAkey", T + "/ca/intermediate.key",
        "-set_serial", "1", "-days", "1", "-out", T + "/x.pem"],
        check=True, stderr=subprocess.DEVNULL)
    ts.append(time.monotonic() - t0)
ts.sort()
print("%.4f" % ts[len(ts) // 2])
PY
)
conf "$T/fresh.db" > "$T/fresh.conf"
set -- $(python3 "$T/time.py" "$D" "$T/fresh.conf" "$T/n.sock" "$RUNS" "$T/fresh.db")
fs=$1 ft=$2
set -- $(python3 "$T/time.py" "$D" "$T/big.conf" "$T/n.sock" "$RUNS" -)
bs=$1 bt=$2
echo "service: median of $RUNS runs; ceiling: openssl x509 -req process ${ceil} s"
awk -v c="$ceil" -v fs="$fs" -v ft="$ft" -v bs="$bs" -v bt="$bt" -v n="$FLEET" 'BEGIN {
	printf "  exec -> READY=1, fresh database:      %.3f s (%.1f x ceiling)\n", fs, fs / c
	printf "  SIGTERM -> exit, fresh database:      %.3f s\n", ft
	printf "  exec -> READY=1, %d certificates: %.3f s (%.1f x ceiling)\n", n, bs, bs / c
	printf "  SIGTERM -> exit, same:                %.3f s\n", bt
	if (bs > 1.0) { print "  over the 1 s start-up budget"; exit 1 }
}'
