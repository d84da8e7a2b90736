#!/usr/bin/env bats
# scripts/prepare_fashion_det.sh on a few canvases per set: the files Darknet's detector
# reads, label lines it accepts, boxes that fit their items (labels against the manifest
# here in awk; pixels against the boxes by `fmnist2det verify`, which decodes the PNGs),
# B's training canvases holding unlabelled A items, and the same files on every run.

load helpers

SETS="a-train a-test b-train b-test all-train all-test"

# the script with small counts into $1 (relative to the repo root or absolute)
prepare() {
    FMNIST_DET_TRAIN=14 FMNIST_DET_TEST=6 FMNIST_DET_SEED=${SEED:-1} \
        "$LWF_ROOT/scripts/prepare_fashion_det.sh" "$1"
}

setup_file() {
    [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || return 0
    # a failure shows in every test (setup prints this output), not as one setup_file error
    cd "$LWF_ROOT" && prepare "$BATS_FILE_TMPDIR/d1" > "$BATS_FILE_TMPDIR/d1.out" 2>&1 || true
}

setup() {
    cd "$LWF_ROOT" || return 1
    [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
        skip "no Fashion-MNIST (package dataset-fashion-mnist)"
    D=$BATS_FILE_TMPDIR/d1
    [ -f "$D/.done" ] || {
        echo "prepare_fashion_det.sh failed:" >&2
        cat "$BATS_FILE_TMPDIR/d1.out" >&2
        return 1
    }
}

# classes_of SET: the number of ids its labels may use
classes_of() {
    case $1 in all-*) echo 10 ;; *) echo 5 ;; esac
}

@test "detdata: every set has its list, manifest, PNGs and label files; .data files name them" {
    local s n img
    for s in $SETS; do
        [ -f "$D/$s.manifest" ]
        n=$(wc -l < "$D/$s.list")
        case $s in *-train) [ "$n" -eq 14 ] ;; *) [ "$n" -eq 6 ] ;; esac
        while read -r img; do
            [[ $img == "$D/images/$s/$s-"[0-9][0-9][0-9][0-9][0-9].png ]]
            [ "$(head -c 8 "$img" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
            [ -f "$D/labels/$s/$(basename "$img" .png).txt" ]
        done < "$D/$s.list"
        [ "$(find "$D/images/$s" -type f | wc -l)" -eq "$n" ]
        [ "$(find "$D/labels/$s" -type f | wc -l)" -eq "$n" ]
    done
    for t in a b all; do
        run cat "$D/fashion-det-$t.data"
        assert_contains "classes=$(classes_of "$t-x")" "train=$D/$t-train.list" "valid=$D/$t-test.list" \
            "names=cfg/fashion-det-$t.names" "backup=backup/fashion-det-$t"
        [ "$(wc -l < "cfg/fashion-det-$t.names")" -eq "$(classes_of "$t-x")" ]
    done
}

