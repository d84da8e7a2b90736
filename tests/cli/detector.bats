#!/usr/bin/env bats
# Detectors end to end on a few hundred Fashion-MNIST detection canvases
# (scripts/prepare_fashion_det.sh into a temp folder): lwf train of cfg/fashion-det.cfg from
# scratch (the loss falls; a resumed run ends with the same weights as an uninterrupted one),
# a grown detector ([lwf_yolo], old_data/new_data) with -method lwf, finetune and joint,
# lwf map and lwf predict against stock `darknet detector test`; -valid (lwf map's figures, the
# same weights), the chart, lwf info.

load helpers

# a small fashion-det.cfg: batch 8, 24 iterations, a short burn-in
small_cfg() {
    sed -e 's/^batch=32/batch=8/' -e 's/^max_batches=4000/max_batches=24/' -e 's/^burn_in=50/burn_in=4/' \
        -e 's/^steps=3000,3600/steps=1000,2000/' "$LWF_ROOT/cfg/fashion-det.cfg"
}

# $1 .data path, $2 classes, $3 set prefix (a, b), $4 backup folder
write_data() {
    printf 'classes=%s\ntrain=%s/d/%s-train.list\nvalid=%s/d/%s-test.list\nnames=%s/cfg/fashion-det-%s.names\nbackup=%s\n' \
        "$2" "$F" "$3" "$F" "$3" "$LWF_ROOT" "$3" "$4" > "$1"
}

setup_file() {
    [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || return 0
    F=$BATS_FILE_TMPDIR
    cd "$LWF_ROOT" || return 1
    FMNIST_DET_TRAIN=200 FMNIST_DET_TEST=30 scripts/prepare_fashion_det.sh "$F/d" > "$F/prep.out" 2>&1 || return 0
    small_cfg > "$F/det.cfg"
    write_data "$F/a.data" 5 a "$F/bk"
    # the uninterrupted run the tests look at
    "$DARKNET" lwf train "$F/a.data" "$F/det.cfg" -seed 3 -backup 8 -quiet > "$F/train.out" 2>&1 || return 0
    # and one without batch normalisation for lwf predict and lwf map: after 24 iterations the
    # rolling statistics (Darknet's .99/.01 from zero) still hold a third of their zero start,
    # and the batch-normalised detector finds nothing in inference mode
    sed -e '/^batch_normalize=1/d' -e 's/^learning_rate=0.005/learning_rate=0.0005/' "$F/det.cfg" > "$F/nobn.cfg"
    write_data "$F/n.data" 5 a "$F/bk-n"
    "$DARKNET" lwf train "$F/n.data" "$F/nobn.cfg" -seed 3 -quiet >> "$F/train.out" 2>&1 || return 0
    touch "$F/.trained"
}

setup() {
    trained_setup
}

# mean of the loss column (4) of log lines (iterations) $2..$3 of CSV log $1
mean_loss() {
    awk -F, -v a="$2" -v b="$3" 'NR > 1 && $1 >= a && $1 <= b { s += $4; n++ } END { printf "%f", s / n }' "$1"
}

@test "lwf train of a detector from scratch: the [yolo] cost falls, backups and the log are written" {
    [ -f "$F/bk/det.weights" ] && [ -f "$F/bk/det.backup" ]
    [ "$(wc -l < "$F/bk/det.log.csv")" -eq 25 ]
    first=$(mean_loss "$F/bk/det.log.csv" 1 4)
    last=$(mean_loss "$F/bk/det.log.csv" 21 24)
    echo "loss: first 4 iterations $first, last 4 $last"
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a / 2) }'
    # Darknet's progress line per iteration on stdout
    write_data "$F/p.data" 5 a "$F/bk-p"
    run "$DARKNET" lwf train "$F/p.data" "$F/det.cfg" -seed 3 -stop 1
    [ "$status" -eq 0 ]
    assert_contains "1, 0.040: " "avg, " "rate, " "seconds, 8 images, det "
    # ours only: not libdarknet's forward_yolo_layer "Region <layer> Avg IOU: ..." per pass
    refute_contains "Region " "Avg IOU"
    run "$DARKNET" lwf train "$F/p.data" "$F/det.cfg" -seed 3 -stop 1 -clear -quiet
    [ "$status" -eq 0 ]
    refute_contains "Region " "Avg IOU"
}

