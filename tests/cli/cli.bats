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

# --- lwf train -valid N and <backup>/<cfg>.chart.png ---------------------------------------

# chart_fixture OLDNAME NEWNAME: in $T (this test's folder), a tiny two-task run: 8x8 PNGs
# written by mkimg (two classes, the valid list = the training list), small.cfg (trunk,
# old head OLDNAME with 3 classes, new head NEWNAME with 2; warm-up 2 + joint 4 iterations
# of 4 images), new.data (backup $T/backup) and zero.weights (the old network, all zeros).
chart_fixture() {
    T="$BATS_TEST_TMPDIR"
    local mkimg=${MKIMG:-"$LWF_ROOT/build/tests/tools/mkimg"} i l
    [ -x "$mkimg" ] || { echo "no image writer at $mkimg: run make tools" >&2; return 1; }
    mkdir -p "$T/img"
    : > "$T/train.list"
    for i in 0 1 2 3; do
        for l in lblzero lblone; do echo "$T/img/t${i}_$l.png" >> "$T/train.list"; done
    done
    # shellcheck disable=SC2046
    "$mkimg" $(cat "$T/train.list") || return 1
    printf 'lblzero\nlblone\n' > "$T/labels"
    printf 'lblzero\nlblone\nlbltwo\n' > "$T/old.labels"
    printf 'classes=3\nvalid=%s/train.list\nlabels=%s/old.labels\n' "$T" "$T" > "$T/old.data"
    printf 'classes=2\ntrain=%s/train.list\nvalid=%s/train.list\nlabels=%s/labels\nbackup=%s/backup\n' \
        "$T" "$T" "$T" "$T" > "$T/new.data"
    printf '[net]\nbatch=4\nsubdivisions=1\nheight=8\nwidth=8\nchannels=3\nlearning_rate=0.01\npolicy=poly\n%s' \
        'power=4
max_batches=4
momentum=0.9
decay=0.0005
warmup_batches=2
warmup_learning_rate=0.01
min_crop=8
max_crop=8
flip=0
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
' > "$T/small.cfg"
    printf '[task]\nname=%s\ndata=%s/old.data\n[convolutional]\nfilters=3\nsize=1\nstride=1\npad=1\n%s' "$1" "$T" \
        'activation=linear
[avgpool]
[lwf_distill]
' >> "$T/small.cfg"
    printf '[task]\nname=%s\n[convolutional]\nfilters=2\nsize=1\nstride=1\npad=1\nactivation=linear\n%s' "$2" \
        '[avgpool]
[softmax]
' >> "$T/small.cfg"
    floats_file "$T/zero.weights" 139 00000000
}

