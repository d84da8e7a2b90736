#!/usr/bin/env bats
# lwf init and lwf export on the command line: usage, errors that name their cause and
# write nothing, and a successful run of each.  What they write is checked in
# tests/unit/test_cfgtools.c and tests/unit/test_export.c.

load helpers

# --- lwf init ---------------------------------------------------------------------------

@test "lwf init (no arguments): non-zero exit with the usage" {
    run "$DARKNET" lwf init
    assert_failed
    assert_contains "missing arguments" "init <old.cfg> <new.data> <out.cfg>" "overwritten"
}

@test "lwf init: a missing old cfg is an error naming it; nothing written" {
    local out=$BATS_TEST_TMPDIR/out.cfg
    run "$DARKNET" lwf init "$BATS_TEST_TMPDIR/nosuch.cfg" cfg/fashion-b.data "$out"
    assert_failed
    assert_contains "$BATS_TEST_TMPDIR/nosuch.cfg" "cannot open"
    [ ! -e "$out" ]
}

@test "lwf init: a .data without classes= is an error naming it" {
    local data=$BATS_TEST_TMPDIR/bad.data out=$BATS_TEST_TMPDIR/out.cfg
    printf 'train=x.list\n' > "$data"
    run "$DARKNET" lwf init cfg/fashion.cfg "$data" "$out"
    assert_failed
    assert_contains "$data" "classes"
    [ ! -e "$out" ]
}

@test "lwf init: a detector cfg (no final [softmax]) is an error naming the cfg" {
    [ -f /usr/share/darknet/cfg/yolov3-tiny.cfg ] || skip "no stock yolov3-tiny.cfg"
    run "$DARKNET" lwf init /usr/share/darknet/cfg/yolov3-tiny.cfg cfg/fashion-b.data "$BATS_TEST_TMPDIR/out.cfg"
    assert_failed
    assert_contains "yolov3-tiny.cfg" "no final [softmax]"
}

@test "lwf init -split: not a number, out of range, after the class layer: errors naming -split" {
    local out=$BATS_TEST_TMPDIR/out.cfg
    run "$DARKNET" lwf init cfg/fashion.cfg cfg/fashion-b.data "$out" -split x
    assert_failed
    assert_contains "-split needs an integer" "got 'x'"
    run "$DARKNET" lwf init cfg/fashion.cfg cfg/fashion-b.data "$out" -split 99
    assert_failed
    assert_contains "-split 99" "out of range"
    run "$DARKNET" lwf init cfg/fashion.cfg cfg/fashion-b.data "$out" -split 6
    assert_failed
    assert_contains "-split 6" "class-producing layer"
    [ ! -e "$out" ]
}

@test "lwf init cfg/fashion.cfg: writes a cfg lwf info accepts, replacing an existing file" {
    local out=$BATS_TEST_TMPDIR/out.cfg
    echo "old content" > "$out"
    run "$DARKNET" lwf init cfg/fashion.cfg cfg/fashion-b.data "$out"
    assert_ok
    assert_contains "wrote $out" "old task 'fashion'" "new task 'fashion-b'"
    CFG=$out
    run_info
    assert_ok
    assert_contains "task fashion " "task fashion-b " "trunk = layers 0-4"
    # and once more on the LwF cfg: a third task
    run "$DARKNET" lwf init "$out" cfg/fashion-t3.data "$BATS_TEST_TMPDIR/three.cfg"
    assert_ok
    CFG=$BATS_TEST_TMPDIR/three.cfg
    run_info
    assert_ok
    assert_contains "task fashion-b        old" "task fashion-t3       new"
}

# --- lwf export -------------------------------------------------------------------------

@test "lwf export (four arguments): non-zero exit with the usage" {
    run "$DARKNET" lwf export cfg/fashion-lwf.cfg w fashion-a out.cfg
    assert_failed
    assert_contains "missing arguments" "export <lwf.cfg> <weights> <task> <out.cfg> <out.weights>"
}

@test "lwf export: an unknown task is an error listing the cfg's tasks; nothing written" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/all.weights
    weights_file "$w" "$ALL_FLOATS"
    run "$DARKNET" lwf export "$CFG" "$w" nosuch "$BATS_TEST_TMPDIR/o.cfg" "$BATS_TEST_TMPDIR/o.weights"
    assert_failed
    assert_contains "nosuch" "fashion-a" "fashion-b"
    [ ! -e "$BATS_TEST_TMPDIR/o.cfg" ]
    [ ! -e "$BATS_TEST_TMPDIR/o.weights" ]
}

@test "lwf export: the new task from old-network weights, or a short file, is an error; nothing written" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/old.weights
    weights_file "$w" "$OLD_FLOATS"
    run "$DARKNET" lwf export "$CFG" "$w" fashion-b "$BATS_TEST_TMPDIR/o.cfg" "$BATS_TEST_TMPDIR/o.weights"
    assert_failed
    assert_contains "$w" "old network only" "fashion-b"
    weights_file "$w" 10
    run "$DARKNET" lwf export "$CFG" "$w" fashion-a "$BATS_TEST_TMPDIR/o.cfg" "$BATS_TEST_TMPDIR/o.weights"
    assert_failed
    assert_contains "$w" "too short"
    [ ! -e "$BATS_TEST_TMPDIR/o.cfg" ]
    [ ! -e "$BATS_TEST_TMPDIR/o.weights" ]
}

@test "lwf export: the old task from old-network weights writes a plain stock cfg and its weights" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/old.weights o=$BATS_TEST_TMPDIR/o
    weights_file "$w" "$OLD_FLOATS"
    run "$DARKNET" lwf export "$CFG" "$w" fashion-a "$o.cfg" "$o.weights"
    assert_ok
    assert_contains "wrote $o.cfg and $o.weights"
    # same floats as the old network (trunk + the one old head), a 20-byte header
    [ "$(stat -c %s "$o.weights")" -eq $((20 + 4 * OLD_FLOATS)) ]
    run grep -e '^\[task\]' -e '^\[lwf_distill\]' -e '^warmup_' -e '^flip=' "$o.cfg"
    [ "$status" -eq 1 ]
    [ "$(grep -c '^\[' "$o.cfg")" -eq 9 ]   # [net], 5 trunk layers, conv, avgpool, softmax
    [ "$(tail -2 "$o.cfg" | head -1)" = "[softmax]" ]
}

@test "lwf export: a cfg or weights path in a missing folder is an error naming it; neither file is written" {
    CFG=$BASE_CFG
    weight_counts
    local w=$BATS_TEST_TMPDIR/old.weights o=$BATS_TEST_TMPDIR/o
    weights_file "$w" "$OLD_FLOATS"
    run "$DARKNET" lwf export "$CFG" "$w" fashion-a "$BATS_TEST_TMPDIR/nosuch/o.cfg" "$o.weights"
    assert_failed
    assert_contains "$BATS_TEST_TMPDIR/nosuch/o.cfg"
    [ ! -e "$o.weights" ]
    run "$DARKNET" lwf export "$CFG" "$w" fashion-a "$o.cfg" "$BATS_TEST_TMPDIR/nosuch/o.weights"
    assert_failed
    assert_contains "$BATS_TEST_TMPDIR/nosuch/o.weights"
    [ ! -e "$o.cfg" ]
    [ -z "$(find "$BATS_TEST_TMPDIR" -name '*.tmp.*')" ]
}
