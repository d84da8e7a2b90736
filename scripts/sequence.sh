#!/usr/bin/env bash
# Task sequences: trains T1, then each next task Ti with `lwf init` on the previous cfg
# and `lwf train` by each method, validating every task seen so far after each step.
# Writes the accuracy matrix R[i][j] (top-1 on task j after training task i) per method
# as CSV and prints average accuracy, forgetting and backward transfer side by side.
# With -grow, class-incremental: one head that grows (`lwf init -grow`) by each next
# task's classes, R[i][j] = top-1 on task j's images over all the classes seen so far.
# Usage: scripts/sequence.sh [-grow [-exemplars N]] [-o OUT] [-m "lwf finetune featext joint"]
#                            [-s SEED] [-f FIRST_CFG] [-E EPOCHS_T1] [-e EPOCHS] [-R RATE_T1]
#                            [-r RATE] [-b "METHOD=WARMUP+JOINT ..."] [-W] [data ...]
#   default data: the five two-class Fashion-MNIST tasks cfg/fashion-t{1..5}.data
#   defaults: P2's schedule (scripts/p2.sh): T1 2 epochs at FIRST_CFG's rate (0.1 in
#   cfg/fashion-seq.cfg), then rate 0.01 and -b "lwf=1+2 finetune=0+3 featext=0+3 joint=1+2"
#   -E  epochs of the first task (from scratch, at FIRST_CFG's own rate unless -R)
#   -e  epochs of warm-up and of joint training on each next task, for every method (at
#       rate -r); without -e and -b: P2's budget above
#   -b  per method, warm-up and joint epochs on each next task instead of -e, e.g.
#       -b "lwf=1+2 finetune=0+3" (0 warm-up epochs: no warm-up); a method not named: -e
#       (default 1+2)
#   -W  whole batches only: N epochs are floor(N * images / batch) iterations, at least 1
#       (the default, kept as an option for older command lines)
#   -U  rounded up instead: ceil(N * images / batch) iterations
#   -grow       one grown head ([lwf_softmax]) instead of a head per task; OUT defaults to
#               backup/seq-grow; writes OUT/<method>/average.csv too (top-1 over all the
#               classes seen, after each step, and on the old and new classes); joint trains
#               on every task's images so far
#   -exemplars N  with -grow: N old images per old class (scripts/pick_exemplars.sh on each
#               earlier task's .data, seeded) as the grown task's exemplars= (online teacher)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "sequence: $*" >&2; exit 1; }
# the long options (-grow, -exemplars N) first, then getopts on the rest
GROW=0
EXEMPLARS=0 # old images per old class with -grow (0: none)
rest=()
while [ $# -gt 0 ]; do
    case $1 in
    -grow) GROW=1 ;;
    -exemplars) [ $# -ge 2 ] || { echo "sequence: -exemplars needs N" >&2; exit 2; }
        EXEMPLARS=$2; shift ;;
    --) rest+=("$@"); break ;;
    *) rest+=("$1") ;;
    esac
    shift
done
set -- ${rest[@]+"${rest[@]}"}
[[ $EXEMPLARS =~ ^[0-9]+$ ]] || { echo "sequence: -exemplars: '$EXEMPLARS' is not a count" >&2; exit 2; }
[ "$EXEMPLARS" -eq 0 ] || [ "$GROW" = 1 ] || { echo "sequence: -exemplars goes with -grow" >&2; exit 2; }
OUT=backup/seq
[ "$GROW" = 0 ] || OUT=backup/seq-grow
METHODS="lwf finetune featext joint"
SEED=1
FIRST=cfg/fashion-seq.cfg
E1=2   # epochs on the first task (from scratch, at FIRST's rate: 0.1)
E=     # epochs of warm-up and of joint training on each next task (rate 0.01), every method
RATE1= # rate of the first task (empty: FIRST's own)
RATE=0.01
BUDGET= # "method=warmup+joint ..." epochs, overriding E per method
P2_BUDGET="lwf=1+2 finetune=0+3 featext=0+3 joint=1+2" # without -e and -b
ROUNDUP=0
DN=${DARKNET:-./darknet} # the binary under test (tests/run.sh sets DARKNET)
while getopts "o:m:s:f:E:e:R:r:b:WU" opt; do
    case $opt in
    o) OUT=$OPTARG ;; m) METHODS=$OPTARG ;; s) SEED=$OPTARG ;; f) FIRST=$OPTARG ;;
    E) E1=$OPTARG ;; e) E=$OPTARG ;; R) RATE1=$OPTARG ;; r) RATE=$OPTARG ;;
    b) BUDGET=$OPTARG ;; W) ROUNDUP=0 ;; U) ROUNDUP=1 ;; *) exit 2 ;;
    esac
