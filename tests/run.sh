#!/usr/bin/env bash
# Runs every unit test binary (cmocka, TAP output) and every bats file, then prints one
# summary line "N passed, N failed, N skipped".  Exits non-zero on any failure or crashed
# binary, and under CI=true on any skipped test (CI installs everything a test needs, so
# a skip there hides a test that did not run).
# Env: BUILD (build dir with tests/), DARKNET (binary under test), MKIMG (the test image
# writer, built by `make tools`), SANITIZED=1 for make check, CI=true in CI.
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
# A TAP result line with the SKIP directive: bats prints "ok 3 name # skip why", Debian's
# cmocka (1.1.5) "not ok 3 # SKIP name"; either is a skip, neither a pass nor a failure.
SKIP_RE='^(not )?ok [0-9]+ (.* )?# [Ss][Kk][Ii][Pp]( |$)'
# failures FILE: its "not ok" lines that are not skips
failures() { grep "^not ok " "$1" | grep -Ev "$SKIP_RE"; }
crashed=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "# $name"
    CMOCKA_MESSAGE_OUTPUT=TAP "$t" > "$log.one" 2>"$log.err"
    rc=$?
    cat "$log.one"
    cat "$log.one" >> "$log"
    if [ $rc -ne 0 ] && ! failures "$log.one" > /dev/null; then
        echo "not ok - $name exited with status $rc"
        echo "not ok - $name exited with status $rc" >> "$log"
        tail -30 "$log.err"
        crashed=$((crashed + 1))
    elif failures "$log.one" > /dev/null; then
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
    if { [ "$brc" -ne 0 ] && ! failures "$log.bats" > /dev/null; } || [ -z "$plan" ] || [ "$ran" -ne "$plan" ]; then
        echo "not ok - bats exited with status $brc, planned ${plan:-no} tests, reported $ran" | tee -a "$log"
    fi
    rm -f "$log.bats"
fi
skipped=$(grep -Ec "$SKIP_RE" "$log")
passed=$(grep "^ok " "$log" | grep -Evc "$SKIP_RE")
failed=$(failures "$log" | grep -c .)
if [ "$skipped" -gt 0 ]; then
    echo "# skipped:"
    grep -E "$SKIP_RE" "$log" | sed 's/^/#   /'
fi
echo "$passed passed, $failed failed, $skipped skipped"
if [ "${CI:-}" = true ] && [ "$skipped" -gt 0 ]; then
    echo "CI=true: $skipped test(s) skipped; CI installs what every test needs (make deps), so none may skip" >&2
    exit 1
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
