#!/usr/bin/env bats
# Protocol P4 in small, end to end: an old detector (cfg/fashion-det.cfg, a short schedule)
# trained on task A's Fashion-MNIST detection canvases (scripts/prepare_fashion_det.sh into a
# temp folder, few canvases) grows to ten classes and learns task B, whose training canvases
# also hold unlabelled A items, with -method lwf and -method finetune; lwf map scores the old
# classes on A's test canvases and the new ones on B's.

load helpers

# $1 .data path, $2 classes, $3 valid list, $4 names, $5 backup folder, [$6 train list]
write_data() {
    printf 'classes=%s\nvalid=%s\nnames=%s\nbackup=%s\n' "$2" "$3" "$4" "$5" > "$1"
    [ -z "${6:-}" ] || echo "train=$6" >> "$1"
}

# map_of CFG WEIGHTS DATA KEY: the value of line KEY (@old, @new, @all) of lwf map -csv
map_of() {
    "$DARKNET" lwf map "$1" "$2" -data "$3" -csv 2>/dev/null | awk -F, -v k="$4" '$1 == k { print $2 }'
}

setup_file() {
    [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || return 0
    F=$BATS_FILE_TMPDIR
    cd "$LWF_ROOT" || return 1
    FMNIST_DET_TRAIN=${P4T_TRAIN:-400} FMNIST_DET_TEST=${P4T_TEST:-100} \
        scripts/prepare_fashion_det.sh "$F/d" > "$F/prep.out" 2>&1 || return 0
    local names=$LWF_ROOT/cfg/fashion-det
    write_data "$F/a.data" 5 "$F/d/a-test.list" "$names-a.names" "$F/old" "$F/d/a-train.list"
    write_data "$F/b.data" 5 "$F/d/b-test.list" "$names-b.names" "$F/unused" "$F/d/b-train.list"
    # the old classes on A's test canvases, in the grown detector's ids (0-4 unchanged)
    write_data "$F/a10.data" 10 "$F/d/a-test.list" "$names-all.names" "$F/unused"
    sed -e 's/^batch=32/batch=16/' -e "s/^max_batches=4000/max_batches=${P4T_OLD:-300}/" \
        -e 's/^burn_in=50/burn_in=20/' -e 's/^steps=3000,3600/steps=10000,20000/' "$LWF_ROOT/cfg/fashion-det.cfg" \
        > "$F/old.cfg"
    "$DARKNET" lwf train "$F/a.data" "$F/old.cfg" -seed 1 -quiet > "$F/train.out" 2>&1 || return 0
    # grown as scripts/p4.sh grows it, a shorter schedule at the same rate
    sed -e 's/^classes=5$/classes=10\nold_classes=5/' -e 's/^filters=30$/filters=45/' -e 's/^\[yolo\]$/[lwf_yolo]/' \
        -e "s/^max_batches=.*/max_batches=${P4T_NEW:-100}/" "$F/old.cfg" > "$F/grown.cfg"
    for m in lwf finetune; do
        printf 'classes=10\nnames=%s-all.names\nbackup=%s/%s\nold_data=%s/a.data\nnew_data=%s/b.data\n' \
            "$names" "$F" "$m" "$F" "$F" > "$F/$m.data"
        "$DARKNET" lwf train "$F/$m.data" "$F/grown.cfg" "$F/old/old.weights" -method $m -seed 1 -quiet \
            >> "$F/train.out" 2>&1 || return 0
    done
    touch "$F/.trained"
}

setup() {
    trained_setup
}

@test "P4 in small: LwF keeps the old classes' mAP clearly above fine-tuning's while it learns the new ones" {
    old=$(map_of "$F/old.cfg" "$F/old/old.weights" "$F/a.data" @all)
    lwf_old=$(map_of "$F/grown.cfg" "$F/lwf/grown.weights" "$F/a10.data" @old)
    ft_old=$(map_of "$F/grown.cfg" "$F/finetune/grown.weights" "$F/a10.data" @old)
    lwf_new=$(map_of "$F/grown.cfg" "$F/lwf/grown.weights" "$F/lwf.data" @new)
    ft_new=$(map_of "$F/grown.cfg" "$F/finetune/grown.weights" "$F/finetune.data" @new)
    echo "old detector on A: $old; old classes on A: lwf $lwf_old, finetune $ft_old; new classes: lwf $lwf_new, finetune $ft_new"
    # Measured (seed 1, this schedule, the keys' defaults lambda .75, teacher_new_iou .2): old
    # detector .275; old classes lwf .167, finetune .008; new classes lwf .100, finetune .079
    # (at lambda .5, teacher_new_iou .2 the old classes' gap was .099, at .5 and .5 .17).  Guards: the old detector learned A (>= .2), else
    # there is nothing to forget; the new classes are learned (>= .05, and at least half of
    # fine-tuning's).  Margin: LwF's old classes >= fine-tuning's + .10, where the run gives
    # a gap of .16 and fine-tuning collapses to ~0 (it pushes the unlabelled A items'
    # objectness to 0): .10 leaves room for rounding changes (kernels, thread counts) while a
    # distillation that does nothing (LwF = fine-tuning) fails it.
    awk -v o="$old" -v lo="$lwf_old" -v fo="$ft_old" -v ln="$lwf_new" -v fn="$ft_new" 'BEGIN {
        exit !(o >= 0.2 && lo >= fo + 0.10 && ln >= 0.5 * fn && ln >= 0.05) }'
}