done
[ -n "$BUDGET" ] || [ -n "$E" ] || BUDGET=$P2_BUDGET
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
iters() { # epochs, data file, batch -> iterations (rounded down, at least 1; up with -U)
    local list k; list=$(key "$2" train)
    [ -f "$list" ] || die "$2: no train list '$list'"
    k=$(( ($1 * $(grep -c . "$list") + ($3 - 1) * ROUNDUP) / $3 ))
    [ "$1" -eq 0 ] || [ "$k" -ge 1 ] || k=1
    echo "$k"
}
budget() { # method -> "warm-up joint" epochs on each next task (-b, else -e for both, else 1+2)
    local b; for b in $BUDGET; do [ "${b%%=*}" = "$1" ] && { b=${b#*=}; echo "${b%+*} ${b#*+}"; return; }; done
    if [ -n "$E" ]; then echo "$E $E"; else echo "1 2"; fi
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
set_task_data() { # cfg out data [exemplars]: the cfg with its last data= set (the grown [task]'s),
    # and exemplars= after it when given
    D=$3 X=${4:-} awk 'NR==FNR{if ($0 ~ /^data=/) last=FNR; next}
        FNR==last{print "data=" ENVIRON["D"]; if (ENVIRON["X"] != "") print "exemplars=" ENVIRON["X"]; next} {print}' \
        "$1" "$1" > "$2.tmp"
    mv "$2.tmp" "$2"
}
grow_row() { # step cfg weights -> "acc1,...,acc_s": top-1 on each task's valid images so far, every
    # image scored against all the grown head's classes (the cfg's .data with one task's valid list)
    local s=$1 ev=${2%.cfg}.eval k acc
    set_task_data "$2" "$ev.cfg" "$ev.data"
    for ((k = 0; k < s; k++)); do
        sed "s#^valid=.*#valid=$(lit "$(key "${DATA[k]}" valid)")#" "${2%.cfg}.data" > "$ev.data"
        acc=$($DN lwf valid "$ev.cfg" "$3" -csv 2>/dev/null | awk -F, 'NR==2{print $3}')
        [ -n "$acc" ] || die "lwf valid failed on $ev.cfg (task $((k + 1))'s images)"
        printf '%s%s' "$([ "$k" -eq 0 ] || echo ,)" "$acc"
    done
}
grow_average() { # cfg weights -> "all,old,new": top-1 over every class seen, its old and new ones
    $DN lwf valid "$1" "$2" -csv 2>/dev/null |
        awk -F, 'NR>1 && $1 !~ /:/{a=$3} $1 ~ /:old$/{o=$3} $1 ~ /:new$/{w=$3}
                 END{if (a == "" || o == "" || w == "") exit 1; print a "," o "," w}' ||
        die "lwf valid gave no TASK, TASK:old and TASK:new rows for $1"
}
grow_inputs() { # method step cfg: the grown step's .data (own backup; joint: every train list so
    # far) and, with -exemplars, N images per class of every earlier task as its exemplars=
    local m=$1 s=$2 cfg=$3 k
    local data=${cfg%.cfg}.data
    data_copy "$data" "${cfg%.cfg}" "$data.tmp" && mv "$data.tmp" "$data"
    if [ "$m" = joint ]; then
        for ((k = 0; k < s; k++)); do cat "$(key "${DATA[k]}" train)"; done > "${cfg%.cfg}.train.list"
        sed -i "s#^train=.*#train=$(lit "${cfg%.cfg}.train.list")#" "$data"
    fi
    [ "$EXEMPLARS" -gt 0 ] || return 0
    for ((k = 0; k < s - 1; k++)); do
        scripts/pick_exemplars.sh "${DATA[k]}" "$EXEMPLARS" "$SEED" || die "pick_exemplars.sh failed on ${DATA[k]}"
    done > "${cfg%.cfg}.exemplars.list"
    set_task_data "$cfg" "$cfg" "$data" "${cfg%.cfg}.exemplars.list"
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

step() { # method step: lwf init (-grow) on the previous step's cfg, lwf train, the matrix row
    local m=$1 s=$2 d=${DATA[$2 - 1]} ew ej teacher=()
    cfg=$mdir/step$s.cfg
    if [ "$GROW" = 1 ]; then
        $DN lwf init "$prev_cfg" "$d" "$cfg" -grow "$prev_data" > /dev/null 2>&1 || die "lwf init -grow failed on $prev_cfg"
        grow_inputs "$m" "$s" "$cfg"
        [ "$EXEMPLARS" -eq 0 ] || teacher=(-teacher online)
    else
        $DN lwf init "$prev_cfg" "$d" "$cfg" > /dev/null 2>&1 || die "lwf init failed on $prev_cfg"
        data_copy "$d" "$mdir/step$s" "$mdir/step$s.data"
    fi
    read -r ew ej <<< "$(budget "$m")"
    set_net "$cfg" learning_rate "$RATE"
    set_net "$cfg" warmup_learning_rate "$RATE"
    set_net "$cfg" warmup_batches "$(iters "$ew" "$d" "$batch")"
    set_net "$cfg" max_batches "$(iters "$ej" "$d" "$batch")"
    echo "sequence: $m: task $s ($(name_of "$d"))..."
    $DN lwf train "$mdir/step$s.data" "$cfg" "$prev_w" -method "$m" -seed "$SEED" ${teacher[@]+"${teacher[@]}"} -quiet \
        > "$mdir/step$s.log" 2>&1 || die "$m step $s failed: see $mdir/step$s.log"
    w=$mdir/step$s/step$s.weights
    if [ "$GROW" = 1 ]; then
        row=$(grow_row "$s" "$cfg" "$w")
        avg=$(grow_average "$cfg" "$w")
        echo "$(name_of "$d"),$s,$(key "$mdir/step$s.data" classes),$avg" >> "$average.tmp"
    else
        row=$(valid_row "$cfg" "$w")
    fi
    echo "$(name_of "$d"),$row$(pad "$s")" >> "$matrix.tmp"
    prev_cfg=$cfg prev_w=$w prev_data=$mdir/step$s.data
}

for m in $METHODS; do
    mdir=$OUT/$m
    mkdir -p "$mdir"
    prev_cfg=$cfg1 prev_w=$w1 prev_data=${DATA[0]}
    matrix=$mdir/matrix.csv average=$mdir/average.csv
    { printf "after"; for d in "${DATA[@]}"; do printf ",%s" "$(name_of "$d")"; done; echo
      echo "$t1,$row1$(pad 1)"; } > "$matrix.tmp"
    [ "$GROW" = 0 ] || { echo "after,step,classes,all,old,new"; echo "$t1,1,$(key "${DATA[0]}" classes),$row1,,"; } > "$average.tmp"
    for ((i = 2; i <= n; i++)); do step "$m" "$i"; done
    mv "$matrix.tmp" "$matrix"
    [ "$GROW" = 0 ] || mv "$average.tmp" "$average"
done

# average accuracy, forgetting and backward transfer of each matrix: scripts/seq_summary.sh
summary=$OUT/summary.csv
echo "method,avg_accuracy,forgetting,backward_transfer" > "$summary.tmp"
for m in $METHODS; do
    scripts/seq_summary.sh "$m" "$OUT/$m/matrix.csv" >> "$summary.tmp"
done
mv "$summary.tmp" "$summary"
echo
if [ "$GROW" = 1 ]; then
    echo "Class-incremental sequence of $n tasks in one grown head$([ "$EXEMPLARS" -eq 0 ] || echo ", $EXEMPLARS old images per class"), seed $SEED"
    echo "(matrices in $OUT/<method>/matrix.csv; top-1 over all classes seen after each step:"
    for m in $METHODS; do
        printf '  %-10s' "$m"; awk -F, 'NR>1{printf " %6.2f", $4*100} END{print ""}' "$OUT/$m/average.csv"
    done
    echo "):"
else
    echo "Task sequence of $n tasks, seed $SEED (accuracy matrices in $OUT/<method>/matrix.csv):"
fi
awk -F, 'NR==1{printf "%-10s %14s %12s %18s\n", "method", "avg accuracy", "forgetting", "backward transfer"; next}
         {printf "%-10s %13.2f%% %11.2f%% %17.2f%%\n", $1, $2*100, $3*100, $4*100}' "$summary"