# png_size FILE: its size in bytes, after checking it starts with the PNG signature.
png_size() {
    [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || {
        echo "$1 is not a PNG" >&2
        return 1
    }
    stat -c %s "$1"
}

@test "lwf train -valid 2: figures on stdout and in the log; <cfg>.chart.png is a PNG redrawn as training goes on" {
    chart_fixture old new
    # a gnuplot that keeps a copy of each picture it draws (in its private folder), then the real one
    mkdir "$T/bin"
    printf '#!/bin/sh\n/usr/bin/gnuplot "$@" || exit\nn=$(ls "%s"/draw-*.png 2>/dev/null | wc -l)\ncp chart.png "%s/draw-$n.png"\n' \
        "$T" "$T" > "$T/bin/gnuplot"
    chmod +x "$T/bin/gnuplot"
    PATH="$T/bin:$PATH" run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -seed 1 -quiet -valid 2
    assert_ok
    assert_contains "2: valid top-1 old 0." " new 0." "(16 images, " "4: valid top-1" "6: valid top-1"
    [ "$(head -1 "$T/backup/small.log.csv")" = \
        "iteration,epoch,phase,loss,avg_loss,rate,seconds,images,old_loss,new_loss,old_top1,new_top1" ]
    # iteration 1: no figures; iteration 2: both
    [[ "$(sed -n 2p "$T/backup/small.log.csv")" == *,, ]]
    [[ "$(sed -n 3p "$T/backup/small.log.csv")" =~ ,0\.[0-9]{6},0\.[0-9]{6}$ ]]
    # drawn after each validation (2, 4, 6), the last one in place, larger as the lines grow
    [ "$(ls "$T"/draw-*.png | wc -l)" -eq 3 ]
    cmp "$T/draw-2.png" "$T/backup/small.chart.png"
    local s0 s2
    s0=$(png_size "$T/draw-0.png")
    s2=$(png_size "$T/backup/small.chart.png")
    [ "$s0" -ne "$s2" ] || { echo "the chart did not change: $s0 bytes at 2 and at 6" >&2; return 1; }
    # without -valid there is a chart too (the losses: every 200 iterations and at the end)
    rm -rf "$T/backup" "$T"/draw-*.png
    PATH="$T/bin:$PATH" run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -seed 1 -quiet
    assert_ok
    refute_contains "valid top-1"
    [ "$(ls "$T"/draw-*.png | wc -l)" -eq 1 ]
    png_size "$T/backup/small.chart.png"
}

@test "lwf train: a missing or failing gnuplot is one warning, and the run ends as one that drew its chart" {
    chart_fixture old new
    run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -seed 1 -quiet -valid 2
    assert_ok
    png_size "$T/backup/small.chart.png"
    mv "$T/backup" "$T/drawn"
    mkdir "$T/bin" "$T/nobin"
    printf '#!/bin/sh\necho "fake gnuplot: cannot draw" >&2\nexit 3\n' > "$T/bin/gnuplot"
    chmod +x "$T/bin/gnuplot"
    local how
    for how in failing missing; do
        rm -rf "$T/backup"
        if [ "$how" = failing ]; then
            PATH="$T/bin:$PATH" run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -seed 1 -quiet -valid 2
            assert_contains "gnuplot failed (exit status 3): fake gnuplot: cannot draw"
        else
            PATH="$T/nobin" run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -seed 1 -quiet -valid 2
            assert_contains "gnuplot is not installed"
        fi
        assert_ok
        assert_contains "warning: $T/backup/small.chart.png not drawn: " "training goes on"
        [ "$(grep -c 'not drawn' <<< "$output")" -eq 1 ]
        [ ! -e "$T/backup/small.chart.png" ]
        cmp "$T/backup/small.weights" "$T/drawn/small.weights"
    done
}

@test "lwf train -valid: task names with quotes, backquotes, \$() and system() reach gnuplot as data only" {
    # (a task name holds no ',' nor '"': the cfg refuses them)
    T="$BATS_TEST_TMPDIR"
    # (the cfg reader drops blanks inside a value: ${IFS} is the shell's blank)
    chart_fixture "o'l\`touch\${IFS}$T/pwned1\`d\$(touch\${IFS}$T/pwned2)" "n'ew'.system('touch\${IFS}$T/pwned3').'"
    run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -seed 1 -quiet -valid 3
    assert_ok
    local k
    for k in 1 2 3; do
        [ ! -e "$T/pwned$k" ] || { echo "a task name ran a command (pwned$k)" >&2; return 1; }
    done
    refute_contains "not drawn"
    png_size "$T/backup/small.chart.png"
}

@test "lwf train -valid: N must be a whole number >= 1; a cfg without a valid list is refused before anything is written" {
    chart_fixture old new
    local v
    for v in 0 -1 x 2.5; do
        run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -valid "$v"
        assert_failed
        assert_contains "-valid"
    done
    # no task has a valid list: neither the old task's .data nor the training .data has one
    sed -i '/^valid=/d' "$T/old.data" "$T/new.data"
    run "$DARKNET" lwf train "$T/new.data" "$T/small.cfg" "$T/zero.weights" -valid 2
    assert_failed
    assert_contains "-valid: no task of $T/small.cfg has a data= file with a valid= list"
    [ ! -e "$T/backup" ]
}
