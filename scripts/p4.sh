#!/usr/bin/env bash
# Protocol P4: adding classes to a YOLO detector without its old data, on the Fashion-MNIST
# detection sets (scripts/prepare_fashion_det.sh: 96x96 canvases of 1-4 items).  The old
# detector is cfg/fashion-det.cfg trained on task A (classes 0-4) with lwf train; it grows to
# ten classes ([lwf_yolo], old_classes=5) and learns task B (classes 5-9, whose training
# canvases also hold unlabelled A items) with -method lwf, finetune and joint (A's labels too:
# the upper bound).  lwf map (AP at IoU .5) over A's and B's test canvases: the old classes,
# the new ones, all; the old detector's own mAP on A; pictures of a few test canvases holding
# both tasks' items, with the old detector's, fine-tuning's and LwF's boxes.
# Usage: scripts/p4.sh   (env: OUT=backup/p4, SEED=1, OLD_ITERS, NEW_ITERS, NEW_RATE,
#        REUSE_OLD=1 keeps an old detector already in OUT, REUSE_NEW=1 keeps each method's
#        run already in OUT (trained with the same grown cfg), METHODS="lwf finetune joint",
#        GROWN_KEYS="lambda_obj=.5 ..." extra [lwf_yolo] keys (a sweep), PICS=4, DARKNET=./darknet)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-backup/p4}
SEED=${SEED:-1}
OLD_ITERS=${OLD_ITERS:-1200}
NEW_ITERS=${NEW_ITERS:-1200}
NEW_RATE=${NEW_RATE:-0.005}
METHODS=${METHODS:-lwf finetune joint}
GROWN_KEYS=${GROWN_KEYS:-}
PICS=${PICS:-4}
DN=${DARKNET:-./darknet}
start=$(date +%s)
die() { echo "p4: error: $*" >&2; exit 1; }
[ -x "$DN" ] || die "build first (make)"
for v in SEED OLD_ITERS NEW_ITERS PICS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v '${!v}' is not a number"
done
scripts/prepare_fashion_det.sh > /dev/null
mkdir -p "$OUT/old"

# schedule CFG ITERS RATE: cfg/fashion-det.cfg's schedule scaled to ITERS iterations (steps
# at 3/4 and 11/12 of the run), at learning rate RATE
schedule() {
    local s1=$(($2 * 3 / 4)) s2=$(($2 * 11 / 12))
    sed -e "s/^max_batches=.*/max_batches=$2/" -e "s/^steps=.*/steps=$s1,$s2/" \
        -e "s/^learning_rate=.*/learning_rate=$3/" "$1"
}

# grown_cfg OLD.CFG: the old detector grown to A's and B's classes on stdout: each [yolo]
# becomes [lwf_yolo] with classes=10, old_classes=5 (and GROWN_KEYS), the convolution before
# it filters=(10+5)*3=45.  (lwf init -grow writes the same, with a [task] naming its .data.)
grown_cfg() {
    local keys=""
    for kv in $GROWN_KEYS; do keys="$keys\\n$kv"; done
    sed -e "s/^classes=5\$/classes=10\\nold_classes=5$keys/" -e 's/^filters=30$/filters=45/' \
        -e 's/^\[yolo\]$/[lwf_yolo]/' "$1"
}

# grown_data BACKUP: the grown detector's .data (names old then new; B's ids shifted by 5)
grown_data() {
    printf 'classes=10\nnames=cfg/fashion-det-all.names\nbackup=%s\nold_data=cfg/fashion-det-a.data\nnew_data=cfg/fashion-det-b.data\n' "$1"
}

# map_csv CFG WEIGHTS DATA: "old,new,all" mAP (%) from lwf map -csv
map_csv() {
    $DN lwf map "$1" "$2" -data "$3" -csv 2>/dev/null |
        awk -F, '$1=="@old"{o=$2} $1=="@new"{n=$2} $1=="@all"{a=$2}
                 function p(v) { return v == "" ? "" : sprintf("%.1f", 100 * v) }
                 END { print p(o) "," p(n) "," p(a) }'
}

# --- the old detector on A -----------------------------------------------------------------
old_cfg="$OUT/old/det.cfg"
old="$OUT/old/det.weights"
schedule cfg/fashion-det.cfg "$OLD_ITERS" 0.005 > "$old_cfg.new"
sed "s#^backup=.*#backup=$OUT/old#" cfg/fashion-det-a.data > "$OUT/old/a.data"
if [ "${REUSE_OLD:-0}" = 1 ] && [ -f "$old" ] && cmp -s "$old_cfg" "$old_cfg.new"; then
    rm -f "$old_cfg.new"
    echo "p4: reusing the old detector $old (REUSE_OLD=1)"
else
    mv -f "$old_cfg.new" "$old_cfg"
    echo "p4: training the old detector on A ($OLD_ITERS iterations of 32 canvases)..."
    rm -f "$old"
    t0=$(date +%s)
    $DN lwf train "$OUT/old/a.data" "$old_cfg" -seed "$SEED" -clear -quiet > "$OUT/old/train.log" 2>&1 ||
        die "training the old detector failed (see $OUT/old/train.log)"
    echo "p4: old detector trained in $(($(date +%s) - t0)) s"
fi

