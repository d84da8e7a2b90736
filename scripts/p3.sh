#!/usr/bin/env bash
# Protocol P3 on Fashion-MNIST, class-incremental: the old model is cfg/fashion.cfg trained by
# the stock Darknet on task A (classes 0-4, 2 epochs, as in P1); its head grows to ten classes
# (lwf init -grow) and learns B's images (classes 5-9): warm-up 1 epoch (new rows only) + joint
# 2 epochs at rate 0.01, poly 4, T = 2, lambda = 1, no augmentation.  Top-1 over all ten
# classes on the 10,000 test images, and on A's and B's, for lwf, finetune, featext and joint
# (all labels: the upper bound), each without and with N old images per old class
# (scripts/pick_exemplars.sh), with the bias correction (weight aligning) on and off; and P1's
# multi-head LwF model (cfg/fashion-lwf.cfg, a head per task) answered task-agnostically
# (lwf valid -merged: the heads calibrated on B's training images; with -calib 0 the more
# confident head's class, uncalibrated).
# Usage: scripts/p3.sh   (env: OUT=backup/p3, SEED=1, PER_CLASS=20, REUSE_OLD=1, JOBS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-backup/p3}
SEED=${SEED:-1}
PER=${PER_CLASS:-20}
JOBS=${JOBS:-2}
DN=./darknet
start=$(date +%s)
[ -x "$DN" ] || { echo "p3: build first (make)" >&2; exit 1; }
scripts/prepare_fashion.sh >/dev/null
mkdir -p "$OUT/old"

old="$OUT/old/fashion.weights"
sed "s#^backup=.*#backup=$OUT/old#" cfg/fashion-a.data > "$OUT/old.data"
if [ -f "$old" ] && [ "${REUSE_OLD:-0}" = 1 ]; then
    echo "p3: reusing the old model $old (REUSE_OLD=1)"
else
    echo "p3: training the old model on task A with the stock darknet (2 epochs)..."
    rm -f "$old"
    $DN classifier train "$OUT/old.data" cfg/fashion.cfg > "$OUT/old/train.log" 2>&1
    [ -f "$old" ] || { echo "p3: the stock trainer wrote no $old (see $OUT/old/train.log)" >&2; exit 1; }
fi

# the grown cfg: P1's schedule (rate 0.01 in both phases, no flip)
cfg="$OUT/fashion-all.cfg"
$DN lwf init cfg/fashion.cfg cfg/fashion-b.data "$cfg" -grow cfg/fashion-a.data > /dev/null
sed -i -e 's/^learning_rate=.*/learning_rate=0.01/' -e 's/^warmup_learning_rate=.*/warmup_learning_rate=0.01/' \
       -e 's/^max_crop=28$/max_crop=28\nflip=0/' "$cfg"
scripts/pick_exemplars.sh cfg/fashion-a.data "$PER" "$SEED" > "$OUT/exemplars.list"
# with exemplars the correction is off by default: on here, so that each run keeps both
# (<cfg>.uncorrected.weights is the default's answer)
sed -e "s#^data=\(.*\)#data=\1\nexemplars=$OUT/exemplars.list#" -e 's/^\[lwf_softmax\]$/[lwf_softmax]\nbias_correction=1/' \
    "$cfg" > "$OUT/fashion-all-ex.cfg"
grep -q '^bias_correction=1$' "$OUT/fashion-all-ex.cfg" || { echo "p3: no [lwf_softmax] in $cfg" >&2; exit 1; }
# joint: every label, A's and B's training images
cat data/fmnist/a.train.list data/fmnist/b.train.list > "$OUT/all.train.list"

runs="lwf finetune featext joint lwf-ex finetune-ex featext-ex"
for r in $runs; do
    mkdir -p "$OUT/$r"
    sed "s#^backup=.*#backup=$OUT/$r#" "$OUT/fashion-all.data" > "$OUT/$r.data"
done
sed -i "s#^train=.*#train=$OUT/all.train.list#" "$OUT/joint.data"
mkdir -p "$OUT/multihead"
sed "s#^backup=.*#backup=$OUT/multihead#" cfg/fashion-b.data > "$OUT/multihead.data"
runs="$runs multihead"

train() { # run
    local r=$1 m=${1%-ex} c=$cfg teacher=record
    case $r in *-ex) c="$OUT/fashion-all-ex.cfg"; teacher=online;; multihead) c=cfg/fashion-lwf.cfg m=lwf;; esac
    $DN lwf train "$OUT/$r.data" "$c" "$old" -method "$m" -teacher "$teacher" -seed "$SEED" -clear \
        > "$OUT/$r/train.log" 2>&1 || { echo "p3: $r failed, see $OUT/$r/train.log" >&2; return 1; }
}
echo "p3: learning B's classes in one grown head: $runs ($JOBS at a time)..."
set -- $runs
while [ $# -gt 0 ]; do
    pids=""
    for _ in $(seq "$JOBS"); do [ $# -gt 0 ] && { train "$1" & pids="$pids $!"; shift; }; done
    for p in $pids; do wait "$p"; done
done

csv="$OUT/p3.csv"
echo "run,correction,all,a,b" > "$csv.tmp"
for r in $runs; do
    if [ "$r" = multihead ]; then
        for calib in "" "-calib 0"; do
            $DN lwf valid cfg/fashion-lwf.cfg "$OUT/multihead/fashion-lwf.weights" -merged $calib -csv 2>/dev/null |
                awk -F, -v c="${calib:+uncalib.}" '$1=="all"{print "multihead (merged)," (c ? c : "calibrated") "," $3 ",,"}' >> "$csv.tmp"
        done
        continue
    fi
    c=$cfg; case $r in *-ex) c="$OUT/fashion-all-ex.cfg";; esac
    stem=$(basename "$c" .cfg)
    for corr in off on; do
        w="$OUT/$r/$stem.weights"; [ $corr = off ] && w="$OUT/$r/$stem.uncorrected.weights"
        $DN lwf valid "$c" "$w" -csv 2>/dev/null |
            awk -F, -v r="$r" -v c=$corr '$1 ~ /:old$/{a=$3} $1 ~ /:new$/{b=$3} $1 !~ /:/ && NR>1{t=$3}
                                          END{print r "," c "," t "," a "," b}' >> "$csv.tmp"
    done
done
mv "$csv.tmp" "$csv"

echo
echo "P3 on Fashion-MNIST (A = classes 0-4, then B = 5-9 in one ten-class head), top-1 in %, seed $SEED:"
printf "%-24s %-10s %8s %8s %8s\n" "method" "correction" "all ten" "A" "B"
awk -F, -v per="$PER" 'NR>1{n=$1; sub(/-ex$/, " + " per "/class", n);
    a = $4 == "" ? "-" : sprintf("%.2f", $4*100); b = $5 == "" ? "-" : sprintf("%.2f", $5*100)
    printf "%-24s %-10s %8.2f %8s %8s\n", n, $2, $3*100, a, b}' "$csv"
echo "(results in $csv; $(( $(date +%s) - start )) s on $(nproc) cores)"
echo "Reference (independent PyTorch implementation, P3): no old images 44.0 (A 0.0, B 88.0);"
echo "  20 old images per class: LwF 62.1 (A 37.4, B 86.8), fine-tuning 61.2;"
echo "  multi-head answered task-agnostically: concatenated logits 29.6, more confident head 39.4."
