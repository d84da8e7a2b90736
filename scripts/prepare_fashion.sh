#!/usr/bin/env bash
# prepare_fashion.sh: turns Debian's Fashion-MNIST (dataset-fashion-mnist) into
# Darknet classifier data: PNGs plus list/label/.data files for tasks a, b, t1..t5.
# Usage: scripts/prepare_fashion.sh [OUT]   (OUT is relative to the repo root; default data/fmnist)
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=${FMNIST_SRC:-/usr/share/datasets/fashion-mnist}
OUT=${1:-data/fmnist}
BIN=build/fmnist2png
CFLAGS=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow
        -Wmissing-prototypes -Werror -O2)
NAMES=(tee trouser pullover dress coat sandal shirt sneaker bag boot)
TASKS=(a b t1 t2 t3 t4 t5)
declare -A CLASSES=([a]="0 1 2 3 4" [b]="5 6 7 8 9" [t1]="0 1" [t2]="2 3"
                    [t3]="4 5" [t4]="6 7" [t5]="8 9")
TRAIN_PER_CLASS=6000
TEST_PER_CLASS=1000

die() { echo "prepare_fashion: error: $*" >&2; exit 1; }

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

# --- normalise and check OUT -------------------------------------------------
while [[ $OUT == ./* ]]; do OUT=${OUT#./}; done
while [[ $OUT == */ && $OUT != / ]]; do OUT=${OUT%/}; done
[[ -n $OUT && $OUT != . && $OUT != / ]] || die "bad OUT '$OUT'"
# Darknet's .data parser strips all whitespace from each line.
[[ $OUT != *[[:space:]]* ]] || die "OUT '$OUT' contains whitespace; Darknet's .data parser cannot handle that"

TR=$OUT/images/train
TE=$OUT/images/test

