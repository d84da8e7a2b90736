# Shared helpers for the command-line tests: where the binary is, cfgs derived from
# cfg/fashion-lwf.cfg by small edits, and the assertions every error test makes.
# Loaded with `load helpers`; no bats-assert needed.

DARKNET=${DARKNET:-"$BATS_TEST_DIRNAME/../../darknet"}
LWF_ROOT=${LWF_ROOT:-"$BATS_TEST_DIRNAME/../.."}
STOCK_DARKNET=/usr/bin/darknet
BASE_CFG="$LWF_ROOT/cfg/fashion-lwf.cfg"

# base_setup: every test runs from the repository root (data= paths in the cfgs are
# relative to it, as in Darknet) with a built binary.
base_setup() {
    cd "$LWF_ROOT" || return 1
    [ -x "$DARKNET" ] || {
        echo "no binary at $DARKNET: run make" >&2
        return 1
    }
}

setup() {
    base_setup
}

# derive NAME: copies cfg/fashion-lwf.cfg to $BATS_TEST_TMPDIR/NAME.cfg and sets CFG to it.
derive() {
    CFG="$BATS_TEST_TMPDIR/$1.cfg"
    cp "$BASE_CFG" "$CFG"
}

# line_of REGEX [NTH]: the line number of the NTH (default 1st) line of $CFG matching REGEX.
line_of() {
    local n
    n=$(grep -n -e "$1" "$CFG" | sed -n "${2:-1}p" | cut -d: -f1)
    [ -n "$n" ] || {
        echo "line_of: no match ${2:-1} for '$1' in $CFG" >&2
        return 1
    }
    echo "$n"
}

# last_line: the number of lines in $CFG.
last_line() {
    wc -l < "$CFG" | tr -d ' '
}

# in_cfg N [FIRST]: N is a line number of $CFG from FIRST (default 1) to its last line;
# otherwise (empty, not a number, out of range) fails saying so, so that an edit of a
# line the cfg does not have fails the test instead of leaving the cfg unchanged.
in_cfg() {
    local last
    last=$(awk 'END { print NR }' "$CFG") || return 1
    if ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt "${2:-1}" ] || [ "$1" -gt "$last" ]; then
        echo "no line '$1' in $CFG (lines ${2:-1}..$last)" >&2
        return 1
    fi
}

# set_line N TEXT: replaces line N of $CFG by TEXT (which may hold \n for several lines).
set_line() {
    in_cfg "$1" || return 1
    awk -v n="$1" -v t="$2" 'NR == n { print t; next } { print }' "$CFG" > "$CFG.tmp" && mv "$CFG.tmp" "$CFG"
}

# insert_after N TEXT: inserts TEXT after line N of $CFG (N = 0: at the top).
insert_after() {
    in_cfg "$1" 0 || return 1
    awk -v n="$1" -v t="$2" 'n == 0 && NR == 1 { print t } { print } n > 0 && NR == n { print t }' "$CFG" \
        > "$CFG.tmp" && mv "$CFG.tmp" "$CFG"
}

# delete_lines FROM [TO]: deletes lines FROM..TO (default: just FROM) of $CFG.
delete_lines() {
    in_cfg "$1" || return 1
    in_cfg "${2:-$1}" "$1" || return 1
    sed -i "${1},${2:-$1}d" "$CFG"
}

# replace KEY=VALUE in the NTH section that sets KEY (default 1st): set_key KEY VALUE [NTH]
set_key() {
    local n
    n=$(line_of "^$1=" "${3:-1}") || return 1
    set_line "$n" "$1=$2"
}

# run_info [ARGS...]: runs `darknet lwf info $CFG ARGS...` (stderr merged into $output).
run_info() {
    run "$DARKNET" lwf info "$CFG" "$@"
}

# refute_crash: the last run did not crash, abort or trip a sanitizer.
refute_crash() {
    local pat
    for pat in "Segmentation fault" "Aborted" "AddressSanitizer" "LeakSanitizer" "runtime error" "core dumped"; do
        if [[ "$output" == *"$pat"* ]]; then
            echo "crash: output contains '$pat' (status $status)" >&2
            echo "$output" >&2
            return 1
        fi
    done
    if [ "$status" -ge 128 ] || [ "$status" -eq 86 ]; then
        echo "crash: status $status (signal or sanitizer exit code)" >&2
        echo "$output" >&2
        return 1
    fi
}

