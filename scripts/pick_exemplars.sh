#!/usr/bin/env bash
# Picks N images per class from an old task's train list (its .data's train= and labels=),
# for a grown head's [task] exemplars=: the first N of each class in a seeded shuffle.
# A path's class is the label it contains (Darknet's rule); a path with none is skipped.
# Usage: scripts/pick_exemplars.sh <old.data> <N> [seed] > exemplars.list
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 <old.data> <N per class> [seed] > out.list" >&2; exit 2; }
data=$1 n=$2 seed=${3:-1}
case $n in ''|*[!0-9]*) echo "pick_exemplars: N must be a positive integer, got '$n'" >&2; exit 2;; esac
[ "$n" -ge 1 ] || { echo "pick_exemplars: N must be >= 1" >&2; exit 2; }
key() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$data" | tail -1; }
train=$(key train) labels=$(key labels)
[ -r "$train" ] || { echo "pick_exemplars: $data: train list '$train' not readable" >&2; exit 1; }
[ -r "$labels" ] || { echo "pick_exemplars: $data: labels '$labels' not readable" >&2; exit 1; }
# a seeded shuffle, then the first n paths of each label (in the labels file's order)
awk -v seed="$seed" 'BEGIN{srand(seed)} NF{printf "%.12f\t%s\n", rand(), $0}' "$train" | sort -k1,1 | cut -f2- |
awk -v n="$n" 'NR==FNR{if (NF) lab[++nl]=$0; next}
    {for (i = 1; i <= nl; i++) if (index($0, lab[i])) {hit = i; c++}
     if (c == 1 && got[hit] < n) {got[hit]++; out[hit] = out[hit] $0 "\n"} c = 0}
    END{for (i = 1; i <= nl; i++) {printf "%s", out[i];
        if (got[i] < n) printf "pick_exemplars: label %s has only %d images\n", lab[i], got[i] > "/dev/stderr"}}' "$labels" -