# Darknet finds an image's class by strstr(path, label): labels must not be
# substrings of each other, nor of the fixed part of any image path.
for ((i = 0; i < ${#NAMES[@]}; i++)); do
    for ((j = 0; j < ${#NAMES[@]}; j++)); do
        if ((i != j)) && [[ ${NAMES[j]} == *"${NAMES[i]}"* ]]; then
            die "label '${NAMES[i]}' is a substring of label '${NAMES[j]}'"
        fi
    done
    for p in "$TR/tr" "$TE/te"; do
        if [[ $p == *"${NAMES[i]}"* ]]; then
            die "image path '$p...' contains label name '${NAMES[i]}'; Darknet matches labels by substring of the path, so choose another OUT"
        fi
    done
done

# --- build the converter -------------------------------------------------------
if [[ ! -x $BIN || scripts/fmnist2png.c -nt $BIN ]]; then
    mkdir -p build
    TMPS+=("$BIN.tmp.$$")
    cc "${CFLAGS[@]}" -o "$BIN.tmp.$$" scripts/fmnist2png.c -lz ||
        die "building $BIN failed (needs packages zlib1g-dev libstb-dev)"
    mv -f -- "$BIN.tmp.$$" "$BIN"
fi

# --- convert (skipped when already complete) -----------------------------------
count_png() { # dir prefix
    [[ -d $1 ]] || { echo 0; return; }
    find "$1" -maxdepth 1 -type f -name "$2[0-9]*_*.png" | wc -l
}
NTRAIN=$((TRAIN_PER_CLASS * 10))
NTEST=$((TEST_PER_CLASS * 10))

if [[ -f $OUT/.done && $(count_png "$TR" tr) -eq $NTRAIN && $(count_png "$TE" te) -eq $NTEST ]]; then
    echo "prepare_fashion: images already converted in $OUT (remove $OUT/.done to redo)" >&2
else
    for f in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
        [[ -r $SRC/$f-ubyte.gz ]] ||
            die "missing $SRC/$f-ubyte.gz (install package dataset-fashion-mnist or set FMNIST_SRC)"
    done
    rm -f -- "$OUT/.done"
    mkdir -p "$TR" "$TE"
    # Remove leftovers of earlier runs so the counts below are exact.
    find "$TR" -maxdepth 1 -type f \( -name 'tr[0-9]*_*.png' -o -name '*.png.tmp' \) -delete
    find "$TE" -maxdepth 1 -type f \( -name 'te[0-9]*_*.png' -o -name '*.png.tmp' \) -delete
    "$BIN" "$SRC/train-images-idx3-ubyte.gz" "$SRC/train-labels-idx1-ubyte.gz" "$TR" tr
    "$BIN" "$SRC/t10k-images-idx3-ubyte.gz" "$SRC/t10k-labels-idx1-ubyte.gz" "$TE" te
    n=$(count_png "$TR" tr); ((n == NTRAIN)) || die "$TR has $n images, expected $NTRAIN"
    n=$(count_png "$TE" te); ((n == NTEST)) || die "$TE has $n images, expected $NTEST"
    date -u +%Y-%m-%dT%H:%M:%SZ | atomic_write "$OUT/.done"
fi

# --- lists, labels, .data ------------------------------------------------------
# Prints, in index order, the paths in dir $1 (prefix $2) whose class is in $3.
select_images() {
    find "$1" -maxdepth 1 -type f -name "$2[0-9]*_*.png" -printf '%f\n' |
        LC_ALL=C sort |
        awk -v dir="$1" -v names="${NAMES[*]}" -v cls="$3" '
            BEGIN { n = split(names, nm, " "); for (i = 1; i <= n; i++) id[nm[i]] = i - 1
                    m = split(cls, c, " "); for (i = 1; i <= m; i++) want[c[i]] = 1 }
            { lab = $0; sub(/^[^_]*_/, "", lab); sub(/\.png$/, "", lab)
              if (!(lab in id)) { print "unknown label in " $0 > "/dev/stderr"; exit 1 }
              if (id[lab] in want) print dir "/" $0 }'
}

# Checks every path in list $1 matches exactly one label of $2 by substring
# (Darknet's rule) and that it is the label in the file name.
verify_list() {
    awk -v labs="$2" '
        BEGIN { n = split(labs, l, " ") }
        { hits = 0; who = ""
          for (i = 1; i <= n; i++) if (index($0, l[i])) { hits++; who = l[i] }
          f = $0; sub(/^.*_/, "", f); sub(/\.png$/, "", f)
          if (hits != 1 || who != f) { print "bad line " NR ": " $0 " (" hits " label matches)" > "/dev/stderr"; exit 1 } }' "$1" ||
        die "$1 fails Darknet label matching"
}

summary=()
for t in "${TASKS[@]}"; do
    read -r -a cls <<<"${CLASSES[$t]}"
    labs=()
    for c in "${cls[@]}"; do labs+=("${NAMES[c]}"); done
    printf '%s\n' "${labs[@]}" | atomic_write "$OUT/$t.labels"
    for split in train valid; do
        if [[ $split == train ]]; then dir=$TR pre=tr per=$TRAIN_PER_CLASS
        else dir=$TE pre=te per=$TEST_PER_CLASS; fi
        list=$OUT/$t.$split.list
        tmp=$list.tmp.$$
        TMPS+=("$tmp")
        select_images "$dir" "$pre" "${CLASSES[$t]}" >"$tmp"
        n=$(wc -l <"$tmp")
        ((n == per * ${#cls[@]})) || die "$list would have $n entries, expected $((per * ${#cls[@]}))"
        verify_list "$tmp" "${labs[*]}"
        mv -f -- "$tmp" "$list"
        summary+=("$(printf '%-24s %6d' "$list" "$n")")
    done
    mkdir -p "backup/fashion-$t"
    # cfg/fashion-*.data (tracked) already describe the default location
    [[ $OUT == data/fmnist ]] && continue
    atomic_write "$OUT/fashion-$t.data" <<EOF
classes=${#cls[@]}
train=$OUT/$t.train.list
valid=$OUT/$t.valid.list
labels=$OUT/$t.labels
backup=backup/fashion-$t
top=2
EOF
done

if [[ $OUT == data/fmnist ]]; then
    echo "prepare_fashion: done; .data files are cfg/fashion-{a,b,t1..t5}.data" >&2
else
    echo "prepare_fashion: done; .data files are $OUT/fashion-{a,b,t1..t5}.data" >&2
fi
printf '%s\n' "${summary[@]}"
