# Helpers for tests/cli/hostile.bats: a tiny synthetic task (8x8 PNGs written by
# build/tests/tools/mkimg), a previous run's backup folder to guard, and the assertion
# every hostile case makes.  Loaded after helpers.bash.
#
# Fixture, built once per file in $BATS_FILE_TMPDIR (FIX):
#   img/t<i>_lblzero.png, img/t<i>_lblone.png   8 training images (4 per class)
#   train.list valid.list labels                 the new task's files (2 classes)
#   old.labels old.data                          the old task (3 classes, valid list only)
#   small.cfg                                    trunk (conv+maxpool), old head, new head
#   zero.weights                                 old network, all zeros (the reference run)
#   old.weights                                  old network, all 0.25 (the hostile runs):
#                                                so a run that rewrites small.teacher.weights
#                                                changes its bytes
#   backup.ref/                                  the backup of a finished reference run
# Each test gets $T (its own folder) with $T/backup = a copy of backup.ref, $T/new.data
# pointing at the fixture's lists and at $T/backup, and WATCH=$T/backup.

MKIMG=${MKIMG:-"$LWF_ROOT/build/tests/tools/mkimg"}
FIX="$BATS_FILE_TMPDIR"

# build_fixture: writes the fixture (see above) and runs the reference training.
build_fixture() {
    [ -x "$MKIMG" ] || {
        echo "no image writer at $MKIMG: run make tools" >&2
        return 1
    }
    mkdir -p "$FIX/img"
    local i l
    : > "$FIX/train.list"
    for i in 0 1 2 3; do
        for l in lblzero lblone; do echo "$FIX/img/t${i}_$l.png" >> "$FIX/train.list"; done
    done
    # shellcheck disable=SC2046
    "$MKIMG" $(cat "$FIX/train.list") || return 1
    cp "$FIX/train.list" "$FIX/valid.list"
    printf 'lblzero\nlblone\n' > "$FIX/labels"
    printf 'lblzero\nlblone\nlbltwo\n' > "$FIX/old.labels"
    printf 'classes=3\nvalid=%s/valid.list\nlabels=%s/old.labels\n' "$FIX" "$FIX" > "$FIX/old.data"
    printf 'classes=2\ntrain=%s/train.list\nvalid=%s/valid.list\nlabels=%s/labels\nbackup=%s/backup.ref\n' \
        "$FIX" "$FIX" "$FIX" "$FIX" > "$FIX/ref.data"
    cat > "$FIX/small.cfg" << EOF
[net]
batch=4
subdivisions=1
height=8
width=8
channels=3
learning_rate=0.01
policy=poly
power=4
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

[task]
name=old
data=$FIX/old.data

[convolutional]
filters=3
size=1
stride=1
pad=1
activation=linear

[avgpool]

[lwf_distill]

[task]
name=new
data=$FIX/ref.data

[convolutional]
filters=2
size=1
stride=1
pad=1
activation=linear

[avgpool]

[softmax]
EOF
    floats_file "$FIX/zero.weights" 139 00000000
    floats_file "$FIX/old.weights" 139 0000803e
    "$DARKNET" lwf train "$FIX/ref.data" "$FIX/small.cfg" "$FIX/zero.weights" -seed 1 -quiet \
        > "$FIX/ref.out" 2>&1 || {
        echo "the reference training failed:" >&2
        cat "$FIX/ref.out" >&2
        return 1
    }
    # the backup folder every train test guards: a finished run, with a resumable backup
    local f
    for f in small.weights small.backup small.backup.state small.teacher.weights small.log.csv small_1.weights; do
        [ -s "$FIX/backup.ref/$f" ] || {
            echo "the reference run left no $f" >&2
            return 1
        }
    done
}

# per-test setup: $T, $T/backup (a copy of the reference backup), $T/new.data, WATCH.
hostile_setup() {
    base_setup || return 1
    T="$BATS_TEST_TMPDIR"
    cp -r "$FIX/backup.ref" "$T/backup"
    WATCH="$T/backup"
    SMALL="$FIX/small.cfg"
    OLDW="$FIX/old.weights"
    new_data "$T/new.data"
}

