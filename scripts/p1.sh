#!/usr/bin/env bash
# Protocol P1 on Fashion-MNIST: the old model is cfg/fashion.cfg trained by the stock
# Darknet on task A (classes 0-4, 2 epochs); then task B (classes 5-9) is learned by
# LwF, fine-tuning, feature extraction and joint training (cfg/fashion-lwf.cfg: warm-up
# 1 epoch, joint 2 epochs, rate 0.01, poly 4, T=2, lambda=1).  Prints old/new-task top-1
# side by side, and the same shaped like Table 1 of Li & Hoiem beside the paper's rows.
# The LwF run validates both tasks every VALID iterations (-valid) and draws
# OUT/lwf/fashion-lwf.chart.png.
# Usage: scripts/p1.sh   (env: OUT=backup/p1, SEED=1, TEACHER=record, REUSE_OLD=1, VALID=117)
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
for run in old lwf finetune featext joint; do
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

echo "p1: learning task B: lwf and finetune side by side, then featext and joint..."
train() { # method [flags]
    local m=$1
    shift
    $DN lwf train "$OUT/$m.data" cfg/fashion-lwf.cfg "$old" -method "$m" -teacher "$TEACHER" -seed "$SEED" -clear "$@" \
        > "$OUT/$m/train.log" 2>&1 || { echo "p1: $m failed, see $OUT/$m/train.log" >&2; return 1; }
}
# LwF validates both tasks every half epoch (117 iterations) and draws its chart
train lwf -valid "${VALID:-117}" & p1=$!
train finetune & p2=$!
wait $p1 && wait $p2
train featext & p1=$!
train joint & p2=$!
wait $p1 && wait $p2

echo "p1: LwF's -valid figures while it learned task B (top-1; warm-up to 234, then joint):"
grep ': valid top-1 ' "$OUT/lwf/train.log" | sed 's/^/  /'
echo "p1: its chart (loss and top-1 per task): $OUT/lwf/fashion-lwf.chart.png"

# accuracy: the old model with the stock validator, each run with lwf valid
a_old=$($DN classifier valid cfg/fashion-a.data cfg/fashion.cfg "$old" 2>/dev/null | tail -1 |
        sed -n 's/.*top 1: \([0-9.]*\).*/\1/p')
csv="$OUT/p1.csv"
echo "method,a_top1,b_top1" > "$csv.tmp"
echo "old,$a_old," >> "$csv.tmp"
for m in lwf finetune featext joint; do
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

echo
echo "Shaped like Table 1 of Li & Hoiem (LwF absolute, other methods as differences from LwF):"
awk -F, 'NR==1||NR==2{next} {a[$1]=$2*100; b[$1]=$3*100}
  END{
    printf "%-20s %15s   %15s   %15s\n", "", "Fashion A->B", "ImageNet->CUB", "ImageNet->Scenes"
    printf "%-20s %7s %7s   %7s %7s   %7s %7s\n", "", "old", "new", "old", "new", "old", "new"
    printf "%-20s %7.1f %7.1f   %7.1f %7.1f   %7.1f %7.1f\n", "LwF", a["lwf"], b["lwf"], 54.7, 57.7, 55.9, 64.5
    split("finetune featext joint", ms, " "); split("fine-tuning|feature extraction|joint training", nm, "|")
    split("-3.8 +2.3 +0.6", po, " "); split("-0.7 -5.2 -1.1", pn, " "); split("-2.0 +1.2 +0.5", so, " "); split("-0.8 -3.3 -0.6", sn, " ")
    for (i = 1; i <= 3; i++)
      printf "%-20s %+7.1f %+7.1f   %7s %7s   %7s %7s\n", nm[i], a[ms[i]]-a["lwf"], b[ms[i]]-b["lwf"], po[i], pn[i], so[i], sn[i]
  }' "$csv"
echo "(paper: AlexNet, Table 1 of the ECCV 2016 paper; ours: cfg/fashion-lwf.cfg on Fashion-MNIST)"
