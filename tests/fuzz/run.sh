#!/bin/sh
# run.sh — builds tests/fuzz/fuzz_enrol.c with clang's libFuzzer and
# AddressSanitizer and runs it for FC_FUZZ_SECONDS (default 60) on a copy of
# the committed seed corpus (tests/fuzz/corpus/). A crash, leak or timeout
# fails the test and leaves the reproducer in the build directory.
# Skips (exit 77) only when clang or its libFuzzer runtime is missing.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${top_builddir:-.}
secs=${FC_FUZZ_SECONDS:-60}
mkdir -p "$build/tests/fuzz"
out=$(cd "$build" && pwd)/tests/fuzz

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not installed; skipping (apt-get install clang)"
	exit 77
fi
bin=$out/fuzz_enrol
# shellcheck disable=SC2046
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined \
	-I"$build" -I"$src/src" \
	$(pkg-config --cflags jansson openssl) \
	"$src/tests/fuzz/fuzz_enrol.c" "$src/src/enrol_proto.c" \
	"$src/src/util.c" "$src/src/log.c" "$src/src/der.c" \
	$(pkg-config --libs jansson openssl) -o "$bin" 2> "$out/build.log"; then
	if grep -q 'libclang_rt.fuzzer\|fsanitize=fuzzer' "$out/build.log"; then
		echo "fuzz: clang has no libFuzzer runtime; skipping"
		cat "$out/build.log"
		exit 77
	fi
	cat "$out/build.log" >&2
	exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/fc-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cp "$src"/tests/fuzz/corpus/* "$work"/
cd "$out"
ASAN_OPTIONS=detect_leaks=1 ./fuzz_enrol -max_total_time="$secs" \
	-max_len=17000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	"$work" > fuzz.log 2>&1 || { tail -50 fuzz.log >&2; exit 1; }
grep -E '^stat::number_of_executed_units|^Done' fuzz.log || true
echo "fuzz: ${secs}s without findings"