# new_data PATH [LINE...]: a .data for the new task (backup=$T/backup); with LINEs, those
# lines instead of the default ones.
new_data() {
    local p=$1
    shift
    if [ $# -eq 0 ]; then
        printf 'classes=2\ntrain=%s/train.list\nvalid=%s/valid.list\nlabels=%s/labels\nbackup=%s/backup\n' \
            "$FIX" "$FIX" "$FIX" "$T" > "$p"
    else
        printf '%s\n' "$@" > "$p"
    fi
}

# list_with PATH LINE...: a training list: the fixture's list, then LINEs (so the bad entry
# is at line 9, 10, ...).
list_with() {
    local p=$1
    shift
    { cat "$FIX/train.list"; printf '%s\n' "$@"; } > "$p"
}

# data_with_list LIST: $T/new.data training on LIST.
data_with_list() {
    new_data "$T/new.data" classes=2 "train=$1" "valid=$FIX/valid.list" "labels=$FIX/labels" "backup=$T/backup"
}

# snapshot DIR: every entry under DIR, with a checksum for files (sorted).
snapshot() {
    (
        cd "$1" || exit 1
        find . -mindepth 1 -printf '%y %p\n' | sort
        find . -type f -exec sha256sum {} + | sort -k 2
    )
}

# hostile ARGS...: runs "$DARKNET" ARGS (stderr merged into $output), with $WATCH
# snapshotted before and after, killed after $HOSTILE_TIMEOUT seconds (a hang is a failure:
# status 124).  With HOSTILE_DROP set, output lines matching it are dropped.
HOSTILE_TIMEOUT=${HOSTILE_TIMEOUT:-60}
hostile() {
    [ -d "$WATCH" ] && [ -n "$(ls -A "$WATCH")" ] || {
        echo "hostile: the watched folder $WATCH is missing or empty: the check would be vacuous" >&2
        return 1
    }
    BEFORE=$(snapshot "$WATCH")
    if [ -n "${HOSTILE_DROP:-}" ]; then
        # drop the output lines matching HOSTILE_DROP before bats stores them (a huge layer
        # table would take seconds to split and search); the status is darknet's own
        run env HOSTILE_DROP="$HOSTILE_DROP" timeout "$HOSTILE_TIMEOUT" bash -c \
            '"$0" "$@" 2>&1 | grep -v -e "$HOSTILE_DROP"; exit "${PIPESTATUS[0]}"' "$DARKNET" "$@"
    else
        run timeout "$HOSTILE_TIMEOUT" "$DARKNET" "$@"
    fi
    AFTER=$(snapshot "$WATCH")
}

# assert_unchanged: no file under $WATCH was added, removed or changed by the last
# `hostile` run, and no temporary file was left there.
assert_unchanged() {
    if [ "$BEFORE" != "$AFTER" ]; then
        echo "the command changed $WATCH:" >&2
        diff <(echo "$BEFORE") <(echo "$AFTER") >&2
        echo "--- status $status, output:" >&2
        echo "$output" >&2
        return 1
    fi
    if [ -n "$(find "$WATCH" -name '*.tmp.*')" ]; then
        echo "temporary files left in $WATCH: $(find "$WATCH" -name '*.tmp.*')" >&2
        return 1
    fi
}

# assert_rejected FILE LINE WORD...: the last `hostile` run failed without crashing, its
# output names FILE (as "FILE:LINE:" unless LINE is -) and holds every WORD, and $WATCH is
# unchanged.
assert_rejected() {
    local file=$1 line=$2
    shift 2
    if [ "$status" -eq 124 ]; then
        echo "the command hung: killed after $HOSTILE_TIMEOUT s" >&2
        return 1
    fi
    assert_failed || return 1
    if [ "$line" = - ]; then
        assert_contains "$file" "$@" || return 1
    else
        assert_contains "$file:$line:" "$@" || return 1
    fi
    assert_unchanged
}

# train ARGS...: `hostile lwf train ARGS... -seed 1 -quiet`.
train() {
    hostile lwf train "$@" -seed 1 -quiet
}
