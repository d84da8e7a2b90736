#!/usr/bin/env bash
# Protocol P1 on Fashion-MNIST: the old model is cfg/fashion.cfg trained by the stock
# Darknet on task A (classes 0-4, 2 epochs); then task B (classes 5-9) is learned by
# LwF, fine-tuning and feature extraction (cfg/fashion-lwf.cfg: warm-up 1 epoch, joint 2
# epochs, rate 0.01, poly 4, T=2, lambda=1).  Prints old/new-task top-1 side by side.
# Usage: scripts/p1.sh   (env: OUT=backup/p1, SEED=1, TEACHER=record, REUSE_OLD=1)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-backup/p1}
SEED=${SEED:-1}
TEACHER=${TEACHER:-record}
DN=./darknet
start=$(date +%s)

[ -x "$DN" ] || { echo "p1: build first (make)" >&2; exit 1; }
scripts/prepare_fashion.sh >/dev/null
mkdir -p "$OUT"

# one .data per run, so each writes its own backup folder
for run in old lwf finetune featext; do
    task=b; [ "$run" = old ] && task=a
    sed "s#^backup=.*#backup=$OUT/$run#" "cfg/fashion-$task.data" > "$OUT/$run.data"
    mkdir -p "$OUT/$run"
done

old="$OUT/old/fashion.weights"
if [ -f "$old" ] && [ "${REUSE_OLD:-0}" = 1 ]; then
    echo "p1: reusing the old model $old (REUSE_OLD=1)"
else
    echo "p1: training the old model on task A with the stock darknet (2 epochs)..."
    rm -f "$old"
    $DN classifier train "$OUT/old.data" cfg/fashion.cfg > "$OUT/old/train.log" 2>&1
    [ -f "$old" ] || { echo "p1: the stock trainer wrote no $old (see $OUT/old/train.log)" >&2; exit 1; }
fi

echo "p1: learning task B: lwf and finetune side by side, then featext..."
train() { # method
    $DN lwf train "$OUT/$1.data" cfg/fashion-lwf.cfg "$old" -method "$1" -teacher "$TEACHER" -seed "$SEED" -clear \
        > "$OUT/$1/train.log" 2>&1 || { echo "p1: $1 failed, see $OUT/$1/train.log" >&2; return 1; }
}
train lwf & p1=$!
train finetune & p2=$!
wait $p1 && wait $p2
train featext

# accuracy: the old model with the stock validator, each run with lwf valid
a_old=$($DN classifier valid cfg/fashion-a.data cfg/fashion.cfg "$old" 2>/dev/null | tail -1 |
        sed -n 's/.*top 1: \([0-9.]*\).*/\1/p')
csv="$OUT/p1.csv"
echo "method,a_top1,b_top1" > "$csv.tmp"
echo "old,$a_old," >> "$csv.tmp"
for m in lwf finetune featext; do
    $DN lwf valid cfg/fashion-lwf.cfg "$OUT/$m/fashion-lwf.weights" -csv 2>/dev/null |
        awk -F, -v m="$m" '$1=="fashion-a"{a=$3} $1=="fashion-b"{b=$3} END{print m "," a "," b}' >> "$csv.tmp"
done
mv "$csv.tmp" "$csv"

echo
echo "P1 on Fashion-MNIST (task A -> task B), top-1 accuracy in %, seed $SEED, teacher $TEACHER:"
awk -F, 'NR==1{next} NR==2{old=$2*100; printf "%-22s %8s %8s %12s\n", "method", "task A", "task B", "A change";
                          printf "%-22s %8.2f %8s %12s\n", "old model (stock)", old, "-", "-"; next}
         {printf "%-22s %8.2f %8.2f %+12.2f\n", $1, $2*100, $3*100, $2*100-old}' "$csv"
echo "(results in $csv; $(( $(date +%s) - start )) s on $(nproc) cores)"
