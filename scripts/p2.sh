#!/usr/bin/env bash
# Protocol P2 on Fashion-MNIST: five two-class tasks T1 = 0/1 (tee/trouser), T2 = 2/3,
# T3 = 4/5, T4 = 6/7, T5 = 8/9 (cfg/fashion-t1..t5.data). T1: 2 epochs from scratch
# (cfg/fashion-seq.cfg) at rate 0.1, poly 4. Each later task: `lwf init` on the previous
# step's cfg (every head so far becomes old) and `lwf train` with
#   lwf       warm-up 1 epoch + joint 2 epochs,
#   finetune  3 epochs (no warm-up),
#   featext   3 epochs (trunk and old heads frozen throughout),
# all at rate 0.01, poly 4, batch 128, T = 2, lambda = 1 (what `lwf init` writes), seed 1;
# whole batches only (N epochs = floor(N * 12000 / 128) iterations: 93, 187, 281).
# It runs scripts/sequence.sh with these settings (its defaults, given here explicitly so
# that P2 stays P2 if they change), which trains and validates (top-1 on each task's 2000
# test images) and computes the figures below; this script prints them.
#
# Definitions, over T tasks (T = 5), a[i][j] = top-1 on task j after training task i:
#   accuracy matrix   a[i][j], j <= i
#   average accuracy  mean_j a[T][j]
#   forgetting        mean over j < T of ( max_{i<T} a[i][j] - a[T][j] )
#   backward transfer mean over j < T of ( a[T][j] - a[j][j] )
#
# Usage: scripts/p2.sh   (env: OUT=backup/p2, SEED=1, METHODS="lwf finetune featext",
#                         REUSE_T1=1 keeps OUT's T1 model instead of training it again)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-backup/p2}
SEED=${SEED:-1}
METHODS=${METHODS:-lwf finetune featext}
start=$(date +%s)

[ -x ./darknet ] || { echo "p2: build first (make)" >&2; exit 1; }
scripts/prepare_fashion.sh > /dev/null
# a fresh run: the folders sequence.sh writes (it reuses a T1 model it finds)
[ "${REUSE_T1:-0}" = 1 ] || rm -rf "$OUT/base"
for m in $METHODS; do rm -rf "${OUT:?}/$m"; done

scripts/sequence.sh -o "$OUT" -m "$METHODS" -s "$SEED" -f cfg/fashion-seq.cfg -W \
    -E 2 -R 0.1 -r 0.01 -b "lwf=1+2 finetune=0+3 featext=0+3 joint=1+2" \
    cfg/fashion-t1.data cfg/fashion-t2.data cfg/fashion-t3.data cfg/fashion-t4.data cfg/fashion-t5.data

echo
echo "P2 accuracy matrices, top-1 in % (row: after training that task; column: task):"
for m in $METHODS; do
    echo "$m:"
    awk -F, 'NR==1{printf "  %-12s", $1; for(j=2;j<=NF;j++) printf " %11s", $j; print ""; next}
             {printf "  %-12s", $1; for(j=2;j<=NF;j++) printf " %11s", ($j==""?"":sprintf("%.2f", $j*100)); print ""}' \
        "$OUT/$m/matrix.csv"
done
echo
echo "P2 after T5 (from $OUT/summary.csv):"
awk -F, 'NR==1{printf "%-10s %14s %12s %18s\n", "method", "avg accuracy", "forgetting", "backward transfer"; next}
         {printf "%-10s %13.2f%% %11.2f%% %17.2f%%\n", $1, $2*100, $3*100, $4*100}' "$OUT/summary.csv"
echo "(seed $SEED; $(( $(date +%s) - start )) s on $(nproc) cores)"
