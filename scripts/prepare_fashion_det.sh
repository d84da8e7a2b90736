#!/usr/bin/env bash
# prepare_fashion_det.sh: turns Debian's Fashion-MNIST (dataset-fashion-mnist) into Darknet
# detection data: 96x96 grayscale canvases, each holding 1-4 items scaled to 20-56 px (their
# 28x28 frame) at random places (overlap of two items' boxes <= 20 % of the smaller), drawn
# with max blending on a dark noisy background (pixels 0-15); an item's box is the tight box of
# its scaled pixels >= 40, so boxes are tight and every bright pixel lies in some item's box.
# Usage: scripts/prepare_fashion_det.sh [OUT]   (default data/fmnist-det; relative to the
#        repo root).  Env: FMNIST_DET_TRAIN (canvases per training set, default 5000),
#        FMNIST_DET_TEST (per test set, default 1000), FMNIST_DET_SEED (default 1),
#        FMNIST_SRC (Fashion-MNIST folder).  The same settings give the same files.
#
# Sets (training sets from Fashion-MNIST's train split, test sets from its test split):
#   a-train, a-test      task A: classes 0-4 (tee trouser pullover dress coat), ids 0-4
#   b-train              task B: classes 5-9 (sandal shirt sneaker bag boot), ids 0-4 of
#                        cfg/fashion-det-b.names; in half its canvases also 1-2 items of
#                        classes 0-4, unlabelled (the old task's objects, as in a real new task)
#   b-test               task B, B items only
#   all-train, all-test  all ten classes, ids 0-9 (A's names then B's): a grown detector's
#                        evaluation, and joint training as a reference
# Layout under OUT: images/SET/SET-NNNNN.png, labels/SET/SET-NNNNN.txt (Darknet finds it by
# replacing "images" with "labels" and ".png" with ".txt": "class x y w h" per box, relative),
# SET.list (the images), SET.manifest (every item: canvas, item, source index, Fashion-MNIST
# class, id or -1 when unlabelled, pixel box x0 y0 x1 y1, x1 and y1 exclusive).
# Each set is checked after it is written (build/fmnist2det verify): labels against the
# manifest, boxes against the pixels.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=${FMNIST_SRC:-/usr/share/datasets/fashion-mnist}
OUT=${1:-data/fmnist-det}
NTRAIN=${FMNIST_DET_TRAIN:-5000}
NTEST=${FMNIST_DET_TEST:-1000}
SEED=${FMNIST_DET_SEED:-1}
BIN=build/fmnist2det
CFLAGS=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow
        -Wmissing-prototypes -Werror -O2)
# set  split  labelled classes (ids = class - first)  unlabelled classes  classes in .data
SETS=("a-train train 0-4 - 5" "a-test test 0-4 - 5"
      "b-train train 5-9 0-4 5" "b-test test 5-9 - 5"
      "all-train train 0-9 - 10" "all-test test 0-9 - 10")

die() { echo "prepare_fashion_det: error: $*" >&2; exit 1; }

