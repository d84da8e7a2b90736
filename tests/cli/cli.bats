#!/usr/bin/env bats
# The ./darknet command line: `lwf` usage and argument checks, the hand-over of every
# other first argument to the stock /usr/bin/darknet, and weights errors via `lwf info`.

load helpers

# --- usage and arguments ----------------------------------------------------------------

@test "darknet lwf (no command): a usage error, exit 2, with the usage listing every command" {
    run "$DARKNET" lwf
    [ "$status" -eq 2 ]
    assert_contains "no command" "usage" "lwf train" "lwf valid" "lwf predict" "lwf export" "lwf init" "lwf info"
}

@test "darknet lwf nosuchcmd: non-zero exit, names the unknown command" {
    run "$DARKNET" lwf nosuchcmd
    assert_failed
    assert_contains "unknown command" "nosuchcmd" "usage"
}

@test "darknet lwf info (no cfg): non-zero exit with the usage" {
    run "$DARKNET" lwf info
    assert_failed
    assert_contains "missing" "usage" "info <lwf.cfg>"
}

@test "darknet lwf info cfg x y (too many arguments): non-zero exit naming the extra one" {
    run "$DARKNET" lwf info cfg/fashion-lwf.cfg x y
    assert_failed
    assert_contains "unexpected argument" "y" "usage"
}

@test "darknet lwf info cfg -bogus (unknown flag): non-zero exit naming the flag" {
    run "$DARKNET" lwf info cfg/fashion-lwf.cfg -bogus
    assert_failed
    assert_contains "unknown option" "-bogus"
}

# --- kernels: fast by default, Darknet's reference on request ---------------------------

@test "darknet lwf info cfg: the fast kernels are installed" {
    run "$DARKNET" lwf info cfg/fashion-lwf.cfg
    assert_ok
    assert_contains "kernels: fast, 9 of 13 layers" "OpenBLAS core"
}

@test "darknet lwf info cfg -reference: Darknet's reference kernels" {
    run "$DARKNET" lwf info cfg/fashion-lwf.cfg -reference
    assert_ok
    assert_contains "kernels: Darknet's reference"
}

@test "LWF_REFERENCE=1 darknet lwf info cfg: Darknet's reference kernels; LWF_REFERENCE=0: fast" {
    LWF_REFERENCE=1 run "$DARKNET" lwf info cfg/fashion-lwf.cfg
    assert_ok
    assert_contains "kernels: Darknet's reference"
    LWF_REFERENCE=0 run "$DARKNET" lwf info cfg/fashion-lwf.cfg
    assert_ok
    assert_contains "kernels: fast"
}

# --- the stock darknet ------------------------------------------------------------------

@test "darknet nosuchfunction: same exit status and output as /usr/bin/darknet nosuchfunction" {
    [ -x "$STOCK_DARKNET" ] || skip "no $STOCK_DARKNET"
    run "$STOCK_DARKNET" nosuchfunction
    local want_status=$status want_output=$output
    run "$DARKNET" nosuchfunction
    refute_crash
    [ "$status" -eq "$want_status" ]
    [ "$output" = "$want_output" ]
    assert_contains "nosuchfunction"
}

@test "darknet (no arguments): behaves like /usr/bin/darknet with no arguments" {
    [ -x "$STOCK_DARKNET" ] || skip "no $STOCK_DARKNET"
    run "$STOCK_DARKNET"
    local want_status=$status want_output=$output
    run "$DARKNET"
    refute_crash
    [ "$status" -eq "$want_status" ]
    [ "$output" = "$want_output" ]
    assert_contains "usage"
}

# --- weights through lwf info <cfg> <weights> -------------------------------------------

@test "lwf info cfg weights: a missing weights file is an error naming it" {
    CFG=$BASE_CFG
    local w=$BATS_TEST_TMPDIR/nosuch.weights
    run_info "$w"
    assert_failed
    assert_contains "$w" "cannot open"
}

@test "lwf info cfg weights: a directory is an error naming it" {
    CFG=$BASE_CFG
    local w=$BATS_TEST_TMPDIR/dir.weights
    mkdir "$w"
    run_info "$w"
    assert_failed
    assert_contains "$w" "not a regular file"
}

@test "lwf info cfg weights: a 3-byte file (corrupt header) is an error naming it" {
    CFG=$BASE_CFG
    local w=$BATS_TEST_TMPDIR/three.weights
    printf 'abc' > "$w"
    run_info "$w"
    assert_failed
    assert_contains "$w" "header"
}

