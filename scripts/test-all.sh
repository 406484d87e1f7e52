#!/bin/sh
# The whole test suite, from a clean clone: installs what is missing,
# bootstraps, builds and runs `make check` twice (plain, then with ASan and
# UBSan), then `make distcheck`. Exits non-zero on the first failure.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
./scripts/install-deps.sh
./bootstrap >/dev/null 2>&1 || ./bootstrap
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build and test (plain) =="
rm -rf _build && mkdir -p _build && cd _build
../configure -q --enable-werror
make -j"$jobs"
make -j"$jobs" check || { cat test-suite.log; exit 1; }
cd "$top"

echo "== build and test (ASan + UBSan) =="
rm -rf _build-san && mkdir -p _build-san && cd _build-san
../configure -q --enable-sanitizers --enable-werror
make -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	make -j"$jobs" check || { cat test-suite.log; exit 1; }
cd "$top"

echo "== distcheck =="
cd _build
make -j"$jobs" distcheck >/dev/null || make distcheck
echo "all tests passed"
