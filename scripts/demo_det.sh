#!/usr/bin/env bash
# A short detection demo (3 min 33 s to 5 min 39 s on a 2-core AMD EPYC, data preparation
# included): protocol P4 (scripts/p4.sh) shortened: the old detector learns task A (classes
# 0-4 of the Fashion-MNIST detection canvases) in 400 iterations, grows to ten classes and
# learns task B (classes 5-9) in 200 with -method lwf and -method finetune; prints the mAP
# table and draws a few test canvases' boxes (old detector, fine-tuning, LwF).  The full
# protocol: scripts/p4.sh.
# Usage: scripts/demo_det.sh   (env: OUT=backup/demo-det; any of p4.sh's settings)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s deps all
OUT=${OUT:-backup/demo-det} OLD_ITERS=${OLD_ITERS:-400} NEW_ITERS=${NEW_ITERS:-200} \
    METHODS=${METHODS:-lwf finetune} exec scripts/p4.sh