# --- grow it and learn B ---------------------------------------------------------------------
cfg="$OUT/grown.cfg"
schedule "$old_cfg" "$NEW_ITERS" "$NEW_RATE" | grown_cfg /dev/stdin > "$cfg"
for m in $METHODS; do
    mkdir -p "$OUT/$m"
    grown_data "$OUT/$m" > "$OUT/$m.data"
    if [ "${REUSE_NEW:-0}" = 1 ] && [ -f "$OUT/$m/grown.weights" ] && cmp -s "$cfg" "$OUT/$m/trained.cfg"; then
        echo "p4: reusing the $m run in $OUT/$m (REUSE_NEW=1)"
        continue
    fi
    echo "p4: learning B with -method $m ($NEW_ITERS iterations at rate $NEW_RATE)..."
    rm -f "$OUT/$m/trained.cfg"
    t0=$(date +%s)
    $DN lwf train "$OUT/$m.data" "$cfg" "$old" -method "$m" -seed "$SEED" -clear -quiet > "$OUT/$m/train.log" 2>&1 ||
        die "-method $m failed (see $OUT/$m/train.log)"
    cp "$cfg" "$OUT/$m/trained.cfg"
    echo "p4: $m trained in $(($(date +%s) - t0)) s"
done

# --- the table -------------------------------------------------------------------------------
# old on A: the old classes on A's test canvases alone (for the grown detector, a .data with
# its ten names and A's list: ids 0-4 are the same); old, new, all: lwf map of the grown .data
# (A's and B's test canvases); the old detector on both lists scores its five classes there
printf 'classes=10\nvalid=data/fmnist-det/a-test.list\nnames=cfg/fashion-det-all.names\n' > "$OUT/a10.data"
cat data/fmnist-det/a-test.list data/fmnist-det/b-test.list > "$OUT/ab-test.list"
printf 'classes=5\nvalid=%s\nnames=cfg/fashion-det-a.names\n' "$OUT/ab-test.list" > "$OUT/old/ab.data"
csv="$OUT/p4.csv"
echo "run,old on A,old,new,all" > "$csv.tmp"
a=$(map_csv "$old_cfg" "$old" "$OUT/old/a.data" | cut -d, -f3)
ab=$(map_csv "$old_cfg" "$old" "$OUT/old/ab.data" | cut -d, -f3)
echo "old detector,$a,$ab,," >> "$csv.tmp"
for m in $METHODS; do
    a=$(map_csv "$cfg" "$OUT/$m/grown.weights" "$OUT/a10.data" | cut -d, -f1)
    echo "$m,$a,$(map_csv "$cfg" "$OUT/$m/grown.weights" "$OUT/$m.data")" >> "$csv.tmp"
done
mv -f "$csv.tmp" "$csv"

# --- pictures: test canvases with items of both tasks ----------------------------------------
# (all-test: A's and B's items; the first PICS canvases holding at least one of each)
mkdir -p "$OUT/pics"
pics=()
while read -r img && ((${#pics[@]} < PICS)); do
    lab=${img/images/labels}; lab=${lab%.png}.txt
    awk '$1 < 5 { a = 1 } $1 >= 5 { b = 1 } END { exit !(a && b) }' "$lab" && pics+=("$img")
done < data/fmnist-det/all-test.list
# boxes_png IMG NAMES OUT: IMG twice its size with the boxes of lwf predict's "box:" lines
# (stdin) drawn in a colour per class (the names' order), into OUT (ImageMagick's convert;
# Darknet's own drawing is 0 pixels wide on a 96-pixel image)
palette=(red lime blue yellow magenta cyan orange white deepskyblue greenyellow)
boxes_png() {
    local draw=() name l t r b k
    while read -r _ name _ _ l _ t _ r _ b _; do
        k=$(grep -nx -- "$name" "$2" | cut -d: -f1)
        draw+=(-stroke "${palette[$(((${k:-1} - 1) % 10))]}" -draw "rectangle $((2 * l)),$((2 * t)) $((2 * r)),$((2 * b))")
    done < <(grep '^box: ')
    convert "$1" -filter point -resize 200% -fill none -strokewidth 2 "${draw[@]}" "$3"
}
rows=()
for img in "${pics[@]}"; do
    n=$(basename "$img" .png)
    for m in old finetune lwf; do
        if [ $m = old ]; then c=$old_cfg w=$old d=$OUT/old/a.data names=cfg/fashion-det-a.names
        else c=$cfg w=$OUT/$m/grown.weights d=$OUT/$m.data names=cfg/fashion-det-all.names; fi
        [ -f "$w" ] || continue
        $DN lwf predict "$c" "$w" "$img" -data "$d" -thresh .3 -out "$OUT/pics/$n-$m" > "$OUT/pics/$n-$m.txt" 2>&1 ||
            die "lwf predict failed on $img (see $OUT/pics/$n-$m.txt)"
        if command -v convert > /dev/null; then
            boxes_png "$img" "$names" "$OUT/pics/$n-$m.png" < "$OUT/pics/$n-$m.txt"
            rows+=("$OUT/pics/$n-$m.png")
        fi
    done
done
if command -v montage > /dev/null && ((${#rows[@]})); then
    cols=$((${#rows[@]} / ${#pics[@]}))
    montage "${rows[@]}" -tile "${cols}x" -geometry +4+4 "$OUT/p4-boxes.png"
    echo "p4: pictures in $OUT/p4-boxes.png (rows: canvases; columns: old detector, finetune, lwf)"
else
    echo "p4: pictures in $OUT/pics/ (ImageMagick's convert and montage would draw and combine them)"
fi

echo
echo "P4: mAP (%) at IoU .5; old = classes 0-4 (on A's test canvases, and on A's and B's), new = 5-9"
column -t -s, "$csv"
echo "p4: $(($(date +%s) - start)) s in all; the table is $csv"