# assert_contains WORD...: $output contains every WORD (fixed strings).
assert_contains() {
    local w
    for w in "$@"; do
        if [[ "$output" != *"$w"* ]]; then
            echo "expected the output to contain: $w" >&2
            echo "--- status $status, output:" >&2
            echo "$output" >&2
            return 1
        fi
    done
}

# refute_contains WORD...: $output contains none of the WORDs.
refute_contains() {
    local w
    for w in "$@"; do
        if [[ "$output" == *"$w"* ]]; then
            echo "expected the output not to contain: $w" >&2
            echo "$output" >&2
            return 1
        fi
    done
}

# assert_failed: non-zero exit, no crash.
assert_failed() {
    refute_crash || return 1
    if [ "$status" -eq 0 ]; then
        echo "expected a non-zero exit status, got 0; output:" >&2
        echo "$output" >&2
        return 1
    fi
}

# assert_error_at LINE WORD...: failed, with "$CFG:LINE:" and every WORD in the output.
assert_error_at() {
    local line=$1
    shift
    assert_failed || return 1
    assert_contains "$CFG:$line:" "$@"
}

# assert_error WORD...: failed, naming $CFG, with every WORD in the output.
assert_error() {
    assert_failed || return 1
    assert_contains "$CFG" "$@"
}

# assert_ok: exit 0, no crash.
assert_ok() {
    refute_crash || return 1
    if [ "$status" -ne 0 ]; then
        echo "expected exit status 0, got $status; output:" >&2
        echo "$output" >&2
        return 1
    fi
}

# floats_file PATH N HEX8: a Darknet 0.2.0 .weights file with N floats, each the 4 bytes
# given as 8 hex digits in file order (little-endian), e.g. 0000803e = 0.25.
floats_file() {
    local esc
    esc=$(sed 's/\(..\)/\\x\1/g' <<< "$3")
    printf "$esc" > "$1.pattern"
    # double the pattern until it holds N floats: a few cats instead of N printfs
    while [ "$(stat -c %s "$1.pattern")" -lt $((4 * $2)) ]; do
        cat "$1.pattern" "$1.pattern" > "$1.pattern2" && mv "$1.pattern2" "$1.pattern"
    done
    printf '\000\000\000\000\002\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > "$1"
    head -c $((4 * $2)) "$1.pattern" >> "$1"
    rm -f "$1.pattern"
}

# weights_file PATH FLOATS [EXTRA_BYTES]: FLOATS zero floats (floats_file), then
# EXTRA_BYTES more zero bytes.
weights_file() {
    floats_file "$1" "$2" 00000000
    head -c "${3:-0}" /dev/zero >> "$1"
}

# weight_counts: sets OLD_FLOATS and ALL_FLOATS from `lwf info $CFG`'s
# "weights: N floats for the old network (...), M for the whole model" line.
weight_counts() {
    local out line
    out=$("$DARKNET" lwf info "$CFG" 2>/dev/null) || {
        echo "lwf info $CFG failed" >&2
        return 1
    }
    line=$(grep '^weights: ' <<< "$out")
    OLD_FLOATS=$(sed -n 's/^weights: \([0-9][0-9]*\) floats for the old network.*/\1/p' <<< "$line")
    ALL_FLOATS=$(sed -n 's/.*, \([0-9][0-9]*\) for the whole model.*/\1/p' <<< "$line")
    [ -n "$OLD_FLOATS" ] && [ -n "$ALL_FLOATS" ] && [ "$OLD_FLOATS" -gt 0 ] && [ "$ALL_FLOATS" -gt "$OLD_FLOATS" ] || {
        echo "cannot read the weight counts from: $line" >&2
        return 1
    }
}

# setup() of a file whose setup_file trains on Fashion-MNIST data into $BATS_FILE_TMPDIR (F),
# writing $F/prep.out, $F/train.out and, when everything ran, $F/.trained: skips without
# the data (a skip fails the run under CI=true), fails with those outputs if training did.
trained_setup() {
    cd "$LWF_ROOT" || return 1
    [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
        skip "no Fashion-MNIST (package dataset-fashion-mnist)"
    F=$BATS_FILE_TMPDIR
    [ -f "$F/.trained" ] || {
        echo "setup_file failed:" >&2
        cat "$F/prep.out" "$F/train.out" >&2
        return 1
    }
}