@test "lwf train of a detector from a stock backbone's first layers (darknet partial): the rest from the seed" {
    # the first 10 layers of the detector without batch normalisation, by stock `darknet partial`
    (cd "$BATS_TEST_TMPDIR" && /usr/bin/darknet partial "$F/nobn.cfg" "$F/bk-n/nobn.weights" "$F/part.weights" 10 \
        > /dev/null 2>&1)
    # at learning rate 0 the backup after one iteration holds the weights the run started from
    sed 's/^learning_rate=.*/learning_rate=0/' "$F/nobn.cfg" > "$F/lr0.cfg"
    write_data "$F/pt.data" 5 a "$F/bk-pt"
    run "$DARKNET" lwf train "$F/pt.data" "$F/lr0.cfg" "$F/part.weights" -seed 3 -stop 1
    [ "$status" -eq 0 ]
    assert_contains "lwf train: $F/part.weights fills layers 0-9; the rest start from the seed" "1, 0.040: "
    (cd "$BATS_TEST_TMPDIR" && /usr/bin/darknet partial "$F/lr0.cfg" "$F/bk-pt/lr0.backup" "$F/back.weights" 10 \
        > /dev/null 2>&1)
    # layers 0-9 are the file's (after the 20-byte header, which counts the images seen)
    cmp <(tail -c +21 "$F/part.weights") <(tail -c +21 "$F/back.weights")
    # and the others are not the trained detector's
    ! cmp -s <(tail -c +21 "$F/bk-pt/lr0.backup") <(tail -c +21 "$F/bk-n/nobn.weights")
}

# the @NAME value of lwf map -csv's output ($1)
map_of() {
    echo "$1" | awk -F, -v k="@$2" '$1 == k { print $2 }'
}

# column NAME of iteration $3 in CSV log $1
log_value() {
    awk -F, -v c="$2" -v it="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
        $1 == it { print $k }' "$1"
}

