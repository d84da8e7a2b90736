#!/usr/bin/env bash
# Runs every unit test binary (cmocka, TAP output) and every bats file, then prints one
# summary line "N passed, N failed".  Exits non-zero on any failure or crashed binary.
# Env: BUILD (build dir with tests/), DARKNET (binary under test), MKIMG (the test image
# writer, built by `make tools`), SANITIZED=1 for make check.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export DARKNET=${DARKNET:-$PWD/darknet}
export LWF_ROOT=$PWD
export MKIMG=${MKIMG:-$PWD/$BUILD/tests/tools/mkimg}
if [ "${SANITIZED:-0}" = 1 ]; then
    # libdarknet is not instrumented: its own leaks (parser allocations) are not ours
    export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
    export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:exitcode=86"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
crashed=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "# $name"
    CMOCKA_MESSAGE_OUTPUT=TAP "$t" > "$log.one" 2>"$log.err"
    rc=$?
    cat "$log.one"
    cat "$log.one" >> "$log"
    if [ $rc -ne 0 ] && ! grep -q "^not ok" "$log.one"; then
        echo "not ok - $name exited with status $rc"
        echo "not ok - $name exited with status $rc" >> "$log"
        tail -30 "$log.err"
        crashed=$((crashed + 1))
    elif grep -q "^not ok" "$log.one"; then
        tail -40 "$log.err"
    fi
done
rm -f "$log.one" "$log.err"
if [ -d tests/cli ] && ls tests/cli/*.bats >/dev/null 2>&1; then
    # a bats that is missing, crashes or stops early must not pass for an empty success:
    # its status, its plan line (1..N) and N results are all checked
    bats --tap tests/cli | tee "$log.bats"
    brc=${PIPESTATUS[0]}
    cat "$log.bats" >> "$log"
    plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$log.bats" | head -1)
    ran=$(grep -c -e "^ok " -e "^not ok " "$log.bats")
    if { [ "$brc" -ne 0 ] && ! grep -q "^not ok" "$log.bats"; } || [ -z "$plan" ] || [ "$ran" -ne "$plan" ]; then
        echo "not ok - bats exited with status $brc, planned ${plan:-no} tests, reported $ran" | tee -a "$log"
    fi
    rm -f "$log.bats"
fi
passed=$(grep -c "^ok " "$log")
failed=$(grep -c "^not ok " "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