@test "detdata: every label line is 'class x y w h', class in range, values in (0,1], box inside" {
    local s bad
    for s in $SETS; do
        bad=$(awk -v k="$(classes_of "$s")" '
            function num(v) { return v ~ /^[0-9]*\.?[0-9]+$/ }
            NF != 5 || $1 !~ /^[0-9]+$/ || $1 >= k || !num($2) || !num($3) || !num($4) || !num($5) ||
            $2 <= 0 || $2 > 1 || $3 <= 0 || $3 > 1 || $4 <= 0 || $4 > 1 || $5 <= 0 || $5 > 1 ||
            $2 - $4 / 2 < -1e-6 || $2 + $4 / 2 > 1 + 1e-6 || $3 - $5 / 2 < -1e-6 || $3 + $5 / 2 > 1 + 1e-6 {
                print FILENAME ":" FNR ": " $0 }' "$D/labels/$s"/*.txt)
        [ -z "$bad" ] || { echo "$bad" >&2; return 1; }
        # no canvas without a labelled box
        [ "$(cat "$D/labels/$s"/*.txt | wc -l)" -ge 6 ]
        for f in "$D/labels/$s"/*.txt; do [ -s "$f" ] || { echo "empty $f" >&2; return 1; }; done
    done
}

@test "detdata: label lines are the manifest's labelled items (class ids, boxes in pixels)" {
    local s bad
    for s in $SETS; do
        # the manifest's labelled items as the label lines they must be, in order
        awk -F'\t' -v d="$D/labels/$s" -v s="$s" '!/^#/ && $5 >= 0 {
                printf "%s/%s-%05d.txt %d %.6f %.6f %.6f %.6f\n", d, s, $1, $5,
                    ($6 + $8) / 192, ($7 + $9) / 192, ($8 - $6) / 96, ($9 - $7) / 96 }' \
            "$D/$s.manifest" > "$BATS_TEST_TMPDIR/want"
        for f in "$D/labels/$s"/*.txt; do sed "s|^|$f |" "$f"; done > "$BATS_TEST_TMPDIR/got"
        sort -s -k1,1 "$BATS_TEST_TMPDIR/want" > "$BATS_TEST_TMPDIR/want.s"
        run diff "$BATS_TEST_TMPDIR/want.s" "$BATS_TEST_TMPDIR/got"
        assert_ok
        # classes: A sets hold 0-4, B's labelled items 5-9 with ids class - 5, all 0-9 as ids
        bad=$(awk -F'\t' -v s="$s" '!/^#/ {
                lo = 0; hi = 9; sh = 0
                if (s ~ /^a-/) hi = 4; else if (s ~ /^b-/) { lo = 5; sh = 5 }
                if ($5 >= 0 && ($4 < lo || $4 > hi || $5 != $4 - sh)) print
                if ($5 < 0 && (s != "b-train" || $4 > 4)) print }' "$D/$s.manifest")
        [ -z "$bad" ] || { echo "$s: $bad" >&2; return 1; }
    done
}

@test "detdata: fmnist2det verify: every bright pixel lies in an item's box, every box is tight" {
    local s
    for s in $SETS; do
        run "$LWF_ROOT/build/fmnist2det" verify "$D" "$s" "$(classes_of "$s")"
        assert_ok
        assert_contains "$s: $(wc -l < "$D/$s.list") images"
    done
}

@test "detdata: verify rejects a box moved off its item (x and y swapped) and a class out of range" {
    cp -r "$D" "$BATS_TEST_TMPDIR/m"
    local m=$BATS_TEST_TMPDIR/m f
    sed -i "s|$D|$m|" "$m/a-train.list"
    # the first canvas whose first box is not on the diagonal
    for f in "$m"/labels/a-train/*.txt; do
        [ "$(awk 'NR == 1 { print ($2 != $3 || $4 != $5) }' "$f")" = 1 ] && break
    done
    cp "$f" "$f.orig"
    awk 'NR == 1 { $0 = $1 " " $3 " " $2 " " $5 " " $4 } { print }' "$f.orig" > "$f"
    run "$LWF_ROOT/build/fmnist2det" verify "$m" a-train 5
    assert_failed
    assert_contains "$f:1:"
    sed '1s/^[0-9]* /5 /' "$f.orig" > "$f"
    run "$LWF_ROOT/build/fmnist2det" verify "$m" a-train 5
    assert_failed
    assert_contains "$f:1:" "class in 0..4"
    # the first item moved one pixel right in the manifest and its label alike: the labels
    # agree, the pixels do not (its box is no longer tight, or a bright pixel lies outside)
    f=$m/labels/a-train/a-train-00000.txt
    awk -F'\t' -v OFS='\t' '!/^#/ && !done { $6 = $6 + 1; $8 = $8 + 1; done = 1 } { print }' \
        "$D/a-train.manifest" > "$m/a-train.manifest"
    { awk -F'\t' '!/^#/ { printf "%d %.6f %.6f %.6f %.6f\n", $5, ($6 + $8) / 192, ($7 + $9) / 192,
                            ($8 - $6) / 96, ($9 - $7) / 96; exit }' "$m/a-train.manifest"
      tail -n +2 "$D/labels/a-train/a-train-00000.txt"; } > "$f"
    run "$LWF_ROOT/build/fmnist2det" verify "$m" a-train 5
    assert_failed
    assert_contains "a-train-00000.png: "
    refute_contains "a-train-00000.txt"
}

@test "detdata: b-train holds unlabelled A items (in the manifest, not in the labels); other sets none" {
    local s unl imgs
    unl=$(awk -F'\t' '!/^#/ && $5 == -1 && $4 <= 4' "$D/b-train.manifest" | wc -l)
    imgs=$(awk -F'\t' '!/^#/ && $5 == -1 { print $1 }' "$D/b-train.manifest" | sort -u | wc -l)
    [ "$unl" -ge 1 ]
    [ "$imgs" -ge 1 ]
    [ "$imgs" -lt 14 ]
    [ "$(cat "$D"/labels/b-train/*.txt | wc -l)" -eq "$(awk -F'\t' '!/^#/ && $5 >= 0' "$D/b-train.manifest" | wc -l)" ]
    run "$LWF_ROOT/build/fmnist2det" verify "$D" b-train 5
    assert_contains "unlabelled items in $imgs images"
    for s in a-train a-test b-test all-train all-test; do
        [ "$(awk -F'\t' '!/^#/ && $5 < 0' "$D/$s.manifest" | wc -l)" -eq 0 ]
    done
}

@test "detdata: a second run gives identical files; another seed gives other canvases" {
    prepare "$BATS_TEST_TMPDIR/d2" 2> "$BATS_TEST_TMPDIR/err"
    local s
    for s in $SETS; do
        run diff -r "$D/images/$s" "$BATS_TEST_TMPDIR/d2/images/$s"
        assert_ok
        run diff -r "$D/labels/$s" "$BATS_TEST_TMPDIR/d2/labels/$s"
        assert_ok
        cmp "$D/$s.manifest" "$BATS_TEST_TMPDIR/d2/$s.manifest"
        diff <(sed "s|^$D/||" "$D/$s.list") <(sed "s|^$BATS_TEST_TMPDIR/d2/||" "$BATS_TEST_TMPDIR/d2/$s.list")
    done
    SEED=2 prepare "$BATS_TEST_TMPDIR/d3" 2> "$BATS_TEST_TMPDIR/err"
    run cmp -s "$D/a-train.manifest" "$BATS_TEST_TMPDIR/d3/a-train.manifest"
    [ "$status" -eq 1 ]
    run cmp -s "$D/images/a-train/a-train-00000.png" "$BATS_TEST_TMPDIR/d3/images/a-train/a-train-00000.png"
    [ "$status" -eq 1 ]
}

@test "detdata: a complete set is not made again; other counts make it again, without leftovers" {
    run prepare "$D"
    assert_ok
    assert_contains "already made"
    cp -r "$D" "$BATS_TEST_TMPDIR/d4"
    sed -i "s|$D|$BATS_TEST_TMPDIR/d4|" "$BATS_TEST_TMPDIR"/d4/*.list
    run env FMNIST_DET_TRAIN=3 FMNIST_DET_TEST=2 "$LWF_ROOT/scripts/prepare_fashion_det.sh" "$BATS_TEST_TMPDIR/d4"
    assert_ok
    [ "$(wc -l < "$BATS_TEST_TMPDIR/d4/a-train.list")" -eq 3 ]
    [ "$(find "$BATS_TEST_TMPDIR/d4/images/a-train" -type f | wc -l)" -eq 3 ]
    [ "$(find "$BATS_TEST_TMPDIR/d4/labels/b-test" -type f | wc -l)" -eq 2 ]
}

@test "detdata: bad settings and an OUT Darknet's label rule would rewrite are errors naming them" {
    run env FMNIST_DET_TRAIN=0 "$LWF_ROOT/scripts/prepare_fashion_det.sh" "$BATS_TEST_TMPDIR/x"
    assert_failed
    assert_contains "FMNIST_DET_TRAIN=0"
    run env FMNIST_DET_SEED=abc "$LWF_ROOT/scripts/prepare_fashion_det.sh" "$BATS_TEST_TMPDIR/x"
    assert_failed
    assert_contains "SEED" "abc"
    run "$LWF_ROOT/scripts/prepare_fashion_det.sh" "$BATS_TEST_TMPDIR/images"
    assert_failed
    assert_contains "contains 'images'"
    [ ! -e "$BATS_TEST_TMPDIR/images" ]
    [ ! -e "$BATS_TEST_TMPDIR/x" ]
}