@test "lwf info cfg weights: a header with an impossible version is an error naming it" {
    CFG=$BASE_CFG
    local w=$BATS_TEST_TMPDIR/version.weights
    weights_file "$w" 10
    printf '\377\377\377\377' | dd of="$w" conv=notrunc status=none # major = -1
    run_info "$w"
    assert_failed
    assert_contains "$w" "not a Darknet .weights file"
}

@test "lwf info cfg weights: a body that is not a whole number of floats is an error" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/ragged.weights
    weights_file "$w" "$OLD_FLOATS" 2
    run_info "$w"
    assert_failed
    assert_contains "$w" "whole number of floats"
}

@test "lwf info cfg weights: a file too short says 'too short' and names both expected counts" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/short.weights
    weights_file "$w" 10
    run_info "$w"
    assert_failed
    assert_contains "$w" "floats" "too short" "$OLD_FLOATS" "$ALL_FLOATS"
}

@test "lwf info cfg weights: a file one float too long says 'too long' and names both expected counts" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/long.weights
    weights_file "$w" $((ALL_FLOATS + 1))
    run_info "$w"
    assert_failed
    assert_contains "$w" "floats" "too long" "$OLD_FLOATS" "$ALL_FLOATS"
}

@test "lwf info cfg weights: a count between old network and whole model is an error naming both" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/between.weights
    weights_file "$w" $((OLD_FLOATS + 1))
    run_info "$w"
    assert_failed
    assert_contains "$w" "$((OLD_FLOATS + 1)) floats" "$OLD_FLOATS" "$ALL_FLOATS"
}

@test "lwf info cfg weights: exactly the old network's floats loads as 'old network only'" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/old.weights
    weights_file "$w" "$OLD_FLOATS"
    run_info "$w"
    assert_ok
    assert_contains "loaded $w" "old network only"
}

@test "lwf info cfg weights: exactly the whole model's floats loads as 'whole model'" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/all.weights
    weights_file "$w" "$ALL_FLOATS"
    run_info "$w"
    assert_ok
    assert_contains "loaded $w" "whole model"
}

@test "darknet lwf help (and -h, --help): the usage on stdout, exit 0" {
    local h
    for h in help -h --help; do
        run "$DARKNET" lwf "$h"
        assert_ok
        assert_contains "usage" "lwf train" "lwf info"
    done
}

@test "each command's usage line: the same text in the lwf listing and in the command's own argument errors" {
    local cmd listed own
    run "$DARKNET" lwf help
    assert_ok
    local listing=$output
    for cmd in train valid predict export init info; do
        listed=$(printf '%s\n' "$listing" | grep "^  darknet lwf $cmd " | sed 's/^  //')
        run "$DARKNET" lwf "$cmd" -no-such-flag
        [ "$status" -eq 2 ]
        own=$(printf '%s\n' "$output" | grep '^usage: ' | sed 's/^usage: //')
        if [ -z "$listed" ] || [ "$listed" != "$own" ]; then
            echo "$cmd: listed '$listed', own '$own'" >&2
            return 1
        fi
    done
}

# --- the test helpers themselves ----------------------------------------------------------

@test "test helpers: an edit of a line the cfg does not have fails and leaves the cfg as it was" {
    derive helpers
    local before n args
    before=$(cat "$CFG")
    n=$(awk 'END { print NR }' "$CFG")
    for args in "0 x" "$((n + 1)) x" "x x"; do
        # shellcheck disable=SC2086
        run set_line $args
        [ "$status" -ne 0 ] || { echo "set_line $args succeeded" >&2; return 1; }
    done
    run set_line "" x
    [ "$status" -ne 0 ]
    run insert_after $((n + 1)) x
    [ "$status" -ne 0 ]
    run delete_lines $((n + 1))
    [ "$status" -ne 0 ]
    run delete_lines 3 2
    [ "$status" -ne 0 ]
    # a line_of that finds nothing, handed on: the edit fails too
    run set_line "$(line_of '^nosuchkey=' 2> /dev/null)" x
    [ "$status" -ne 0 ]
    run set_key nosuchkey 1
    [ "$status" -ne 0 ]
    [ "$(cat "$CFG")" = "$before" ]
    # guard: in range, the same helpers edit
    insert_after "$n" "# end"
    [ "$(tail -1 "$CFG")" = "# end" ]
    set_line $((n + 1)) "# last"
    [ "$(tail -1 "$CFG")" = "# last" ]
    delete_lines $((n + 1))
    [ "$(cat "$CFG")" = "$before" ]
}
