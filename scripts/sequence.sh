#!/usr/bin/env bash
# Task sequences: trains T1, then each next task Ti with `lwf init` on the previous cfg
# and `lwf train` by each method, validating every task seen so far after each step.
# Writes the accuracy matrix R[i][j] (top-1 on task j after training task i) per method
# as CSV and prints average accuracy, forgetting and backward transfer side by side.
# Usage: scripts/sequence.sh [-o OUT] [-m "lwf finetune featext joint"] [-s SEED]
#                            [-f FIRST_CFG] [-E EPOCHS_T1] [-e EPOCHS] [-R RATE_T1] [-r RATE]
#                            [-b "METHOD=WARMUP+JOINT ..."] [-W] [data ...]
#   default data: the five two-class Fashion-MNIST tasks cfg/fashion-t{1..5}.data
#   -E  epochs of the first task (from scratch, at FIRST_CFG's own rate unless -R)
#   -e  epochs of warm-up and of joint training on each next task (at rate -r, 0.01)
#   -b  per method, warm-up and joint epochs on each next task instead of -e, e.g.
#       -b "lwf=1+2 finetune=0+3" (0 warm-up epochs: no warm-up)
#   -W  whole batches only: N epochs are floor(N * images / batch) iterations
#       (default: rounded up)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=backup/seq
METHODS="lwf finetune featext joint"
SEED=1
FIRST=cfg/fashion-seq.cfg
E1=2   # epochs on the first task (from scratch, rate 0.1)
E=1    # epochs of warm-up and of joint training on each next task (rate 0.01)
RATE1= # rate of the first task (empty: FIRST's own)
RATE=0.01
BUDGET= # "method=warmup+joint ..." epochs, overriding E per method
ROUNDUP=1
DN=${DARKNET:-./darknet} # the binary under test (tests/run.sh sets DARKNET)
while getopts "o:m:s:f:E:e:R:r:b:W" opt; do
    case $opt in
    o) OUT=$OPTARG ;; m) METHODS=$OPTARG ;; s) SEED=$OPTARG ;; f) FIRST=$OPTARG ;;
    E) E1=$OPTARG ;; e) E=$OPTARG ;; R) RATE1=$OPTARG ;; r) RATE=$OPTARG ;;
    b) BUDGET=$OPTARG ;; W) ROUNDUP=0 ;; *) exit 2 ;;
    esac
done
for b in $BUDGET; do
    [[ $b =~ ^[a-z]+=[0-9]+\+[0-9]+$ ]] || { echo "sequence: -b: '$b' is not METHOD=WARMUP+JOINT (epochs)" >&2; exit 2; }
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
    scripts/prepare_fashion.sh > /dev/null
    set -- cfg/fashion-t1.data cfg/fashion-t2.data cfg/fashion-t3.data cfg/fashion-t4.data cfg/fashion-t5.data
