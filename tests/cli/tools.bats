#!/usr/bin/env bats
# lwf init and lwf export on the command line: usage, errors that name their cause and
# write nothing, and a successful run of each.  What they write is checked in
# tests/unit/test_cfgtools.c, tests/unit/test_export.c and (detectors) tests/unit/test_detexport.c.

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

# --- detectors: lwf init -grow and lwf export ---------------------------------------------

# det_datas DIR K NAMES_OLD NAMES_NEW: DIR/old.data (classes K, names) and DIR/new.data
# (classes of NAMES_NEW, a train list, names, backup) over copies of the two names files.
det_datas() {
    cp "$3" "$1/old.names"
    cp "$4" "$1/new.names"
    printf 'img.png\n' > "$1/new.list"
    printf 'classes=%s\nnames=%s/old.names\n' "$2" "$1" > "$1/old.data"
    printf 'classes=%s\ntrain=%s/new.list\nnames=%s/new.names\nbackup=%s/bk\n' "$(wc -l < "$4")" "$1" "$1" "$1" \
        > "$1/new.data"
}

@test "lwf init -grow of a detector (Debian's yolov3-tiny.cfg): the grown cfg, <stem>.names and <stem>.data" {
    [ -f /usr/share/darknet/cfg/yolov3-tiny.cfg ] || skip "no stock yolov3-tiny.cfg"
    local d=$BATS_TEST_TMPDIR
    seq 0 79 | sed 's/^/old/' > "$d/o.names"
    printf 'n0\nn1\nn2\n' > "$d/n.names"
    det_datas "$d" 80 "$d/o.names" "$d/n.names"
    run "$DARKNET" lwf init /usr/share/darknet/cfg/yolov3-tiny.cfg "$d/new.data" "$d/all.cfg" -grow "$d/old.data"
    assert_ok
    assert_contains "wrote $d/all.cfg: detector 'all' grown from 80 to 83 classes" "its .data and .names" \
        "train it with: darknet lwf train $d/all.data $d/all.cfg <old.weights>"
    diff "$d/all.data" <(printf 'classes=83\nnames=%s/all.names\nbackup=%s/bk\nold_data=%s/old.data\nnew_data=%s/new.data\n' \
        "$d" "$d" "$d" "$d")
    diff "$d/all.names" <(cat "$d/o.names" "$d/n.names")
    [ "$(grep -c '^\[lwf_yolo\]$' "$d/all.cfg")" -eq 2 ]
    [ "$(grep -c '^\[yolo\]$' "$d/all.cfg")" -eq 0 ]
    [ "$(grep -c '^filters=264$' "$d/all.cfg")" -eq 2 ] # (83 + 5) x 3 masks
    [ "$(grep -c '^old_classes=80$' "$d/all.cfg")" -eq 2 ]
    [ "$(sed -n 2,4p <(grep -A3 '^\[task\]$' "$d/all.cfg"))" = "$(printf 'name=all\ndata=%s/all.data' "$d")" ]
    CFG=$d/all.cfg
    run_info
    assert_ok
    assert_contains "task all " "83 classes"
}

@test "lwf init -grow of a detector: classes that are not the [yolo]'s, or a name in both .data, is an error; nothing written" {
    [ -f /usr/share/darknet/cfg/yolov3-tiny.cfg ] || skip "no stock yolov3-tiny.cfg"
    local d=$BATS_TEST_TMPDIR cfg=/usr/share/darknet/cfg/yolov3-tiny.cfg line
    seq 0 19 | sed 's/^/old/' > "$d/o.names"
    printf 'n0\nold3\n' > "$d/n.names"
    det_datas "$d" 20 "$d/o.names" "$d/n.names"
    run "$DARKNET" lwf init "$cfg" "$d/new.data" "$d/all.cfg" -grow "$d/old.data"
    assert_failed
    line=$(grep -n '^classes=80' "$cfg" | head -1 | cut -d: -f1)
    assert_contains "$cfg:$line: [yolo] classes=80, but the old task's .data has classes=20"
    # the one-[yolo] head of cfg/fashion-det.cfg over 5 classes, and a name in both lists
    sed '/^\[route\]/,$d' cfg/fashion-det.cfg > "$d/one.cfg"
    det_datas "$d" 5 cfg/fashion-det-a.names "$d/n.names"
    printf 'sandal\ncoat\n' > "$d/new.names"
    run "$DARKNET" lwf init "$d/one.cfg" "$d/new.data" "$d/all.cfg" -grow "$d/old.data"
    assert_failed
    assert_contains "$d/new.names:2: label 'coat' is both an old class"
    [ ! -e "$d/all.cfg" ] && [ ! -e "$d/all.names" ] && [ ! -e "$d/all.data" ]
}