@test "lwf train -valid on a detector: lwf map's mAP in the progress and the log, the same weights as without, the chart" {
    write_data "$F/v.data" 5 a "$F/bk-v"
    # stdout apart from stderr (the layer tables)
    "$DARKNET" lwf train "$F/v.data" "$F/nobn.cfg" -seed 3 -valid 12 -backup 12 -quiet > "$F/v.out" 2> "$F/v.err" ||
        { cat "$F/v.err"; return 1; }
    output=$(cat "$F/v.out")
    # the same weights and losses as the run without -valid (setup_file's)
    cmp "$F/bk-n/nobn.weights" "$F/bk-v/nobn.weights"
    diff <(cut -d, -f1,4 "$F/bk-n/nobn.log.csv") <(cut -d, -f1,4 "$F/bk-v/nobn.log.csv")
    [ "$(head -1 "$F/bk-v/nobn.log.csv")" = "iteration,epoch,phase,loss,avg_loss,rate,seconds,images,nobn_loss,nobn_map" ]
    # measured at 12 and 24 only
    [ "$(cut -d, -f10 "$F/bk-v/nobn.log.csv" | grep -c .)" -eq 3 ]
    # the figures are lwf map's on the same weights: the backup of iteration 12, the final ones
    local it w m nonzero=0
    for it in 12 24; do
        w="$F/bk-v/nobn.backup"
        [ $it = 24 ] && w="$F/bk-v/nobn.weights"
        m=$(map_of "$("$DARKNET" lwf map "$F/nobn.cfg" "$w" -data "$F/v.data" -csv 2> /dev/null)" all)
        echo "iteration $it: lwf map $m, log $(log_value "$F/bk-v/nobn.log.csv" nobn_map $it)"
        [ -n "$m" ] && [ "$(log_value "$F/bk-v/nobn.log.csv" nobn_map $it)" = "$m" ]
        assert_contains "$it: valid mAP@0.5 nobn $(printf '%.4f' "$m") (30 images, "
        awk -v m="$m" 'BEGIN { exit !(m > 0) }' && nonzero=1
    done
    [ $nonzero = 1 ] # not a comparison of zeros only
    # with -quiet, stdout holds the -valid lines only
    [ "$(grep -c . "$F/v.out")" -eq 2 ] && [ "$(grep -vc ': valid mAP@0.5 ' "$F/v.out")" -eq 0 ]
    # the chart: the loss, and the mAP panel
    [ "$(head -c 8 "$F/bk-v/nobn.chart.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
    # no valid list: refused before the backup folder is written to
    printf 'classes=5\ntrain=%s/d/a-train.list\nnames=%s/cfg/fashion-det-a.names\nbackup=%s\n' "$F" "$LWF_ROOT" \
        "$F/bk-none" > "$F/none.data"
    run "$DARKNET" lwf train "$F/none.data" "$F/nobn.cfg" -valid 12 -quiet
    [ "$status" -ne 0 ]
    assert_contains "-valid: $F/none.data has no valid= list"
    [ ! -e "$F/bk-none" ]
}

@test "the chart of a detector run without -valid: its loss" {
    [ "$(head -c 8 "$F/bk/det.chart.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
    [ "$(head -c 8 "$F/bk-n/nobn.chart.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}

@test "a resumed detector run ends with the uninterrupted run's weights and losses" {
    write_data "$F/r.data" 5 a "$F/bk-r"
    run "$DARKNET" lwf train "$F/r.data" "$F/det.cfg" -seed 3 -backup 8 -stop 10 -quiet
    [ "$status" -eq 0 ]
    run "$DARKNET" lwf train "$F/r.data" "$F/det.cfg" "$F/bk-r/det.backup" -backup 8 -quiet
    [ "$status" -eq 0 ]
    cmp "$F/bk/det.weights" "$F/bk-r/det.weights"
    diff <(cut -d, -f1,4 "$F/bk/det.log.csv") <(cut -d, -f1,4 "$F/bk-r/det.log.csv")
}

# grown.cfg: det.cfg with ten classes, both heads [lwf_yolo] over the five old ones
grow_setup() {
    sed -e 's/^classes=5$/classes=10\nold_classes=5/' -e 's/^filters=30$/filters=45/' -e 's/^\[yolo\]$/[lwf_yolo]/' \
        -e 's/^max_batches=24/max_batches=3/' "$F/det.cfg" > "$F/grown.cfg"
    write_data "$F/b.data" 5 b "$F/bk-b"
    cat "$LWF_ROOT/cfg/fashion-det-a.names" "$LWF_ROOT/cfg/fashion-det-b.names" > "$F/grown.names"
    printf 'classes=10\nnames=%s/grown.names\nbackup=%s\nold_data=%s/a.data\nnew_data=%s/b.data\n' \
        "$F" "$1" "$F" "$F" > "$F/grown.data"
}

@test "a grown detector trains from the old detector's weights with -method lwf, finetune and joint" {
    for m in lwf finetune joint; do
        grow_setup "$F/bk-g-$m"
        run "$DARKNET" lwf train "$F/grown.data" "$F/grown.cfg" "$F/bk/det.weights" -seed 1 -method $m -quiet
        echo "$output" | tail -3
        [ "$status" -eq 0 ]
        assert_contains "is the old detector: grown to 10 classes" "method $m"
        [ -f "$F/bk-g-$m/grown.weights" ]
        [ "$(wc -l < "$F/bk-g-$m/grown.log.csv")" -eq 4 ]
        if [ $m = lwf ]; then
            assert_contains "teacher online"
            # the old detector, as stock writes it: same size as the one it came from
            [ "$(stat -c %s "$F/bk-g-$m/grown.teacher.weights")" -eq "$(stat -c %s "$F/bk/det.weights")" ]
        else
            assert_contains "teacher none"
        fi
    done
    run "$DARKNET" lwf train "$F/grown.data" "$F/grown.cfg" "$F/bk/det.weights" -teacher record -quiet
    [ "$status" -ne 0 ]
    assert_contains "-teacher record is impossible for a detector"
    grow_setup "$F/bk-g-x"
    sed -i 's/^random=0/random=1/' "$F/grown.cfg"
    run "$DARKNET" lwf train "$F/grown.data" "$F/grown.cfg" -quiet
    [ "$status" -ne 0 ]
    assert_contains "grown.cfg:" "random=1 (stock multi-scale training"
}

@test "lwf map and lwf predict of a grown cfg given the old detector's file: an error that says what to give" {
    grow_setup "$F/bk-g-o"
    img=$(head -1 "$F/d/a-test.list")
    for cmd in "map $F/grown.cfg $F/bk/det.weights -data $F/grown.data" "predict $F/grown.cfg $F/bk/det.weights $img"; do
        run "$DARKNET" lwf $cmd
        [ "$status" -eq 1 ]
        assert_contains "$F/bk/det.weights: holds only the old detector's part of $F/grown.cfg" "give the trained weights"
    done
}

@test "lwf train -valid on a grown detector: mAP over all, old and new classes, as lwf map prints them" {
    # grown from the detector without batch normalisation, which finds boxes after 24 iterations
    grow_setup "$F/bk-gv"
    sed -e 's/^classes=5$/classes=10\nold_classes=5/' -e 's/^filters=30$/filters=45/' -e 's/^\[yolo\]$/[lwf_yolo]/' \
        -e 's/^max_batches=24/max_batches=3/' "$F/nobn.cfg" > "$F/grown.cfg"
    run "$DARKNET" lwf train "$F/grown.data" "$F/grown.cfg" "$F/bk-n/nobn.weights" -seed 1 -method finetune -valid 3 -quiet
    [ "$status" -eq 0 ]
    [ "$(head -1 "$F/bk-gv/grown.log.csv")" = \
        "iteration,epoch,phase,loss,avg_loss,rate,seconds,images,grown_loss,grown_map,grown_map_old,grown_map_new" ]
    local csv k line
    csv=$("$DARKNET" lwf map "$F/grown.cfg" "$F/bk-gv/grown.weights" -data "$F/grown.data" -csv 2> /dev/null)
    line="3: valid mAP@0.5 grown"
    for k in all old new; do
        [ -n "$(map_of "$csv" $k)" ]
        line="$line $k $(printf '%.4f' "$(map_of "$csv" $k)")"
    done
    assert_contains "$line (60 images, "
    echo "$line"
    [ "$(map_of "$csv" old)" != "$(map_of "$csv" new)" ] # not vacuous: old and new apart
    [ "$(log_value "$F/bk-gv/grown.log.csv" grown_map 3)" = "$(map_of "$csv" all)" ]
    [ "$(log_value "$F/bk-gv/grown.log.csv" grown_map_old 3)" = "$(map_of "$csv" old)" ]
    [ "$(log_value "$F/bk-gv/grown.log.csv" grown_map_new 3)" = "$(map_of "$csv" new)" ]
    [ "$(head -c 8 "$F/bk-gv/grown.chart.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}

# the "name: NN%" lines of a `detector test` output
class_lines() {
    grep -E '^[A-Za-z0-9_-]+: [0-9]+%$'
}

@test "lwf predict on a detector: stock detector test's lines, each box's place, the drawn image" {
    local img n
    mkdir "$BATS_TEST_TMPDIR/stock"
    for i in 1 2 3 4; do
        img=$(sed -n ${i}p "$F/d/a-test.list")
        run "$DARKNET" lwf predict "$F/nobn.cfg" "$F/bk-n/nobn.weights" "$img" -data "$F/a.data" -thresh .02 \
            -out "$BATS_TEST_TMPDIR/ours"
        [ "$status" -eq 0 ]
        echo "$output" | class_lines >> "$BATS_TEST_TMPDIR/ours.txt"
        # one box line per detection with a class above the threshold
        [ "$(echo "$output" | grep -c '^box: ')" -le "$(echo "$output" | class_lines | wc -l)" ]
        # stock, in a folder of its own (it may write bad.list into its current folder)
        (cd "$BATS_TEST_TMPDIR/stock" && /usr/bin/darknet detector test "$F/a.data" "$F/nobn.cfg" \
            "$F/bk-n/nobn.weights" "$img" -thresh .02 -out pred 2>/dev/null) | class_lines >> "$BATS_TEST_TMPDIR/stock.txt"
    done
    assert_contains "without labels"
    [ -s "$BATS_TEST_TMPDIR/ours.jpg" ]
    n=$(wc -l < "$BATS_TEST_TMPDIR/ours.txt")
    echo "$n class lines"
    [ "$n" -ge 5 ]
    diff "$BATS_TEST_TMPDIR/ours.txt" "$BATS_TEST_TMPDIR/stock.txt"
    # a classifier refuses the detector's flags
    run "$DARKNET" lwf predict cfg/fashion-lwf.cfg x.weights "$img" -thresh .5
    [ "$status" -eq 2 ]
}

# $1: the CSV of lwf map: header, one line per name of $2, then @old, @new, @all; every AP a
# number in [0, 1] or empty (@old of a plain detector)
check_map_csv() {
    local names=$2 want
    want=$(( $(wc -l < "$names") + 4 ))
    [ "$(echo "$1" | wc -l)" -eq "$want" ]
    [ "$(echo "$1" | head -1)" = "class,ap" ]
    diff <(echo "$1" | sed -n "2,$((want - 3))p" | cut -d, -f1) "$names"
    diff <(echo "$1" | tail -3 | cut -d, -f1) <(printf '@old\n@new\n@all\n')
    echo "$1" | tail -n +2 | awk -F, 'NF != 2 || ($2 != "" && !($2 >= 0 && $2 <= 1)) { exit 1 }'
}

@test "lwf map: per-class VOC AP of a detector, -csv (class,ap; @old, @new, @all)" {
    run "$DARKNET" lwf map "$F/nobn.cfg" "$F/bk-n/nobn.weights" -data "$F/a.data"
    [ "$status" -eq 0 ]
    assert_contains "30 images, IoU > 0.5, thresh 0.005, nms 0.45" "tee" "coat" "mAP all classes"
    run "$DARKNET" lwf map "$F/nobn.cfg" "$F/bk-n/nobn.weights" -data "$F/a.data" -csv
    [ "$status" -eq 0 ]
    check_map_csv "$output" "$LWF_ROOT/cfg/fashion-det-a.names"
    [ "$(echo "$output" | grep -c '^@old,$')" -eq 1 ] # a plain detector has no old classes
    # a grown detector: both valid lists, ten classes, the means over old and new
    grow_setup "$F/bk-map"
    "$DARKNET" lwf train "$F/grown.data" "$F/grown.cfg" "$F/bk/det.weights" -seed 1 -method finetune -quiet \
        > /dev/null 2>&1
    run "$DARKNET" lwf map "$F/grown.cfg" "$F/bk-map/grown.weights" -data "$F/grown.data" -csv
    [ "$status" -eq 0 ]
    check_map_csv "$output" "$F/grown.names"
    [ "$(echo "$output" | grep -c '^@old,0')" -eq 1 ]
    # errors
    run "$DARKNET" lwf map "$F/det.cfg" "$F/bk/det.weights"
    [ "$status" -eq 1 ]
    assert_contains "no [task] data=: give the .data with -data"
    run "$DARKNET" lwf map "$F/det.cfg" "$F/bk/det.weights" -data "$F/a.data" -iou 2
    [ "$status" -eq 2 ]
}

@test "a detector's [task] names it and gives its data=; lwf valid refuses a detector, lwf info lists it" {
    # the [task] right after [net]: no layer (the same weights load), map finds its .data
    sed "0,/^\[convolutional\]/s//[task]\nname=clothes\ndata=$(echo "$F/n.data" | sed 's/[\/&]/\\&/g')\n\n[convolutional]/" \
        "$F/nobn.cfg" > "$F/task.cfg"
    run "$DARKNET" lwf map "$F/task.cfg" "$F/bk-n/nobn.weights" -csv
    [ "$status" -eq 0 ]
    check_map_csv "$output" "$LWF_ROOT/cfg/fashion-det-a.names"
    run "$DARKNET" lwf valid "$F/task.cfg" "$F/bk-n/nobn.weights"
    [ "$status" -ne 0 ]
    refute_crash
    assert_contains "a detector: score it with lwf map"
    run "$DARKNET" lwf info "$F/task.cfg" "$F/bk-n/nobn.weights"
    [ "$status" -eq 0 ]
    assert_contains "task clothes" "5 classes"
}

@test "lwf info on a detector: its one task, no trunk, its [yolo] heads; a grown one's old and new classes" {
    run "$DARKNET" lwf info "$F/det.cfg" "$F/bk/det.weights"
    [ "$status" -eq 0 ]
    assert_contains "22 layers, a detector: one task, no shared trunk" "task det              layers 0-21, 5 classes" \
        "head 1: [yolo] layer 14, 3x3 cells, 3 anchors (mask 3,4,5), after the convolution at layer 13" \
        "head 2: [yolo] layer 21, 6x6 cells, 3 anchors (mask 0,1,2), after the convolution at layer 20" \
        "weights: $(( ($(stat -c %s "$F/bk/det.weights") - 20) / 4 )) floats for the whole model" \
        "loaded $F/bk/det.weights: whole model (seen 192 images)"
    refute_contains "trunk = layers" "old network"
    grow_setup "$F/bk-info"
    run "$DARKNET" lwf info "$F/grown.cfg" "$F/bk/det.weights"
    [ "$status" -eq 0 ]
    assert_contains "task grown            layers 0-21, 10 classes, grown: 5 old + 5 new classes" \
        "head 1: [lwf_yolo] layer 14" "head 2: [lwf_yolo] layer 21" \
        "weights: $(( ($(stat -c %s "$F/bk/det.weights") - 20) / 4 )) floats for the old detector (5 classes)" \
        "$F/bk/det.weights: the old detector (5 classes): lwf train grows it"
}
