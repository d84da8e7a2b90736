#!/usr/bin/env bats
# scripts/sequence.sh -grow on three tiny two-class tasks (8x8 images written by mkimg, four
# per class, one or two iterations a step): one head grown 2 -> 4 -> 6 classes, its matrix
# (a row per step, a column per task, each cell in [0, 1], empty above the diagonal), its
# per-step averages (the last cell of a row is the new classes' figure lwf valid gives, the
# mean of the others the old classes'), the summary, the exemplars and the pictures.
load helpers

LABELS=(lblzero lblone lbltwo lblthree lblfour lblfive)

# grow_fixture: in $T, tasks t1..t3 (classes 2k, 2k+1; valid list = train list) and first.cfg
grow_fixture() {
    T="$BATS_TEST_TMPDIR"
    local mkimg=${MKIMG:-"$LWF_ROOT/build/tests/tools/mkimg"} k i l
    [ -x "$mkimg" ] || { echo "no image writer at $mkimg: run make tools" >&2; return 1; }
    mkdir -p "$T/img"
    for k in 1 2 3; do
        : > "$T/t$k.list"
        for i in 0 1 2 3; do
            for l in "${LABELS[@]:$((2 * k - 2)):2}"; do echo "$T/img/t${k}_${i}_$l.png" >> "$T/t$k.list"; done
        done
        # shellcheck disable=SC2046
        "$mkimg" $(cat "$T/t$k.list") || return 1
        printf '%s\n' "${LABELS[@]:$((2 * k - 2)):2}" > "$T/t$k.labels"
        printf 'classes=2\ntrain=%s\nvalid=%s\nlabels=%s\nbackup=%s/b%s\ntop=1\n' \
            "$T/t$k.list" "$T/t$k.list" "$T/t$k.labels" "$T" "$k" > "$T/t$k.data"
    done
    sed -e 's/^batch=.*/batch=4/' -e 's/^height=.*/height=8/' -e 's/^width=.*/width=8/' \
        -e 's/^min_crop=.*/min_crop=8/' -e 's/^max_crop=.*/max_crop=8/' \
        -e 's/^filters=\(32\|64\)$/filters=8/' "$LWF_ROOT/cfg/fashion-seq.cfg" > "$T/first.cfg"
}

# check_matrix FILE: header after,t1,t2,t3; rows t1..t3; cells [0, 1] on and below the diagonal,
# empty above
check_matrix() {
    [ "$(head -1 "$1")" = "after,t1,t2,t3" ] || { echo "$1: header '$(head -1 "$1")'" >&2; return 1; }
    [ "$(wc -l < "$1")" -eq 4 ] || { echo "$1: $(wc -l < "$1") lines" >&2; return 1; }
    awk -F, 'NR>1{ if (NF != 4 || $1 != "t" (NR-1)) bad = 1
                   for (j = 2; j <= 4; j++) {
                       if (j - 1 <= NR - 1 && ($j !~ /^[01]\.[0-9]+$/ || $j + 0 > 1)) bad = 1
                       if (j - 1 > NR - 1 && $j != "") bad = 1 } }
              END{ exit bad }' "$1" || { echo "$1: a cell out of shape or range:" >&2; cat "$1" >&2; return 1; }
}

@test "sequence.sh -grow: one head grown over three tasks, its matrix, averages and summary" {
    grow_fixture
    run scripts/sequence.sh -grow -o "$T/out" -m "lwf finetune" -f "$T/first.cfg" -E 2 -b "lwf=1+1 finetune=0+2" \
        "$T/t1.data" "$T/t2.data" "$T/t3.data"
    echo "$output"
    [ "$status" -eq 0 ]
    for m in lwf finetune; do
        check_matrix "$T/out/$m/matrix.csv"
        # the grown head: 2, 4, then 6 classes, ending in [lwf_softmax] over the 4 old ones
        grep -q '^filters=6$' "$T/out/$m/step3.cfg"
        grep -q '^old_classes=4$' "$T/out/$m/step3.cfg"
        [ "$(grep -c '^\[task\]' "$T/out/$m/step3.cfg")" -eq 1 ]
        # average.csv: a row per step; the new classes' top-1 is the row's last cell, the old
        # classes' the mean of the others (every task has as many images)
        [ "$(head -1 "$T/out/$m/average.csv")" = "after,step,classes,all,old,new" ]
        paste -d, <(tail -n +2 "$T/out/$m/matrix.csv") <(tail -n +2 "$T/out/$m/average.csv") |
            awk -F, 'NR>1{ s = NR; o = 0; for (j = 2; j <= s; j++) o += $j; o /= s - 1
                           if ($6 != s || $7 != 2 * s || ($8 - (o * (s - 1) + $(s + 1)) / s)^2 > 1e-6 ||
                               ($9 - o)^2 > 1e-6 || $10 != $(s + 1)) { print "row " s ": " $0; bad = 1 } }
                      END{ exit bad }'
    done
    [ "$(head -1 "$T/out/summary.csv")" = "method,avg_accuracy,forgetting,backward_transfer" ]
    [ "$(grep -c '^lwf,\|^finetune,' "$T/out/summary.csv")" -eq 2 ]
    [ ! -e "$T/out/lwf/step2.exemplars.list" ]
    scripts/plots.sh matrix "$T/out/lwf/matrix.csv" "$T/m.png"
    scripts/plots.sh sequence "$T/out" "$T/s.png" "lwf finetune"
    scripts/plots.sh average "$T/out" "$T/a.png" "lwf finetune"
    for p in m s a; do [ "$(head -c 4 "$T/$p.png" | od -An -c | tr -d ' ')" = '211PNG' ]; done
}

@test "sequence.sh -grow -exemplars N: N images of each old class in the grown task's exemplars=" {
    grow_fixture
    run scripts/sequence.sh -grow -exemplars 2 -o "$T/out" -m lwf -f "$T/first.cfg" -E 1 -e 1 \
        "$T/t1.data" "$T/t2.data" "$T/t3.data"
    echo "$output"
    [ "$status" -eq 0 ]
    check_matrix "$T/out/lwf/matrix.csv"
    grep -qx "exemplars=$T/out/lwf/step3.exemplars.list" "$T/out/lwf/step3.cfg"
    # step 3: two of each of the four old classes, none of the new ones
    [ "$(wc -l < "$T/out/lwf/step3.exemplars.list")" -eq 8 ]
    for l in "${LABELS[@]:0:4}"; do [ "$(grep -c "_$l.png\$" "$T/out/lwf/step3.exemplars.list")" -eq 2 ]; done
    run grep -c 'lblfour\|lblfive' "$T/out/lwf/step3.exemplars.list"
    [ "$output" = 0 ]
}

@test "sequence.sh: -exemplars without -grow, or without a count, is refused" {
    run scripts/sequence.sh -exemplars 2 -o "$BATS_TEST_TMPDIR/x" a.data b.data
    [ "$status" -eq 2 ]
    [[ $output == *"-exemplars goes with -grow"* ]]
    run scripts/sequence.sh -grow -exemplars x -o "$BATS_TEST_TMPDIR/x" a.data b.data
    [ "$status" -eq 2 ]
    [ ! -e "$BATS_TEST_TMPDIR/x" ]
}
