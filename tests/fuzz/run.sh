#!/usr/bin/env bash
# Builds the seed corpus, then runs each libFuzzer harness named on the command line
# (cfg data weights image) for FUZZ_SECONDS, printing its executions and whether it
# crashed.  Exits non-zero if any harness found a crash, leak, timeout or OOM.
# Env: FUZZ_BUILD (dir with the harnesses, default build/fuzz), FUZZ_SECONDS (default 60).
# The corpus grows in $FUZZ_BUILD/corpus/<harness>; findings go to $FUZZ_BUILD/crashes/.
set -u
cd "$(dirname "$0")/../.."
FB=${FUZZ_BUILD:-build/fuzz}
SECS=${FUZZ_SECONDS:-60}
[ $# -gt 0 ] || set -- cfg data weights image
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

seeds() {   # the seed corpus of harness $1, rebuilt every run (small and cheap)
    local s=$FB/seeds/$1 i=0
    rm -rf "$s" && mkdir -p "$s" || return 1
    case $1 in
    cfg)
        cp cfg/*.cfg /usr/share/darknet/cfg/*.cfg "$s/" || return 1
        # small networks with each supported section, fast enough to train a step
        local net='[net]\nheight=8\nwidth=8\nchannels=4\n' head='[task]\nname=a\n[connected]\noutput=3\n[lwf_distill]\n'
        local new='[task]\nname=b\n[connected]\noutput=2\n[softmax]\n'
        for sec in '[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1' '[maxpool]\nsize=2\nstride=2' \
            '[avgpool]' '[batchnorm]' '[activation]\nactivation=leaky' '[crop]\ncrop_height=6\ncrop_width=6' \
            '[normalization]\nsize=3' '[reorg]\nstride=2' '[upsample]\nstride=2' '[route]\nlayers=-1' \
            '[shortcut]\nfrom=-1' '[connected]\noutput=5\nbatch_normalize=1' '[dropout]\nprobability=0.5'; do
            i=$((i + 1))
            printf "$net[convolutional]\nfilters=4\n$sec\n$head$new" > "$s/small$i.cfg"
        done
        printf "$net[convolutional]\nfilters=4\n[task]\nname=b\n[avgpool]\n[softmax]\n" > "$s/small-one-head.cfg" ;;
    data)
        for d in cfg/*.data; do
            i=$((i + 1))
            { cat "$d"; printf '%%%%\nimg/x_top.png\nimg/y_low.png\n\n%%%%\ntop\nlow\n'; } > "$s/data$i"
        done
        printf 'classes=2\ntrain=a.list\nvalid = b.list # comment\nlabels=l\nbackup=bk\ntop=2\n\n%%%%\n' > "$s/gen1"
        printf '  a/cat_1.png \r\n\nb/dog_2.png\n\n%%%%\ncat\ndog\n' >> "$s/gen1"
        printf 'classes=3\nnames=n\n%%%%\nimg/catdog.png\n%%%%\ncat\ndog\nbird\n' > "$s/gen2" ;;
    weights) "$FB/make_seeds" "$s" - ;;
    image)
        "$FB/make_seeds" - "$s" /usr/share/darknet/data/dog.jpg || return 1
        cp tests/fuzz/seeds/image/* "$s/" || return 1   # progressive, grey, restarts, palette, 16-bit
        printf 'GIF89a\001\000\001\000\200\000\000\377\377\377\000\000\000!\371\004\001\000\000\000\000,\000\000\000\000\001\000\001\000\000\002\002D\001\000;' > "$s/tiny.gif"
        printf 'P6\n2 2\n255\n\001\002\003\004\005\006\007\010\011\012\013\014' > "$s/tiny.ppm" ;;
    *) echo "fuzz: no harness '$1'"; return 1 ;;
    esac
}

# the longest input each harness is given
max_len() {
    case $1 in cfg) echo 16384 ;; data) echo 4096 ;; weights) echo 4096 ;; image) echo 65536 ;; esac
}

failed=0
for h in "$@"; do
    if ! seeds "$h"; then
        echo "fuzz $h: cannot build the seed corpus"
        failed=$((failed + 1))
        continue
    fi
    bin=$FB/fuzz_$h
    corpus=$FB/corpus/$h
    crashes=$FB/crashes/$h
    mkdir -p "$corpus" "$crashes"
    regress=tests/fuzz/regressions/$h
    dirs=("$corpus" "$FB/seeds/$h")
    [ -d "$regress" ] && dirs+=("$regress")
    dict=()
    [ -f "tests/fuzz/$h.dict" ] && dict=(-dict="tests/fuzz/$h.dict")
    log=$FB/fuzz_$h.log
    echo "fuzz $h: $bin ${dirs[*]} (${SECS}s)"
    "$bin" -max_total_time="$SECS" -max_len="$(max_len "$h")" -rss_limit_mb=2048 -timeout=20 \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" "${dirs[@]}" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    if [ $rc -eq 0 ]; then
        echo "fuzz $h: ${execs:-?} executions, no crash"
    else
        echo "fuzz $h: ${execs:-?} executions, CRASH (exit $rc); log $log, input in $crashes/"
        grep -E '^==[0-9]+==ERROR|^SUMMARY|Test unit written' "$log" | head -5
        failed=$((failed + 1))
    fi
done
[ $failed -eq 0 ]