@test "lwf export of a grown detector: a stock cfg with [yolo] that stock detector test runs, with lwf predict's lines" {
    local d=$BATS_TEST_TMPDIR n
    sed -e '/^\[route\]/,$d' -e 's/^batch=32/batch=1/' cfg/fashion-det.cfg > "$d/one.cfg"
    det_datas "$d" 5 cfg/fashion-det-a.names cfg/fashion-det-b.names
    run "$DARKNET" lwf init "$d/one.cfg" "$d/new.data" "$d/grown.cfg" -grow "$d/old.data"
    assert_ok
    # a whole model of zeros: every output 0, each class .25 at every anchor
    n=$("$DARKNET" lwf info "$d/grown.cfg" 2>/dev/null | sed -n 's/^weights: \(.* \)\{0,1\}\([0-9][0-9]*\)\( floats\)\{0,1\} for the whole model$/\2/p')
    [ -n "$n" ]
    weights_file "$d/w.weights" "$n"
    run "$DARKNET" lwf export "$d/grown.cfg" "$d/w.weights" grown "$d/e.cfg" "$d/e.weights"
    assert_ok
    assert_contains "wrote $d/e.cfg and $d/e.weights: the detector as a stock one" "darknet detector test"
    [ "$(grep -c '^\[yolo\]$' "$d/e.cfg")" -eq 1 ] && [ "$(grep -c '^classes=10$' "$d/e.cfg")" -eq 1 ]
    run grep -e '^\[task\]' -e lwf_yolo -e '^old_classes=' -e '^lambda' "$d/e.cfg"
    [ "$status" -eq 1 ]
    [ "$(stat -c %s "$d/e.weights")" -eq "$(stat -c %s "$d/w.weights")" ]
    "$MKIMG" -s 80 "$d/img.png"
    mkdir "$d/run" && ln -s /usr/share/darknet/data "$d/run/data"
    run bash -c "cd '$d/run' && /usr/bin/darknet detector test '$d/grown.data' '$d/e.cfg' '$d/e.weights' '$d/img.png' -thresh .2 -out pred 2>/dev/null"
    [ "$status" -eq 0 ]
    assert_contains "Predicted in"
    echo "$output" | grep -E '^[a-z]+: [0-9]+%$' > "$d/stock.txt"
    run "$DARKNET" lwf predict "$d/grown.cfg" "$d/w.weights" "$d/img.png" -thresh .2 -out "$d/ours"
    assert_ok
    echo "$output" | grep -E '^[a-z]+: [0-9]+%$' > "$d/ours.txt"
    [ -s "$d/stock.txt" ]
    diff "$d/ours.txt" "$d/stock.txt"
    # the old detector's file (the weights of one.cfg): its new rows are untrained; another task name
    n=$("$DARKNET" lwf info "$d/one.cfg" 2>/dev/null | sed -n 's/^weights: \(.* \)\{0,1\}\([0-9][0-9]*\)\( floats\)\{0,1\} for the whole model$/\2/p')
    [ -n "$n" ]
    weights_file "$d/old.weights" "$n"
    run "$DARKNET" lwf export "$d/grown.cfg" "$d/old.weights" grown "$d/x.cfg" "$d/x.weights"
    assert_failed
    assert_contains "$d/old.weights holds the old detector only"
    run "$DARKNET" lwf export "$d/grown.cfg" "$d/w.weights" nosuch "$d/x.cfg" "$d/x.weights"
    assert_failed
    assert_contains "a detector is one task: 'grown'"
    [ ! -e "$d/x.cfg" ] && [ ! -e "$d/x.weights" ]
}