TMPS=()
cleanup() { if ((${#TMPS[@]})); then rm -f -- "${TMPS[@]}"; fi; }
trap cleanup EXIT

# Writes stdin to $1 via a temp file in the same directory, then renames.
atomic_write() {
    local tmp="$1.tmp.$$"
    TMPS+=("$tmp")
    cat >"$tmp"
    mv -f -- "$tmp" "$1"
}

# --- check the settings and OUT ---------------------------------------------------------
for v in NTRAIN NTEST SEED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v '${!v}' is not a number"
done
((NTRAIN >= 1 && NTRAIN <= 99999 && NTEST >= 1 && NTEST <= 99999)) ||
    die "canvas counts must be in 1..99999 (FMNIST_DET_TRAIN=$NTRAIN FMNIST_DET_TEST=$NTEST)"
while [[ $OUT == ./* ]]; do OUT=${OUT#./}; done
while [[ $OUT == */ && $OUT != / ]]; do OUT=${OUT%/}; done
[[ -n $OUT && $OUT != . && $OUT != / ]] || die "bad OUT '$OUT'"
# Darknet's .data parser strips all whitespace from each line.
[[ $OUT != *[[:space:]]* ]] || die "OUT '$OUT' contains whitespace; Darknet's .data parser cannot handle that"
# Darknet finds a label file by replacing the first "images", "JPEGImages", "raw" and image
# extension of the image path: none may occur in OUT itself.
for w in images JPEGImages raw .jpg .png .JPG .JPEG; do
    [[ $OUT != *"$w"* ]] || die "OUT '$OUT' contains '$w'; Darknet's label path rule would rewrite it"
done

# --- build the generator -----------------------------------------------------------------
if [[ ! -x $BIN || scripts/fmnist2det.c -nt $BIN ]]; then
    mkdir -p build
    TMPS+=("$BIN.tmp.$$")
    cc "${CFLAGS[@]}" -o "$BIN.tmp.$$" scripts/fmnist2det.c -lz -lstb -lm ||
        die "building $BIN failed (needs packages zlib1g-dev libstb-dev)"
    mv -f -- "$BIN.tmp.$$" "$BIN"
fi

# --- generate and verify (skipped when OUT holds these settings' sets) ---------------------
stamp="fmnist2det $(sha256sum <scripts/fmnist2det.c | cut -c1-16) train=$NTRAIN test=$NTEST seed=$SEED"
complete=1
[[ -f $OUT/.done && $(<"$OUT/.done") == "$stamp" ]] || complete=0
for s in "${SETS[@]}"; do
    read -r set _ <<<"$s"
    [[ -f $OUT/$set.list && -f $OUT/$set.manifest ]] || complete=0
done
if ((complete)); then
    echo "prepare_fashion_det: sets already made in $OUT (remove $OUT/.done to redo)" >&2
else
    for f in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
        [[ -r $SRC/$f-ubyte.gz ]] ||
            die "missing $SRC/$f-ubyte.gz (install package dataset-fashion-mnist or set FMNIST_SRC)"
    done
    rm -f -- "$OUT/.done"
    for s in "${SETS[@]}"; do
        read -r set split lab extra classes <<<"$s"
        if [[ $split == train ]]; then pre=train n=$NTRAIN; else pre=t10k n=$NTEST; fi
        # leftovers of earlier runs (other counts) must not stay beside the new set
        rm -rf -- "${OUT:?}/images/$set" "${OUT:?}/labels/$set"
        mkdir -p "$OUT/images/$set" "$OUT/labels/$set"
        "$BIN" gen "$SRC/$pre-images-idx3-ubyte.gz" "$SRC/$pre-labels-idx1-ubyte.gz" \
            "$OUT" "$set" "$n" "$SEED" "$lab" "$extra"
        "$BIN" verify "$OUT" "$set" "$classes" >&2
    done
    echo "$stamp" | atomic_write "$OUT/.done"
fi

# --- .data files ----------------------------------------------------------------------------
# names A, B, all; cfg/fashion-det-{a,b,all}.data (tracked) describe the default location
for t in a b all; do
    mkdir -p "backup/fashion-det-$t"
    [[ $OUT == data/fmnist-det ]] && continue
    classes=5
    [[ $t == all ]] && classes=10
    atomic_write "$OUT/fashion-det-$t.data" <<EOF
classes=$classes
train=$OUT/$t-train.list
valid=$OUT/$t-test.list
names=cfg/fashion-det-$t.names
backup=backup/fashion-det-$t
results=backup/fashion-det-$t
EOF
done

if [[ $OUT == data/fmnist-det ]]; then
    echo "prepare_fashion_det: done; .data files are cfg/fashion-det-{a,b,all}.data" >&2
else
    echo "prepare_fashion_det: done; .data files are $OUT/fashion-det-{a,b,all}.data" >&2
fi
for s in "${SETS[@]}"; do
    read -r set _ <<<"$s"
    printf '%-32s %6d\n' "$OUT/$set.list" "$(wc -l <"$OUT/$set.list")"
done