fi
DATA=("$@")
n=${#DATA[@]}
[ "$n" -ge 2 ] || { echo "sequence: need at least two .data files" >&2; exit 2; }
[ -x "$DN" ] || { echo "sequence: build first (make)" >&2; exit 1; }
die() { echo "sequence: $*" >&2; exit 1; }

key() { sed -n "s/^$2=//p" "$1" | head -1; }           # key of a .data file
# a task's name: its .data file's name; a comma would split the matrix's CSV columns
name_of() {
    local b; b=$(basename "$1" .data)
    [[ $b != *[,[:cntrl:]]* ]] || die "$1: a comma or control character in the task name"
    printf '%s\n' "$b"
}
# lit VALUE: VALUE as literal sed replacement text (delimiter #); a newline is refused
lit() {
    [[ $1 != *$'\n'* ]] || die "a newline in '$1'"
    printf '%s' "$1" | sed -e 's/[\\#&]/\\&/g'
}
iters() { # epochs, data file, batch -> iterations (rounded up, or down with -W)
    local list; list=$(key "$2" train)
    [ -f "$list" ] || die "$2: no train list '$list'"
    echo $(( ($1 * $(grep -c . "$list") + ($3 - 1) * ROUNDUP) / $3 ))
}
budget() { # method -> "warm-up joint" epochs on each next task (-b, else -e for both)
    local b; for b in $BUDGET; do [ "${b%%=*}" = "$1" ] && { b=${b#*=}; echo "${b%+*} ${b#*+}"; return; }; done
    echo "$E $E"
}
set_net() { # cfg key value: set a [net] key (added after [net] when absent)
    if grep -q "^$2=" "$1"; then sed -i "s#^$2=.*#$2=$3#" "$1"; else sed -i "0,/^\[net\]/s##[net]\n$2=$3#" "$1"; fi
}
data_copy() { # data backupdir out: the .data with its own backup folder
    mkdir -p "$2"
    sed "s#^backup=.*#backup=$(lit "$2")#" "$1" > "$3"
    grep -q '^backup=' "$3" || echo "backup=$2" >> "$3"
}
pad() { # step -> one empty cell per task not seen yet
    local k; for ((k = $1; k < n; k++)); do printf ','; done
}
valid_row() { # cfg weights -> "acc1,acc2,..." in task order
    $DN lwf valid "$1" "$2" -csv 2>/dev/null | awk -F, 'NR>1{printf "%s%s", (NR>2?",":""), $3}'
}

for d in "${DATA[@]}"; do name_of "$d" > /dev/null; done # every name checked before anything runs
mkdir -p "$OUT/base"
batch=$(sed -n 's/^batch=//p' "$FIRST" | head -1)
# step 1: the first task from scratch, shared by every method
t1=$(name_of "${DATA[0]}")
cfg1=$OUT/base/step1.cfg
sed -e "s#^name=.*#name=$(lit "$t1")#" -e "s#^data=.*#data=$(lit "${DATA[0]}")#" \
    -e "s#^filters=2\$#filters=$(key "${DATA[0]}" classes)#" "$FIRST" > "$cfg1"
set_net "$cfg1" max_batches "$(iters "$E1" "${DATA[0]}" "$batch")"
[ -z "$RATE1" ] || set_net "$cfg1" learning_rate "$RATE1"
data_copy "${DATA[0]}" "$OUT/base/step1" "$OUT/base/step1.data"
w1=$OUT/base/step1/step1.weights
if [ ! -f "$w1" ]; then
    echo "sequence: task 1 ($t1) from scratch..."
    $DN lwf train "$OUT/base/step1.data" "$cfg1" -seed "$SEED" -quiet > "$OUT/base/step1.log" 2>&1 ||
        die "task 1 failed: see $OUT/base/step1.log"
fi
row1=$(valid_row "$cfg1" "$w1")

for m in $METHODS; do
    mdir=$OUT/$m
    mkdir -p "$mdir"
    prev_cfg=$cfg1 prev_w=$w1
    matrix=$mdir/matrix.csv
    { printf "after"; for d in "${DATA[@]}"; do printf ",%s" "$(name_of "$d")"; done; echo
      echo "$t1,$row1$(pad 1)"; } > "$matrix.tmp"
    for ((i = 1; i < n; i++)); do
        d=${DATA[i]} s=$((i + 1))
        cfg=$mdir/step$s.cfg
        $DN lwf init "$prev_cfg" "$d" "$cfg" > /dev/null 2>&1 || die "lwf init failed on $prev_cfg"
        read -r ew ej <<< "$(budget "$m")"
        set_net "$cfg" learning_rate "$RATE"
        set_net "$cfg" warmup_learning_rate "$RATE"
        set_net "$cfg" warmup_batches "$(iters "$ew" "$d" "$batch")"
        set_net "$cfg" max_batches "$(iters "$ej" "$d" "$batch")"
        data_copy "$d" "$mdir/step$s" "$mdir/step$s.data"
        echo "sequence: $m: task $s ($(name_of "$d"))..."
        $DN lwf train "$mdir/step$s.data" "$cfg" "$prev_w" -method "$m" -seed "$SEED" -quiet \
            > "$mdir/step$s.log" 2>&1 || die "$m step $s failed: see $mdir/step$s.log"
        w=$mdir/step$s/step$s.weights
        row=$(valid_row "$cfg" "$w")
        echo "$(name_of "$d"),$row$(pad "$s")" >> "$matrix.tmp"
        prev_cfg=$cfg prev_w=$w
    done
    mv "$matrix.tmp" "$matrix"
done

# average accuracy, forgetting and backward transfer of each matrix: scripts/seq_summary.sh
summary=$OUT/summary.csv
echo "method,avg_accuracy,forgetting,backward_transfer" > "$summary.tmp"
for m in $METHODS; do
    scripts/seq_summary.sh "$m" "$OUT/$m/matrix.csv" >> "$summary.tmp"
done
mv "$summary.tmp" "$summary"
echo
echo "Task sequence of $n tasks, seed $SEED (accuracy matrices in $OUT/<method>/matrix.csv):"
awk -F, 'NR==1{printf "%-10s %14s %12s %18s\n", "method", "avg accuracy", "forgetting", "backward transfer"; next}
         {printf "%-10s %13.2f%% %11.2f%% %17.2f%%\n", $1, $2*100, $3*100, $4*100}' "$summary"
