#!/usr/bin/env bats
# Hostile input: broken, truncated, garbage, huge or contradictory cfgs, .data files, lists,
# images, weights and command lines.  Every case asserts (assert_rejected): a non-zero
# exit; a message naming the offending file (and line, where there is one) or argument; no
# crash (no signal, no sanitizer report: under `make check` $DARKNET is the sanitizer
# build); and no change in the watched folder, a previous run's backup folder that the
# command would write into (for `lwf train`) or read its weights from.
# Fixture and helpers: hostile_helpers.bash.  At the end: a diverging run (it has written
# backups before it fails: it must not crash nor write NaN weights), and three inputs that
# are not errors (a 1x1 image, a path with spaces, a .state of another backup): they train,
# and say why.

load helpers
load hostile_helpers

setup_file() {
    build_fixture
    # cfg/fashion-lwf.cfg's counts, once: the weights cases below cut a file of 0.25s
    CFG=$BASE_CFG
    weight_counts
    echo "$OLD_FLOATS $ALL_FLOATS" > "$FIX/fashion.counts"
    floats_file "$FIX/fashion.weights" 24600 0000803e
}

setup() {
    hostile_setup
}

# ---- cfg files ---------------------------------------------------------------------------

@test "cfg: truncated in the middle of the new head (after filters=) is an error at its [task]" {
    derive trunc-head
    head -n "$(line_of '^filters=5' 2)" "$BASE_CFG" > "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^\[task\]' 2)" "fashion-b" "no loss layer"
}

@test "cfg: truncated in the middle of a line (no newline, 'temper') is an error at that line" {
    derive trunc-line
    local n
    n=$(line_of '^temperature=')
    { head -n $((n - 1)) "$BASE_CFG"; printf 'temper'; } > "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "key=value" "temper"
}

@test "cfg: truncated inside the trunk, given to lwf train, fails without touching the backup" {
    CFG=$T/trunc-train.cfg
    head -n 20 "$SMALL" > "$CFG"
    train "$T/new.data" "$CFG" "$OLDW"
    assert_rejected "$CFG" - "no [task] section"
}

@test "cfg: binary garbage (an ELF file) is an error at line 1" {
    CFG=$T/elf.cfg
    head -c 4096 /usr/lib/darknet/libdarknet.so > "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" 1 "not a text cfg"
}

@test "cfg: binary garbage appended after a valid cfg is an error at the first garbage line" {
    derive garbage-tail
    local n
    n=$(($(last_line) + 1))
    head -c 512 /usr/lib/darknet/libdarknet.so >> "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "not a text cfg"
}

@test "cfg: high-byte garbage without NUL or control characters is an error at line 1" {
    CFG=$T/highbytes.cfg
    printf '\xff\xfe\xc3\x28\xa0\xa1\xe2\x82\n\xf0\x28\x8c\xbc[\n' > "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" 1 "before the first [section]"
}

@test "cfg: garbage given to lwf train fails without touching the backup" {
    CFG=$T/elf-train.cfg
    head -c 4096 /usr/lib/darknet/libdarknet.so > "$CFG"
    train "$T/new.data" "$CFG" "$OLDW"
    assert_rejected "$CFG" 1 "not a text cfg"
}

@test "cfg: unterminated section header '[convolutional' is an error at its line" {
    derive unterminated
    local n
    n=$(line_of '^\[maxpool\]')
    set_line "$n" "[convolutional"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "malformed section header"
}

@test "cfg: filters=99999999 is an error at its line" {
    derive filters-huge
    set_key filters 99999999
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^filters=')" "filters" "99999999"
}

@test "cfg: filters=0 is an error at its line" {
    derive filters-zero
    set_key filters 0
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^filters=')" "filters" "'0'"
}

@test "cfg: size=-3 is an error at its line" {
    derive size-neg
    set_key size -3
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^size=')" "size" "-3"
}

@test "cfg: batch=2147483647 is an error at its line" {
    derive batch-huge
    set_key batch 2147483647
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^batch=')" "batch" "2147483647"
}

@test "cfg: height=100000 is an error at its line" {
    derive height-huge
    set_key height 100000
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^height=')" "height" "100000"
}

@test "cfg: height=width=60000 (each in range, together too large) is an error at [net]" {
    derive input-huge
    set_key height 60000
    set_key width 60000
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^\[net\]')" "too large"
}

@test "cfg: height=width=16384 (an input that fits, a first layer that does not) is an error at the layer" {
    derive layer-huge
    set_key height 16384
    set_key width 16384
    set_key min_crop 16384
    set_key max_crop 16384
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^\[convolutional\]')" "[convolutional]"
}

@test "cfg: stride=0 in [maxpool] is an error at its line" {
    derive stride-zero
    local n
    n=$(line_of '^stride=2')
    set_line "$n" "stride=0"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "stride" "'0'"
}

@test "cfg: groups=3 that does not divide the filters is an error at the layer" {
    derive groups3
    local n
    n=$(line_of '^filters=16')
    insert_after "$n" "groups=3"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^\[convolutional\]')" "groups=3"
}

@test "cfg: learning_rate=nan is an error at its line" {
    derive lr-nan
    set_key learning_rate nan
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^learning_rate=')" "learning_rate" "nan"
}

@test "cfg: temperature=1e999 (overflows a double) is an error at its line" {
    derive t-overflow
    set_key temperature 1e999
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^temperature=')" "temperature" "1e999"
}

@test "cfg: [route] layers=-999 is an error at its line" {
    derive route-far
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[route]\nlayers=-999\n"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" $((n + 1)) "[route]" "-999"
}

@test "cfg: [shortcut] from=abc is an error at its line" {
    derive shortcut-abc
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[shortcut]\nfrom=abc\n"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" $((n + 1)) "from" "abc"
}

@test "cfg: the new head outputs 7 values for a task with classes=5 is an error at its [task]" {
    derive head-7
    set_key filters 7 5 # the new head's convolution: the 5th filters= line
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^\[task\]' 2)" "fashion-b" "classes=5" "7"
}

@test "cfg: lwf train with a head of 3 outputs for a .data with classes=2 names both files" {
    CFG=$T/head3.cfg
    sed -e '/^data=.*ref.data$/d' "$SMALL" > "$CFG"
    set_key filters 3 3
    train "$T/new.data" "$CFG" "$OLDW"
    assert_rejected "$T/new.data" - "classes=2" "$CFG:$(line_of '^\[task\]' 2)" "3 values"
}

@test "cfg: 10,000 sections, the last one wrong, is an error at the last one's line" {
    derive ten-thousand
    local n
    n=$(line_of '^\[softmax\]')
    delete_lines "$n"
    yes $'[activation]\nactivation=linear' | head -n 20000 >> "$CFG" # (a bash loop is slow under bats)
    printf '[softmax]\ngroups=2\n' >> "$CFG"
    HOSTILE_DROP='^ *[0-9][0-9]* Activation Layer' hostile lwf info "$CFG"
    assert_rejected "$CFG" "$(line_of '^\[softmax\]')" "groups=2"
}

@test "cfg: a 100 KB line is an error at its line" {
    derive long-line
    local n
    n=$(line_of '^\[maxpool\]')
    head -c 100000 /dev/zero | tr '\0' 'x' | sed 's/^/# /' > "$T/long"
    sed -i "$((n - 1))r $T/long" "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "longer than"
}

@test "cfg: a [net] key repeated (batch twice) is an error at the second, naming the first" {
    derive net-twice
    local n
    n=$(line_of '^batch=')
    insert_after "$n" "batch=64"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" $((n + 1)) "batch" "twice" "line $n"
}

@test "cfg: a [task] key repeated (name twice) is an error at the second" {
    derive name-twice
    local n
    n=$(line_of '^name=fashion-b')
    insert_after "$n" "name=fashion-c"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" $((n + 1)) "name" "twice"
}

@test "cfg: [net] given twice is an error at the second" {
    derive net-section-twice
    local n
    n=$(line_of '^\[maxpool\]')
    insert_after $((n - 1)) "[net]"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "[net]" "twice"
}

@test "cfg: [dropout] as the first layer is an error at its line" {
    derive dropout-first
    local n
    n=$(line_of '^\[convolutional\]')
    insert_after $((n - 1)) "[dropout]\nprobability=0.5\n"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" "$n" "[dropout]" "first layer"
}

@test "cfg: [route] with an empty layers= is an error at its line" {
    derive route-empty
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[route]\nlayers=\n"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" $((n + 1)) "[route]" "layers"
}

@test "cfg: channels=4, given to lwf train, fails without touching the backup" {
    CFG=$T/c4.cfg
    sed 's/^channels=3/channels=4/' "$SMALL" > "$CFG"
    floats_file "$T/c4.weights" 175 0000803e # the old network of a 4-channel input
    train "$T/new.data" "$CFG" "$T/c4.weights"
    assert_rejected "$CFG" - "channels=4" "RGB"
}

@test "cfg: channels=1, given to lwf predict, is an error naming the cfg" {
    CFG=$T/c1.cfg
    sed 's/^channels=3/channels=1/' "$SMALL" > "$CFG"
    floats_file "$T/backup/c1.weights" 77 0000803e
    hostile lwf predict "$CFG" "$T/backup/c1.weights" "$FIX/img/t0_lblzero.png"
    assert_rejected "$CFG" - "channels=1" "RGB"
}

@test "cfg: a directory given as the cfg is an error naming it" {
    CFG=$T/dir.cfg
    mkdir "$CFG"
    hostile lwf info "$CFG"
    assert_rejected "$CFG" -
}

# ---- .data files (lwf train) -------------------------------------------------------------

@test "data: no classes= line is an error naming the .data" {
    new_data "$T/new.data" "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" - "no classes="
}

@test "data: no train= line is an error naming the .data" {
    new_data "$T/new.data" classes=2 "labels=$FIX/labels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" - "no train="
}

@test "data: no labels= line is an error naming the .data" {
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" - "no labels="
}

@test "data: a missing .data file is an error naming it" {
    train "$T/nosuch.data" "$SMALL" "$OLDW"
    assert_rejected "$T/nosuch.data" - "cannot open"
}

@test "data: classes=0 is an error at its line" {
    new_data "$T/new.data" "train=$FIX/train.list" classes=0 "labels=$FIX/labels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 2 "classes" "'0'"
}

@test "data: classes=-2 is an error at its line" {
    new_data "$T/new.data" classes=-2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 1 "classes" "-2"
}

@test "data: classes=99999999999 is an error at its line" {
    new_data "$T/new.data" classes=99999999999 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 1 "classes" "99999999999"
}

@test "data: classes=2.5 is an error at its line" {
    new_data "$T/new.data" classes=2.5 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 1 "classes" "2.5"
}

@test "data: binary garbage (an ELF file) is an error at line 1" {
    head -c 2048 /usr/lib/darknet/libdarknet.so > "$T/new.data"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 1 "not a text file"
}

@test "data: high-byte garbage is an error at line 1" {
    printf '\xff\xfe\xc3\x28\xa0\xa1\n' > "$T/new.data"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 1 "key=value"
}

@test "data: an unknown key is an error at its line" {
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup" "clases=2"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 5 "unknown key" "clases"
}

@test "data: a directory given as the .data is an error naming it" {
    mkdir "$T/dir.data"
    train "$T/dir.data" "$SMALL" "$OLDW"
    assert_rejected "$T/dir.data" -
}

@test "data: backup= names a regular file: an error naming it, the file unchanged" {
    echo "not a folder" > "$T/backup/plain"
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup/plain"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/backup/plain" - "not a folder"
}

@test "data: labels= with 3 labels for classes=2 is an error naming the labels file" {
    printf 'lblzero\nlblone\nlbltwo\n' > "$T/labels3"
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$T/labels3" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/labels3" - "3 labels" "classes=2"
}

@test "data: a 100 KB line is an error at its line" {
    new_data "$T/new.data"
    { printf 'train='; head -c 100000 /dev/zero | tr '\0' 'x'; echo; } >> "$T/new.data"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 6 "longer than"
}

# ---- lists (lwf train) -------------------------------------------------------------------

@test "list: an empty training list is an error naming it" {
    : > "$T/empty.list"
    data_with_list "$T/empty.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/empty.list" - "empty list"
}

@test "list: a list of blank lines is an error naming it" {
    printf '\n   \n\t\n' > "$T/blank.list"
    data_with_list "$T/blank.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/blank.list" - "empty list"
}

@test "list: a missing training list is an error naming it" {
    data_with_list "$T/nosuch.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/nosuch.list" - "cannot open"
}

@test "list: a missing image is an error at its list line" {
    list_with "$T/missing.list" "$T/img/gone_lblzero.png"
    data_with_list "$T/missing.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/missing.list" 9 "gone_lblzero.png"
}

@test "list: a missing path with spaces and shell syntax is an error at its line, and no shell runs it" {
    list_with "$T/shell.list" "$T/a b; touch $T/pwned; \$(touch $T/pwned2) _lblzero.png"
    data_with_list "$T/shell.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/shell.list" 9 "a b; touch"
    # (one test per line: bats stops a test on a failing line, not on a failing && operand)
    [ ! -e "$T/pwned" ]
    [ ! -e "$T/pwned2" ]
}

@test "list: a path matching no label is an error at its line" {
    cp "$FIX/img/t0_lblzero.png" "$T/unlabelled.png"
    list_with "$T/nolabel.list" "$T/unlabelled.png"
    data_with_list "$T/nolabel.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/nolabel.list" 9 "matches no label"
}

@test "list: a path matching two labels is an error at its line" {
    cp "$FIX/img/t0_lblzero.png" "$T/x_lblzero_lblone.png"
    list_with "$T/twolabels.list" "$T/x_lblzero_lblone.png"
    data_with_list "$T/twolabels.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/twolabels.list" 9 "matches two labels"
}

@test "list: binary garbage (an ELF file) is an error at line 1" {
    head -c 2048 /usr/lib/darknet/libdarknet.so > "$T/elf.list"
    data_with_list "$T/elf.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/elf.list" 1 "not a text file"
}

@test "list: high-byte garbage lines are an error at the first one" {
    printf '\xff\xfe\xc3\x28lblzero\n\xa0\xa1lblone\n' > "$T/high.list"
    data_with_list "$T/high.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/high.list" 1 "cannot open image"
}

@test "list: a folder listed as an image is an error at its line" {
    mkdir "$T/folder_lblzero.png"
    list_with "$T/folder.list" "$T/folder_lblzero.png"
    data_with_list "$T/folder.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/folder.list" 9 "folder_lblzero.png"
}

@test "list: a FIFO listed as an image is an error at its line (not a hang)" {
    mkfifo "$T/fifo_lblzero.png"
    list_with "$T/fifo.list" "$T/fifo_lblzero.png"
    data_with_list "$T/fifo.list"
    HOSTILE_TIMEOUT=20 train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/fifo.list" 9 "fifo_lblzero.png" "not a regular file"
}

@test "list: a 100 KB line is an error at its line" {
    { cat "$FIX/train.list"; head -c 100000 /dev/zero | tr '\0' 'x'; echo; } > "$T/long.list"
    data_with_list "$T/long.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/long.list" 9 "longer than"
}

@test "list: an empty labels file is an error naming it" {
    : > "$T/nolabels"
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$T/nolabels" "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/nolabels" - "empty list"
}

@test "list: a valid list with a missing image fails lwf valid at its line" {
    WATCH=$T/backup
    list_with "$T/valid.list" "$T/img/gone_lblone.png"
    new_data "$T/valid.data" classes=2 "valid=$T/valid.list" "labels=$FIX/labels"
    CFG=$T/valid.cfg
    sed "s|^data=.*ref.data$|data=$T/valid.data|" "$SMALL" > "$CFG"
    hostile lwf valid "$CFG" "$T/backup/small.weights" -task new
    assert_rejected "$T/valid.list" 9 "gone_lblone.png"
}

# ---- images ------------------------------------------------------------------------------

# bad_image NAME: trains on the fixture's list plus $T/img/NAME (line 9).
bad_image_train() {
    list_with "$T/bad.list" "$T/img/$1"
    data_with_list "$T/bad.list"
    train "$T/new.data" "$SMALL" "$OLDW"
}

@test "image: a truncated PNG in the training list fails before anything is written" {
    mkdir -p "$T/img"
    head -c 60 "$FIX/img/t0_lblzero.png" > "$T/img/trunc_lblzero.png"
    bad_image_train trunc_lblzero.png
    assert_rejected "$T/bad.list" 9 "$T/img/trunc_lblzero.png"
}

@test "image: a truncated JPEG in the training list fails before anything is written" {
    mkdir -p "$T/img"
    "$MKIMG" -s 32 "$T/full_lblone.jpg"
    head -c $(($(stat -c %s "$T/full_lblone.jpg") - 40)) "$T/full_lblone.jpg" > "$T/img/trunc_lblone.jpg"
    bad_image_train trunc_lblone.jpg
    assert_rejected "$T/bad.list" 9 "$T/img/trunc_lblone.jpg"
}

@test "image: a zero-byte image is an error at its list line" {
    mkdir -p "$T/img"
    : > "$T/img/empty_lblzero.png"
    bad_image_train empty_lblzero.png
    assert_rejected "$T/bad.list" 9 "$T/img/empty_lblzero.png"
}

@test "image: a text file named .png is an error at its list line" {
    mkdir -p "$T/img"
    echo "this is not a picture" > "$T/img/text_lblzero.png"
    bad_image_train text_lblzero.png
    assert_rejected "$T/bad.list" 9 "$T/img/text_lblzero.png"
}

@test "image: a forged PNG header claiming 100000x100000 is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -forge 100000 100000 "$T/img/huge_lblzero.png"
    bad_image_train huge_lblzero.png
    assert_rejected "$T/bad.list" 9 "$T/img/huge_lblzero.png"
}

@test "image: a forged PNG header claiming 16000x16000 is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -forge 16000 16000 "$T/img/big_lblzero.png"
    bad_image_train big_lblzero.png
    assert_rejected "$T/bad.list" 9 "$T/img/big_lblzero.png" "16000x16000"
}

@test "image: a forged PNG header claiming 0x0 is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -forge 0 0 "$T/img/zero_lblzero.png"
    bad_image_train zero_lblzero.png
    assert_rejected "$T/bad.list" 9 "$T/img/zero_lblzero.png"
}

@test "image: a truncated PNG with -teacher record fails before anything is written" {
    mkdir -p "$T/img"
    head -c 60 "$FIX/img/t0_lblzero.png" > "$T/img/trunc_lblzero.png"
    list_with "$T/bad.list" "$T/img/trunc_lblzero.png"
    data_with_list "$T/bad.list"
    train "$T/new.data" "$SMALL" "$OLDW" -teacher record
    assert_rejected "$T/bad.list" 9 "$T/img/trunc_lblzero.png"
}

@test "image: lwf predict on a truncated PNG is an error naming it" {
    head -c 60 "$FIX/img/t0_lblzero.png" > "$T/trunc.png"
    hostile lwf predict "$SMALL" "$T/backup/small.weights" "$T/trunc.png"
    assert_rejected "$T/trunc.png" -
}

@test "image: lwf predict on a missing image is an error naming it" {
    hostile lwf predict "$SMALL" "$T/backup/small.weights" "$T/nosuch.png"
    assert_rejected "$T/nosuch.png" - "cannot open"
}

@test "image: lwf predict on a folder is an error naming it" {
    mkdir "$T/folder.png"
    hostile lwf predict "$SMALL" "$T/backup/small.weights" "$T/folder.png"
    assert_rejected "$T/folder.png" -
}

@test "image: lwf predict on a FIFO is an error naming it (not a hang)" {
    mkfifo "$T/fifo.png"
    HOSTILE_TIMEOUT=20 hostile lwf predict "$SMALL" "$T/backup/small.weights" "$T/fifo.png"
    assert_rejected "$T/fifo.png" - "not a regular file"
}

@test "image: lwf predict on a forged 12000x12000 PNG header is an error naming it" {
    "$MKIMG" -forge 12000 12000 "$T/huge.png"
    hostile lwf predict "$SMALL" "$T/backup/small.weights" "$T/huge.png"
    assert_rejected "$T/huge.png" - "12000x12000"
}

# ---- weights -----------------------------------------------------------------------------
# cfg/fashion-lwf.cfg stores, in order (floats): conv 0 (bn, 3->16, 3x3) 496, conv 2
# (bn, 16->32) 4736, conv 4 (bn, 32->64) 18688, the old head's conv (64->5, 1x1) 325, the
# new head's conv 325.  Layer boundaries: 0 496 5232 23920 | 24245 (old network) | 24570.

# fashion_weights_cut FLOATS [EXTRA_BYTES]: W = a weights file for cfg/fashion-lwf.cfg
# (0.25 everywhere) of FLOATS floats and EXTRA_BYTES bytes, placed in the watched folder.
fashion_weights_cut() {
    [ "$(cat "$FIX/fashion.counts")" = "24245 24570" ] || {
        echo "cfg/fashion-lwf.cfg changed: its weights are now $(cat "$FIX/fashion.counts") floats" \
            "(old network, whole model): update the boundaries above" >&2
        return 1
    }
    W=$T/backup/cut.weights
    head -c $((20 + 4 * $1 + ${2:-0})) "$FIX/fashion.weights" > "$W"
    [ "$(stat -c %s "$W")" -eq $((20 + 4 * $1 + ${2:-0})) ]
}

@test "weights: fashion-lwf.cfg, header only (cut before layer 0) is too short" {
    fashion_weights_cut 0
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short" "24245" "24570"
}

@test "weights: fashion-lwf.cfg, cut in layer 0 (after its biases) is too short" {
    fashion_weights_cut 16
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut at the end of layer 0 is too short" {
    fashion_weights_cut 496
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut in the middle of layer 2 is too short" {
    fashion_weights_cut 2864
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut at the end of layer 2 is too short" {
    fashion_weights_cut 5232
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut in the middle of layer 4 is too short" {
    fashion_weights_cut 14576
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut at the end of the trunk (layer 4) is too short" {
    fashion_weights_cut 23920
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut in the old head's convolution is too short" {
    fashion_weights_cut 24100
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too short"
}

@test "weights: fashion-lwf.cfg, cut in the new head's convolution is neither old network nor whole model" {
    fashion_weights_cut 24400
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "between the two"
}

@test "weights: fashion-lwf.cfg, cut in the middle of a float is an error" {
    fashion_weights_cut 24245 2
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "whole number of floats"
}

@test "weights: fashion-lwf.cfg, 4 extra bytes after the whole model is too long" {
    fashion_weights_cut 24571
    hostile lwf info "$BASE_CFG" "$W"
    assert_rejected "$W" - "too long"
}

@test "weights: fashion-lwf.cfg, 1 extra byte after the whole model is an error" {
    fashion_weights_cut 24570 1
    hostile lwf valid "$BASE_CFG" "$W"
    assert_rejected "$W" - "whole number of floats"
}

@test "weights: another cfg's weights (small.cfg's) for fashion-lwf.cfg is an error naming both counts" {
    W=$T/backup/small.weights
    hostile lwf predict "$BASE_CFG" "$W" "$FIX/img/t0_lblzero.png"
    assert_rejected "$W" - "149 floats" "24245" "24570"
}

@test "weights: fashion-lwf.cfg's weights for small.cfg (lwf valid) is too long" {
    fashion_weights_cut 24570
    hostile lwf valid "$SMALL" "$W"
    assert_rejected "$W" - "too long"
}

@test "weights: a corrupt header (version 1000000.0.0) is an error naming the file" {
    W=$T/backup/corrupt.weights
    cp "$T/backup/small.weights" "$W"
    printf '\x40\x42\x0f\x00' | dd of="$W" conv=notrunc status=none
    hostile lwf valid "$SMALL" "$W"
    assert_rejected "$W" - "not a Darknet .weights file"
}

@test "weights: a header cut after 10 bytes is an error naming the file" {
    W=$T/backup/tenbytes.weights
    head -c 10 "$T/backup/small.weights" > "$W"
    hostile lwf info "$SMALL" "$W"
    assert_rejected "$W" - "header"
}

@test "weights: an empty file is an error naming it" {
    W=$T/backup/empty.weights
    : > "$W"
    hostile lwf predict "$SMALL" "$W" "$FIX/img/t0_lblzero.png"
    assert_rejected "$W" - "header"
}

@test "weights: a directory is an error naming it" {
    W=$T/backup/dir.weights
    mkdir "$W"
    hostile lwf valid "$SMALL" "$W"
    assert_rejected "$W" - "not a regular file"
}

@test "weights: a character device (/dev/zero) is an error naming it, without reading forever" {
    hostile lwf info "$SMALL" /dev/zero
    assert_rejected /dev/zero - "not a regular file"
}

@test "weights: NaN in a weights file is an error naming it" {
    W=$T/backup/nan.weights
    floats_file "$W" 149 0000c07f
    hostile lwf valid "$SMALL" "$W"
    assert_rejected "$W" - "not finite"
}

@test "weights: lwf train from NaN old weights fails before anything is written" {
    floats_file "$T/nan.weights" 139 0000c07f
    train "$T/new.data" "$SMALL" "$T/nan.weights"
    assert_rejected "$T/nan.weights" - "not finite"
}

@test "weights: lwf train from infinite old weights fails before anything is written" {
    floats_file "$T/inf.weights" 139 000080ff
    train "$T/new.data" "$SMALL" "$T/inf.weights"
    assert_rejected "$T/inf.weights" - "not finite"
}

@test "weights: lwf train from truncated old weights fails before anything is written" {
    head -c 300 "$OLDW" > "$T/short.weights"
    train "$T/new.data" "$SMALL" "$T/short.weights"
    assert_rejected "$T/short.weights" - "too short"
}

@test "weights: lwf train resuming from a truncated backup fails before anything is written" {
    head -c 400 "$T/backup/small.backup" > "$T/backup/cut.backup"
    train "$T/new.data" "$SMALL" "$T/backup/cut.backup"
    assert_rejected "$T/backup/cut.backup" - "floats"
}

@test "weights: lwf train resuming with a corrupt .state beside the backup fails before anything is written" {
    head -c 50 /usr/lib/darknet/libdarknet.so > "$T/backup/small.backup.state"
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$T/backup/small.backup.state" - "state"
}

@test "weights: lwf train resuming from a backup whose header counts 2^63-1 images fails before anything is written" {
    printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of="$T/backup/small.backup" bs=1 seek=12 conv=notrunc status=none
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$T/backup/small.backup" - "9223372036854775807" "beyond"
}

@test "weights: lwf train resuming with NaN momentum in the .state fails before anything is written" {
    # the state: a 48-byte header (see plugin/io/state.c), then the momentum floats
    local st=$T/backup/small.backup.state size
    size=$(stat -c %s "$st")
    floats_file "$T/nan.floats" $(((size - 48) / 4)) 0000c07f
    { head -c 48 "$FIX/backup.ref/small.backup.state"; tail -c +21 "$T/nan.floats"; } > "$st"
    [ "$(stat -c %s "$st")" -eq "$size" ]
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$st" - "not finite"
}

@test "weights: lwf train from a backup cut to the old network's size (its .state beside it) fails before anything is written" {
    # the size alone would pass for an old network: a fresh run would overwrite the backup
    head -c "$(stat -c %s "$OLDW")" "$T/backup/small.backup" > "$T/cut"
    cp "$T/cut" "$T/backup/small.backup"
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$T/backup/small.backup" - "small.backup.state" "cut off"
}

@test "weights: lwf train resuming without the original old network fails before anything is written" {
    rm "$T/backup/small.teacher.weights"
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$T/backup/small.teacher.weights" - "missing"
}

@test "weights: lwf train with no weights for a cfg with an old head is an error naming the cfg" {
    train "$T/new.data" "$SMALL"
    assert_rejected "$SMALL" - "old head"
}

# ---- command lines -----------------------------------------------------------------------

@test "args: lwf train with no arguments is an error with the usage" {
    hostile lwf train
    assert_rejected "train" - "missing arguments" "usage"
}

@test "args: lwf valid without weights is an error with the usage" {
    hostile lwf valid "$SMALL"
    assert_rejected "valid" - "missing arguments" "usage"
}

@test "args: lwf predict without an image is an error with the usage" {
    hostile lwf predict "$SMALL" "$T/backup/small.weights"
    assert_rejected "predict" - "missing arguments" "usage"
}

@test "args: lwf train with an extra argument is an error naming it" {
    train "$T/new.data" "$SMALL" "$OLDW" extra.weights
    assert_rejected "extra.weights" - "unexpected argument"
}

@test "args: lwf train with an unknown flag is an error naming it" {
    train "$T/new.data" "$SMALL" "$OLDW" -bogus
    assert_rejected "-bogus" - "unknown option"
}

@test "args: lwf train -seed without a value is an error naming the flag" {
    hostile lwf train "$T/new.data" "$SMALL" "$OLDW" -quiet -seed
    assert_rejected "-seed" - "missing value"
}

@test "args: lwf train -seed abc is an error naming the value" {
    hostile lwf train "$T/new.data" "$SMALL" "$OLDW" -quiet -seed abc
    assert_rejected "'abc'" - "-seed"
}

@test "args: lwf train -seed -5 is an error naming the value" {
    hostile lwf train "$T/new.data" "$SMALL" "$OLDW" -quiet -seed -5
    assert_rejected "'-5'" - "-seed"
}

@test "args: lwf train -seed 99999999999999999999 (overflow) is an error naming the value" {
    hostile lwf train "$T/new.data" "$SMALL" "$OLDW" -quiet -seed 99999999999999999999
    assert_rejected "99999999999999999999" - "-seed"
}

@test "args: lwf train -stop 0 is an error naming the value" {
    train "$T/new.data" "$SMALL" "$OLDW" -stop 0
    assert_rejected "'0'" - "-stop"
}

@test "args: lwf train -teacher bogus is an error naming the value" {
    train "$T/new.data" "$SMALL" "$OLDW" -teacher bogus
    assert_rejected "'bogus'" - "-teacher"
}

@test "args: lwf train -method bogus is an error naming the value" {
    train "$T/new.data" "$SMALL" "$OLDW" -method bogus
    assert_rejected "'bogus'" - "-method"
}

@test "args: lwf train -teacher record with random flips on fails before anything is written" {
    CFG=$T/flip.cfg
    sed 's/^flip=0/flip=1/' "$SMALL" > "$CFG"
    cp "$T/backup/small.teacher.weights" "$T/backup/flip.teacher.weights"
    cp "$T/backup/small.log.csv" "$T/backup/flip.log.csv"
    train "$T/new.data" "$CFG" "$OLDW" -teacher record
    assert_rejected "$CFG" - "-teacher record needs augmentation off"
}

@test "args: lwf valid -top 0 is an error naming the value" {
    hostile lwf valid "$SMALL" "$T/backup/small.weights" -top 0
    assert_rejected "'0'" - "-top"
}

@test "args: lwf predict -top 0 is an error naming the value" {
    hostile lwf predict "$SMALL" "$T/backup/small.weights" "$FIX/img/t0_lblzero.png" -top 0
    assert_rejected "'0'" - "-top"
}

@test "args: lwf valid -task nosuch is an error naming the task and the cfg" {
    hostile lwf valid "$SMALL" "$T/backup/small.weights" -task nosuch
    assert_rejected "$SMALL" - "nosuch"
}

@test "args: lwf predict -task nosuch is an error naming the task and the cfg" {
    hostile lwf predict "$SMALL" "$T/backup/small.weights" "$FIX/img/t0_lblzero.png" -task nosuch
    assert_rejected "$SMALL" - "nosuch"
}

@test "args: lwf valid -task without a value is an error naming the flag" {
    hostile lwf valid "$SMALL" "$T/backup/small.weights" -task
    assert_rejected "-task" - "missing value"
}

@test "args: lwf valid -calib without -merged is an error naming both flags" {
    hostile lwf valid "$SMALL" "$T/backup/small.weights" -calib 100
    assert_rejected "-calib" - "-merged"
}

@test "args: lwf valid -merged -calib -1 is an error naming the value" {
    hostile lwf valid "$SMALL" "$T/backup/small.weights" -merged -calib -1
    assert_rejected "'-1'" - "-calib"
}

# ---- divergence --------------------------------------------------------------------------

@test "divergence: learning_rate=1e9 stops with an error and never writes non-finite weights" {
    # Not an input error: the run starts, and its backups before the divergence are kept.
    # What must hold: no crash (NaN activations once made Darknet's maxpool backward write
    # before its delta buffer), a non-zero exit, and no weights file with a NaN or inf.
    CFG=$T/lr.cfg
    sed -e 's/^learning_rate=.*/learning_rate=1e9/' -e 's/^warmup_learning_rate=.*/warmup_learning_rate=1e9/' \
        -e 's/^max_batches=.*/max_batches=40/' "$SMALL" > "$CFG"
    floats_file "$T/one.weights" 139 0000803f
    hostile lwf train "$T/new.data" "$CFG" "$T/one.weights" -seed 1 -quiet
    assert_failed
    # stopped by the loss check (a NaN loss, before the backward pass) or the weights check
    # ("not finite"), whichever sees it first: both say "stopping before writing".  (The new
    # head's loss once hid NaN logits as -log(FLT_MIN), so only the weights check fired.)
    assert_contains "stopping before writing" "$CFG"
    local f
    for f in "$T"/backup/lr*.weights "$T"/backup/lr.backup; do
        [ -e "$f" ] || continue
        run "$DARKNET" lwf info "$CFG" "$f"
        assert_ok
    done
    [ -z "$(find "$WATCH" -name '*.tmp.*')" ]
}

# ---- not errors --------------------------------------------------------------------------

@test "not an error: a 1x1 image trains (Darknet scales every image to the input; so do we)" {
    # A 1x1 picture is a valid image: the centre crop scales it up to 8x8, as stock
    # `classifier valid` would.  Refusing it would refuse what Darknet accepts.
    mkdir -p "$T/img"
    "$MKIMG" -s 1 "$T/img/tiny_lblzero.png"
    list_with "$T/tiny.list" "$T/img/tiny_lblzero.png"
    data_with_list "$T/tiny.list"
    rm "$T/backup/small.weights" # (the fixture's backup folder has one from its own run)
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    assert_contains "9 images"
    [ -s "$T/backup/small.weights" ]
}

@test "not an error: -method finetune keeps no original old network, and resumes without it" {
    # only -method lwf reads <cfg>.teacher.weights; a fine-tuning run in its own folder
    sed "s|^backup=.*|backup=$T/ft|" "$T/new.data" > "$T/ft.data"
    run "$DARKNET" lwf train "$T/ft.data" "$SMALL" "$OLDW" -method finetune -seed 1 -quiet -stop 2 -backup 1
    assert_ok
    [ -s "$T/ft/small.backup" ]
    [ ! -e "$T/ft/small.teacher.weights" ]
    run "$DARKNET" lwf train "$T/ft.data" "$SMALL" "$T/ft/small.backup" -method finetune -seed 1 -quiet
    assert_ok
    assert_contains "resume: from $T/ft/small.backup at iteration 2"
    [ -s "$T/ft/small.weights" ]
}

@test "not an error: an image path with spaces trains (list lines keep their inner blanks)" {
    mkdir -p "$T/with space"
    cp "$FIX/img/t0_lblone.png" "$T/with space/a b_lblone.png"
    list_with "$T/space.list" "$T/with space/a b_lblone.png"
    data_with_list "$T/space.list"
    rm "$T/backup/small.weights"
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    assert_contains "9 images"
    [ -s "$T/backup/small.weights" ]
}

@test "not an error: a .state whose iteration (2^63-1) does not match its backup is ignored: resume without momentum" {
    # The state belongs to another backup: resuming restarts the momentum from zero, as
    # documented.  The mismatch check once multiplied the file's iteration and overflowed.
    printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of="$T/backup/small.backup.state" bs=1 seek=12 conv=notrunc \
        status=none
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$T/backup/small.backup" -seed 1 -quiet
    assert_ok
    assert_contains "momentum starts from zero" "resume: from $T/backup/small.backup at iteration 2"
}

@test "not an error: a .state of another iteration gives no momentum: the run is the one resumed without a .state" {
    # iteration 3 instead of the backup's 2: read and checked, then not applied (its
    # momentum was once copied into the layers before the iteration was compared)
    printf '\x03' | dd of="$T/backup/small.backup.state" bs=1 seek=12 conv=notrunc status=none
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$T/backup/small.backup" -seed 1 -quiet
    assert_ok
    assert_contains "momentum starts from zero" "for iteration 3"
    # the same resume from a copy of the backup folder without the .state
    cp -r "$FIX/backup.ref" "$T/nostate"
    rm "$T/nostate/small.backup.state"
    sed "s|^backup=.*|backup=$T/nostate|" "$T/new.data" > "$T/nostate.data"
    run "$DARKNET" lwf train "$T/nostate.data" "$SMALL" "$T/nostate/small.backup" -seed 1 -quiet
    assert_ok
    assert_contains "resume: no $T/nostate/small.backup.state: momentum starts from zero"
    cmp "$T/backup/small.weights" "$T/nostate/small.weights"
    # guard: the momentum matters here (the reference run kept it, and ends elsewhere)
    run cmp -s "$FIX/backup.ref/small.weights" "$T/nostate/small.weights"
    [ "$status" -eq 1 ]
}

@test "not an error: resuming after batch= changed keeps the seed of the .state (no -seed given), without its momentum" {
    # the backup has seen 8 images: iteration 2 at batch=4, 4 at batch=2, not the state's 2
    mkdir -p "$T/b2"
    sed 's/^batch=4$/batch=2/' "$SMALL" > "$T/b2/small.cfg"
    grep -q '^batch=2$' "$T/b2/small.cfg"
    run "$DARKNET" lwf train "$T/new.data" "$T/b2/small.cfg" "$T/backup/small.backup" -quiet
    assert_ok
    assert_contains "seed 1," "momentum starts from zero" "resume: from $T/backup/small.backup at iteration 4"
}

@test "data: a key given twice (classes=2, then classes=3) is an error at the second, naming the first" {
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/backup" classes=3
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 5 "key 'classes' given twice (first at line 1)"
}

@test "data: labels= and names= both given is an error at the second (names is an alias of labels)" {
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "names=$FIX/labels" \
        "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 4 "key 'names' given twice (first at line 3 as 'labels'"
}

@test "data: a control character in a value is an error at its line" {
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" $'labels=lab\x1bels' "backup=$T/backup"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/new.data" 3 "control character 0x1b"
}

@test "not an error: a .data with CRLF line ends trains" {
    sed -i 's/$/\r/' "$T/new.data"
    local before
    before=$(sha256sum < "$T/backup/small.weights")
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    # the reference run's weights (from zeros) replaced by this run's (from 0.25s)
    [ "$(sha256sum < "$T/backup/small.weights")" != "$before" ]
}

# ---- images whose header claims more than the file holds; a top-down BMP ------------------
# stb_image reads zeros past the end of a file: a cut BMP decoded as a (partly) black image,
# a 64-byte BMP or a 1.4 KB JPEG claiming 8000x8000 as a 192 MB one, and each trained.

# patch4 FILE OFFSET HEX8: overwrites 4 bytes at OFFSET (8 hex digits, in file order).
patch4() {
    printf "$(sed 's/\(..\)/\\x\1/g' <<< "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "image: a BMP cut after its header is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -s 8 "$T/full.bmp"
    head -c 54 "$T/full.bmp" > "$T/img/hdr_lblzero.bmp"
    bad_image_train hdr_lblzero.bmp
    assert_rejected "$T/bad.list" 9 "$T/img/hdr_lblzero.bmp" "corrupt BMP (pixel data shorter than the header says)"
}

@test "image: a BMP cut inside its pixels is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -s 8 "$T/full.bmp"
    head -c 150 "$T/full.bmp" > "$T/img/cut_lblzero.bmp"
    bad_image_train cut_lblzero.bmp
    assert_rejected "$T/bad.list" 9 "$T/img/cut_lblzero.bmp" "corrupt BMP"
}

@test "image: a 64-byte BMP claiming 8000x8000 is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -s 8 "$T/full.bmp"
    head -c 64 "$T/full.bmp" > "$T/img/forged_lblone.bmp"
    patch4 "$T/img/forged_lblone.bmp" 18 401f0000 # width 8000
    patch4 "$T/img/forged_lblone.bmp" 22 401f0000 # height 8000
    bad_image_train forged_lblone.bmp
    assert_rejected "$T/bad.list" 9 "$T/img/forged_lblone.bmp" "corrupt BMP"
}

@test "image: a JPEG whose frame header claims 8000x8000 is an error at its list line" {
    mkdir -p "$T/img"
    "$MKIMG" -s 32 "$T/img/forged_lblone.jpg"
    # the SOF0 marker (FF C0): length (2 bytes), precision (1), height (2), width (2)
    local sof
    sof=$(od -An -v -tx1 -w1 "$T/img/forged_lblone.jpg" | awk '$1 == "c0" && prev == "ff" { print NR - 2; exit } { prev = $1 }')
    [ -n "$sof" ]
    patch4 "$T/img/forged_lblone.jpg" $((sof + 5)) 1f401f40
    bad_image_train forged_lblone.jpg
    assert_rejected "$T/bad.list" 9 "$T/img/forged_lblone.jpg" "corrupt JPEG" "8000x8000"
}

@test "not an error: a top-down BMP (negative height in its header) trains, and lwf predict reads it" {
    # stbi_info reports the header's -8; it was refused as "image size 8x-8 out of range"
    mkdir -p "$T/img"
    "$MKIMG" -s 8 "$T/img/down_lblone.bmp"
    patch4 "$T/img/down_lblone.bmp" 22 f8ffffff # height -8: rows stored top to bottom
    list_with "$T/down.list" "$T/img/down_lblone.bmp"
    data_with_list "$T/down.list"
    rm "$T/backup/small.weights"
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    assert_contains "9 images"
    [ -s "$T/backup/small.weights" ]
    run "$DARKNET" lwf predict "$SMALL" "$T/backup/small.weights" "$T/img/down_lblone.bmp"
    assert_ok
    assert_contains "lblone"
}

@test "weights: lwf train resuming with a .state of another format version fails before anything is written" {
    # version 1 (before the teacher mode was dropped from the header): named, with the way out
    printf '\x01\x00\x00\x00' | dd of="$T/backup/small.backup.state" bs=1 seek=8 conv=notrunc status=none
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$T/backup/small.backup.state" - "version 1" "reads version 2"
}

@test "list: a missing image names its list line, the file and why (the image loader's own message)" {
    list_with "$T/gone.list" "$T/img/gone_lblzero.png"
    data_with_list "$T/gone.list"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/gone.list" 9 "$T/img/gone_lblzero.png: cannot open image" "No such file"
}

@test "cfg: [net] max_batches=0 and warmup_batches=0 (both defaults) is refused by lwf train: nothing to train" {
    # without the keys (policy=constant: poly has its own check)
    CFG=$T/zero-iter.cfg
    sed -e '/^max_batches=/d' -e '/^warmup_batches=/d' -e 's/^policy=poly/policy=constant/' "$SMALL" > "$CFG"
    train "$T/new.data" "$CFG" "$OLDW"
    assert_rejected "$CFG" - "[net] max_batches=0 and warmup_batches=0: nothing to train"
    # written out, with policy=poly: the same message, not poly's
    sed -e 's/^max_batches=.*/max_batches=0/' -e 's/^warmup_batches=.*/warmup_batches=0/' "$SMALL" > "$CFG"
    train "$T/new.data" "$CFG" "$OLDW"
    assert_rejected "$CFG" - "nothing to train"
    # guard: warm-up alone (max_batches=0, policy=constant) still trains
    sed -e 's/^max_batches=.*/max_batches=0/' -e 's/^policy=poly/policy=constant/' "$SMALL" > "$CFG"
    mkdir "$T/b2"
    new_data "$T/warm.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/b2"
    run "$DARKNET" lwf train "$T/warm.data" "$CFG" "$OLDW" -seed 1 -quiet
    assert_ok
    [ -s "$T/b2/zero-iter.weights" ]
}

@test "list: lwf predict with a task whose labels= file is missing is an error naming it" {
    # (the .data read before it is freed on this path too: make check's leak checker sees it)
    new_data "$T/nolabels.data" classes=2 "labels=$T/nosuch.labels"
    CFG=$T/nolabels.cfg
    sed "s|^data=.*ref.data$|data=$T/nolabels.data|" "$SMALL" > "$CFG"
    hostile lwf predict "$CFG" "$T/backup/small.weights" "$FIX/img/t0_lblzero.png"
    assert_rejected "$T/nosuch.labels" - "cannot open"
}

# ---- text inputs with no end: devices, FIFOs, a file with no newline (issue 11, 5) ---------
# Every text input goes through one opener (regular files only, never blocking on a FIFO)
# and one line reader (stops at the 64 KiB line limit): cfg, .data, list, labels.

# no_end KIND: makes $T/noend.<KIND> per $NOEND (zero: a link to /dev/zero; fifo: a FIFO;
# huge: a 4 GiB sparse file of NULs, no newline) and echoes its path.
no_end() {
    local p=$T/noend.$1
    case $NOEND in
    zero) ln -s /dev/zero "$p" ;;
    fifo) mkfifo "$p" ;;
    huge) truncate -s 4G "$p" ;;
    esac
    echo "$p"
}

# no_end_case KIND: lwf train with the KIND input replaced, rejected within 20 s.
no_end_case() {
    local p
    p=$(no_end "$1")
    case $1 in
    cfg) train "$T/new.data" "$p" "$OLDW" ;;
    data) train "$p" "$SMALL" "$OLDW" ;;
    list) data_with_list "$p" && train "$T/new.data" "$SMALL" "$OLDW" ;;
    labels)
        new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$p" "backup=$T/backup"
        train "$T/new.data" "$SMALL" "$OLDW"
        ;;
    esac
    if [ "$NOEND" = huge ]; then
        assert_rejected "$p" 1 "line longer than 65536"
    else
        assert_rejected "$p" - "not a regular file"
    fi
}

@test "no end: /dev/zero as the cfg is refused at once (not read whole)" {
    NOEND=zero HOSTILE_TIMEOUT=20 no_end_case cfg
}
@test "no end: /dev/zero as the .data is refused at once" {
    NOEND=zero HOSTILE_TIMEOUT=20 no_end_case data
}
@test "no end: /dev/zero as the training list is refused at once" {
    NOEND=zero HOSTILE_TIMEOUT=20 no_end_case list
}
@test "no end: /dev/zero as labels= is refused at once" {
    NOEND=zero HOSTILE_TIMEOUT=20 no_end_case labels
}
@test "no end: a FIFO as the cfg is refused (not a hang in open)" {
    NOEND=fifo HOSTILE_TIMEOUT=20 no_end_case cfg
}
@test "no end: a FIFO as the .data is refused (not a hang)" {
    NOEND=fifo HOSTILE_TIMEOUT=20 no_end_case data
}
@test "no end: a FIFO as the training list is refused (not a hang)" {
    NOEND=fifo HOSTILE_TIMEOUT=20 no_end_case list
}
@test "no end: a FIFO as labels= is refused (not a hang)" {
    NOEND=fifo HOSTILE_TIMEOUT=20 no_end_case labels
}
@test "no end: a 4 GiB cfg without a newline stops at the line limit, line 1" {
    NOEND=huge HOSTILE_TIMEOUT=20 no_end_case cfg
}
@test "no end: a 4 GiB .data without a newline stops at the line limit, line 1" {
    NOEND=huge HOSTILE_TIMEOUT=20 no_end_case data
}
@test "no end: a 4 GiB training list without a newline stops at the line limit, line 1" {
    NOEND=huge HOSTILE_TIMEOUT=20 no_end_case list
}
@test "no end: a 4 GiB labels= file without a newline stops at the line limit, line 1" {
    NOEND=huge HOSTILE_TIMEOUT=20 no_end_case labels
}
@test "no end: a FIFO as lwf init's old cfg and as lwf valid's valid list are refused (not a hang)" {
    mkfifo "$T/old.cfg" "$T/valid.list"
    HOSTILE_TIMEOUT=20 hostile lwf init "$T/old.cfg" "$T/new.data" "$T/out.cfg"
    assert_rejected "$T/old.cfg" - "not a regular file"
    [ ! -e "$T/out.cfg" ]
    new_data "$T/v.data" classes=2 "valid=$T/valid.list" "labels=$FIX/labels"
    sed "s|^data=.*ref.data$|data=$T/v.data|" "$SMALL" > "$T/v.cfg"
    HOSTILE_TIMEOUT=20 hostile lwf valid "$T/v.cfg" "$T/backup/small.weights" -task new
    assert_rejected "$T/valid.list" - "not a regular file"
}

# ---- outputs named twice, through links, or over inputs (issue 11, 6) --------------------
# lwf init, lwf export and every training output write through one checked writer.

@test "outputs: lwf export to d/same and d/./same (one file twice) is refused, nothing written" {
    mkdir "$T/d"
    hostile lwf export "$SMALL" "$T/backup/small.weights" new "$T/d/same" "$T/d/./same"
    assert_rejected "$T/d/same" - "one file"
    [ -z "$(ls -A "$T/d")" ]
}

@test "outputs: lwf export over the task's .data (named by the cfg it reads) is refused" {
    cp "$FIX/ref.data" "$T/task.data"
    sed "s|^data=.*ref.data$|data=$T/task.data|" "$SMALL" > "$T/task.cfg"
    hostile lwf export "$T/task.cfg" "$T/backup/small.weights" new "$T/task.data" "$T/out.weights"
    assert_rejected "$T/task.data" - "an input"
    cmp "$T/task.data" "$FIX/ref.data"
    [ ! -e "$T/out.weights" ]
}

@test "outputs: lwf export onto a FIFO is refused and the FIFO stays" {
    mkfifo "$T/out.cfg"
    hostile lwf export "$SMALL" "$T/backup/small.weights" new "$T/out.cfg" "$T/out.weights"
    assert_rejected "$T/out.cfg" - "a FIFO"
    [ -p "$T/out.cfg" ]
    [ ! -e "$T/out.weights" ]
}

@test "outputs: lwf export through a symbolic link writes its target and keeps the link" {
    echo stale > "$T/target.weights"
    ln -s "$T/target.weights" "$T/out.weights"
    run "$DARKNET" lwf export "$SMALL" "$T/backup/small.weights" new "$T/out.cfg" "$T/out.weights"
    assert_ok
    [ -L "$T/out.weights" ]
    [ "$(stat -c %s "$T/target.weights")" -gt 20 ]
}

@test "outputs: lwf init through a symbolic link writes its target and keeps the link" {
    echo stale > "$T/target.cfg"
    ln -s "$T/target.cfg" "$T/out.cfg"
    run "$DARKNET" lwf init "$BASE_CFG" "$T/new.data" "$T/out.cfg"
    assert_ok
    [ -L "$T/out.cfg" ]
    grep -q '^\[task\]' "$T/target.cfg"
}

@test "outputs: lwf init onto a FIFO or a dangling link is refused, each left as it was" {
    mkfifo "$T/fifo.cfg"
    ln -s "$T/nowhere/x.cfg" "$T/dangling.cfg"
    hostile lwf init "$BASE_CFG" "$T/new.data" "$T/fifo.cfg"
    assert_rejected "$T/fifo.cfg" - "a FIFO"
    [ -p "$T/fifo.cfg" ]
    hostile lwf init "$BASE_CFG" "$T/new.data" "$T/dangling.cfg"
    assert_rejected "$T/dangling.cfg" - "symbolic link"
    [ -L "$T/dangling.cfg" ] && [ ! -e "$T/nowhere" ]
}

@test "outputs: lwf init over the labels file its new .data names is refused, the labels unchanged" {
    cp "$FIX/labels" "$T/labels"
    new_data "$T/new.data" classes=2 "train=$FIX/train.list" "labels=$T/labels" "backup=$T/backup"
    hostile lwf init "$BASE_CFG" "$T/new.data" "$T/./labels"
    assert_rejected "$T/./labels" - "an input"
    cmp "$T/labels" "$FIX/labels"
}

@test "outputs: lwf train with a FIFO where its log goes fails and leaves the FIFO" {
    mkdir "$T/b3"
    mkfifo "$T/b3/small.log.csv"
    new_data "$T/b3.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/b3"
    HOSTILE_TIMEOUT=30 hostile lwf train "$T/b3.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_rejected "$T/b3/small.log.csv" - "a FIFO"
    [ -p "$T/b3/small.log.csv" ]
}

@test "outputs: lwf train writes its weights through a symbolic link, which stays a link" {
    mkdir "$T/b4"
    echo stale > "$T/kept.weights"
    ln -s "$T/kept.weights" "$T/b4/small.weights"
    new_data "$T/b4.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$T/b4"
    run "$DARKNET" lwf train "$T/b4.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    [ -L "$T/b4/small.weights" ]
    [ "$(stat -c %s "$T/kept.weights")" -gt 100 ]
}

# ---- scripts/plots.sh: names and paths are data to gnuplot (issue 11, 8) -----------------

# a matrix whose task names are shell and gnuplot syntax; none of it may run
evil_matrix() {
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "after,t1\`touch $T/bq\`,t2\$(touch $T/dollar),it's \"q\"" \
        "t1\`touch $T/bq\`,0.9,," "t2\$(touch $T/dollar),0.8,0.7," "it's \"q\",0.6,0.5,0.4" > "$1"
}

@test "plots: matrix with backquotes, \$() and quotes in task names runs nothing and draws" {
    evil_matrix "$T/m/matrix.csv"
    run scripts/plots.sh matrix "$T/m/matrix.csv" "$T/m.png"
    assert_ok
    [ ! -e "$T/bq" ] && [ ! -e "$T/dollar" ]
    [ -s "$T/m.png" ]
}

@test "plots: an output path with ' and .system() runs nothing; an apostrophe leaves no temporary" {
    evil_matrix "$T/m/matrix.csv"
    cd "$T"
    out="x'.system('touch sys').'.png"
    run "$LWF_ROOT/scripts/plots.sh" matrix "$T/m/matrix.csv" "$out"
    assert_ok
    [ ! -e "$T/sys" ]
    [ -s "$out" ]
    cd "$LWF_ROOT"
    mkdir "$T/it's"
    run scripts/plots.sh matrix "$T/m/matrix.csv" "$T/it's/m.png"
    assert_ok
    [ -s "$T/it's/m.png" ]
    [ "$(ls -A "$T/it's")" = m.png ]
}

@test "plots: log and sequence with hostile paths, task and method names run nothing and draw" {
    d="$T/seq 'x\`touch $T/bq2\`'"
    m='l`touch${IFS}bq3`$(touch${IFS}bq3)'
    cd "$T"
    evil_matrix "$d/$m/matrix.csv"
    run "$LWF_ROOT/scripts/plots.sh" sequence "$d" "$T/s.png" "$m"
    assert_ok
    printf '%s\n' "iteration,epoch,phase,loss,avg_loss,rate,seconds,images,a\`touch $T/bq4\`_loss" \
        "1,0,warmup,1,1,0.01,0,4,1" "2,0,joint,0.5,0.9,0.01,0,8,0.5" > "$d/it's.log.csv"
    run "$LWF_ROOT/scripts/plots.sh" log "$d/it's.log.csv" "$T/l.png"
    assert_ok
    [ ! -e "$T/bq2" ] && [ ! -e "$T/bq3" ] && [ ! -e "$T/bq4" ] && [ ! -e "$T/bq" ]
    [ -s "$T/s.png" ] && [ -s "$T/l.png" ]
}

# ---- issue 11, 9: BOM, long messages, repeated flags, where a list came from --------------

@test "not an error: a UTF-8 BOM at the start of labels= (and of the .data, list and cfg) trains" {
    mkdir "$T/b5"
    printf '\xef\xbb\xbf' | cat - "$FIX/labels" > "$T/bom.labels"
    printf '\xef\xbb\xbf' | cat - "$FIX/train.list" > "$T/bom.list"
    printf '\xef\xbb\xbf' | cat - "$SMALL" > "$T/bom.cfg"
    printf '\xef\xbb\xbfclasses=2\ntrain=%s\nlabels=%s\nbackup=%s\n' "$T/bom.list" "$T/bom.labels" "$T/b5" \
        > "$T/bom.data"
    run "$DARKNET" lwf train "$T/bom.data" "$T/bom.cfg" "$OLDW" -seed 1 -quiet
    assert_ok
    [ -s "$T/b5/bom.weights" ]
}

@test "args: a missing cfg under a 3000-character path still says why (the message keeps its end)" {
    p=$T
    for i in $(seq 1 12); do p="$p/$(printf 'd%.0s' $(seq 1 250))"; done
    hostile lwf info "$p/x.cfg"
    assert_rejected x.cfg - "cannot open cfg: No such file or directory"
}

@test "args: a flag given twice (-seed 1 -seed 2, -clear -clear, -task twice) is refused" {
    train "$T/new.data" "$SMALL" "$OLDW" -seed 2
    assert_rejected -seed - "given twice"
    train "$T/new.data" "$SMALL" "$OLDW" -clear -clear
    assert_rejected -clear - "given twice"
    hostile lwf valid "$SMALL" "$T/backup/small.weights" -task new -task old
    assert_rejected -task - "given twice"
}

@test "list: a relative valid= that does not open names the .data line it came from" {
    new_data "$T/rel.data" classes=2 "valid=rel/valid.list" "labels=$FIX/labels"
    sed "s|^data=.*ref.data$|data=$T/rel.data|" "$SMALL" > "$T/rel.cfg"
    hostile lwf valid "$T/rel.cfg" "$T/backup/small.weights" -task new
    assert_rejected "$T/rel.data" 2 "rel/valid.list" "current folder" "No such file"
}

@test "environment: LWF_THREADS=abc, 3x, 100000, 0 and LWF_REFERENCE=yes are refused, naming the variable" {
    local v
    for v in LWF_THREADS=abc LWF_THREADS=3x LWF_THREADS=100000 LWF_THREADS=0 LWF_THREADS=-2 LWF_REFERENCE=yes; do
        run env "$v" "$DARKNET" lwf info "$BASE_CFG"
        echo "$v: status $status: $output" | tail -n 3
        [ "$status" -eq 1 ]
        [[ "$output" == *"$v: must be "* ]]
        [[ "$output" != *"kernels: "* ]]
    done
    # the same values, valid: accepted
    for v in LWF_THREADS=1 LWF_THREADS=64 LWF_REFERENCE=0 LWF_REFERENCE=1; do
        run env "$v" "$DARKNET" lwf info "$BASE_CFG"
        [ "$status" -eq 0 ]
        [[ "$output" == *"kernels: "* ]]
    done
}

# ---- training defects (issue 11, training side) ------------------------------------------
# Each case below failed before its fix (see the README's Reliability section): the log
# header, the teacher's cache key, the backup folder's cleanup, -clear and the teacher,
# -stop behind a resumed iteration, a train= list named with its .data line, FIFOs and links
# where training reads its own files, the teacher's layer table.

# tasks_cfg OUT N NAME...: $SMALL with N old heads and the new one, named NAME1.. in order
# (N + 1 names); sets CFG=OUT and OLDN to the old network's float count.
tasks_cfg() {
    local out=$1 n=$2 k
    shift 2
    sed -n '1,/^\[task\]/p' "$SMALL" | sed '$d' > "$out"
    for k in $(seq 1 "$n"); do
        printf '[task]\nname=%s\n\n[convolutional]\nfilters=3\nsize=1\nstride=1\npad=1\nactivation=linear\n\n[avgpool]\n\n[lwf_distill]\n\n' "$1" >> "$out"
        shift
    done
    printf '[task]\nname=%s\n\n[convolutional]\nfilters=2\nsize=1\nstride=1\npad=1\nactivation=linear\n\n[avgpool]\n\n[softmax]\n' "$1" >> "$out"
    CFG=$out
    OLDN=$((124 + 15 * n))
}

# expected_header NAME...: the log header for these task names.
expected_header() {
    local h="iteration,epoch,phase,loss,avg_loss,rate,seconds,images" name
    for name in "$@"; do h="$h,${name}_loss"; done
    for name in "$@"; do h="$h,${name}_top1"; done # -valid's columns
    echo "$h"
}

@test "log: a task named with 5,000 characters gets its whole column in the header, no stray bytes" {
    local long
    long=$(printf 'n%.0s' $(seq 1 5000))
    tasks_cfg "$T/long.cfg" 1 old "$long"
    floats_file "$T/long.weights" "$OLDN" 0000803e
    run "$DARKNET" lwf train "$T/new.data" "$CFG" "$T/long.weights" -seed 1 -quiet
    assert_ok
    [ "$(head -n 1 "$T/backup/long.log.csv")" = "$(expected_header old "$long")" ]
    # no NUL or other heap bytes anywhere in the log, and every row as wide as the header
    [ "$(tr -d '\000' < "$T/backup/long.log.csv" | cmp - "$T/backup/long.log.csv" && echo same)" = same ]
    [ "$(awk -F, '{ print NF }' "$T/backup/long.log.csv" | sort -u)" = 12 ]
}

@test "log: 17 tasks with 240-character names: one header column per task, as many as in the rows" {
    local base names=() k
    base=$(printf 'q%.0s' $(seq 1 240))
    for k in $(seq 1 17); do names+=("$base$k"); done
    tasks_cfg "$T/many.cfg" 16 "${names[@]}"
    floats_file "$T/many.weights" "$OLDN" 0000803e
    run "$DARKNET" lwf train "$T/new.data" "$CFG" "$T/many.weights" -seed 1 -quiet
    assert_ok
    [ "$(head -n 1 "$T/backup/many.log.csv")" = "$(expected_header "${names[@]}")" ]
    [ "$(awk -F, '{ print NF }' "$T/backup/many.log.csv" | sort -u)" = 42 ]
}

@test "cfg: a task name holding ',' or '\"' is refused at its line (it would break the CSV log and lwf valid -csv)" {
    local bad
    for bad in 'a,b' 'a"b'; do
        tasks_cfg "$T/comma.cfg" 1 old "$bad"
        floats_file "$T/comma.weights" "$OLDN" 0000803e
        train "$T/new.data" "$CFG" "$T/comma.weights"
        assert_rejected "$CFG" "$(line_of '^name=' 2)" "name=$bad" "CSV"
        hostile lwf valid "$CFG" "$T/comma.weights" -csv
        assert_rejected "$CFG" "$(line_of '^name=' 2)" "may not hold"
    done
}

# record_run CFG DATA: a -teacher record run of CFG into its own folder; stderr in $output.
record_run() {
    run "$DARKNET" lwf train "$2" "$1" "$OLDW" -seed 1 -quiet -teacher record
    assert_ok
}

@test "teacher record: a changed trunk activation= records again, and trains as a fresh run" {
    CFG=$T/act.cfg
    cp "$SMALL" "$CFG"
    sed "s|^backup=.*|backup=$T/rec|" "$T/new.data" > "$T/rec.data"
    record_run "$CFG" "$T/rec.data"
    assert_contains "recording the old network's responses"
    set_line "$(line_of '^activation=leaky')" "activation=relu"
    record_run "$CFG" "$T/rec.data"
    refute_contains "reused"
    assert_contains "is stale"
    cp "$T/rec/act.weights" "$T/after-change.weights"
    rm "$T/rec/act.teacher"
    record_run "$CFG" "$T/rec.data"
    cmp "$T/rec/act.weights" "$T/after-change.weights"
    # and an unchanged cfg still reuses it
    record_run "$CFG" "$T/rec.data"
    assert_contains "recorded responses reused"
}

@test "teacher record: images replaced under the same names record again, and train as a fresh run" {
    mkdir -p "$T/img"
    cp "$FIX"/img/*.png "$T/img/"
    sed "s|$FIX/img|$T/img|" "$FIX/train.list" > "$T/own.list"
    new_data "$T/rec.data" classes=2 "train=$T/own.list" "valid=$FIX/valid.list" "labels=$FIX/labels" "backup=$T/rec"
    record_run "$SMALL" "$T/rec.data"
    # new pictures under the old names (another size, so other pixels), list unchanged
    "$MKIMG" -s 12 "$T"/img/*.png
    record_run "$SMALL" "$T/rec.data"
    refute_contains "reused"
    cp "$T/rec/small.weights" "$T/after-change.weights"
    rm "$T/rec/small.teacher"
    record_run "$SMALL" "$T/rec.data"
    cmp "$T/rec/small.weights" "$T/after-change.weights"
}

# dead_pid: the pid of a process that has ended (a child, reaped).
dead_pid() {
    sh -c 'exit 0' &
    local p=$!
    wait "$p"
    echo "$p"
}

@test "folder: only this cfg's own temporaries whose writer is dead are removed; a user's *.tmp.N stay" {
    local dead
    dead=$(dead_pid)
    local keep=(thesis.tex.tmp.2024 photo.jpg.tmp.1 other.weights.tmp.$dead small.tex.tmp.$dead small.backup.tmp.$$
        small.backup.tmp.12x small_.weights.tmp.$dead small.weightsx.tmp.$dead)
    local gone=(small.backup.tmp.$dead small.backup.state.tmp.$dead small_3.weights.tmp.$dead small.log.csv.tmp.$dead
        small.teacher.weights.tmp.$dead small.teacher.tmp.$dead small.weights.tmp.$dead)
    local f
    for f in "${keep[@]}" "${gone[@]}"; do echo "$f" > "$T/backup/$f"; done
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    for f in "${keep[@]}"; do
        [ "$(cat "$T/backup/$f")" = "$f" ] || { echo "removed or changed: $f" >&2; return 1; }
    done
    for f in "${gone[@]}"; do
        [ ! -e "$T/backup/$f" ] || { echo "left: $f" >&2; return 1; }
        assert_contains "removed $T/backup/$f, left by a run that was killed"
    done
}

@test "folder: backup=/ and system folders are refused before anything is written" {
    local d
    for d in / /etc /usr/lib/lwf-x /proc/self /dev /var; do
        new_data "$T/sys.data" classes=2 "train=$FIX/train.list" "labels=$FIX/labels" "backup=$d"
        train "$T/sys.data" "$SMALL" "$OLDW"
        assert_rejected "backup=$d" - "folder of your own"
    done
    [ ! -e /usr/lib/lwf-x ]
}

@test "-clear from a backup keeps the original old network as the teacher (the file is not rewritten)" {
    sed "s|^backup=.*|backup=$T/cl|" "$T/new.data" > "$T/cl.data"
    run "$DARKNET" lwf train "$T/cl.data" "$SMALL" "$OLDW" -seed 1 -quiet -stop 3 -backup 1
    assert_ok
    cp "$T/cl/small.teacher.weights" "$T/original.weights"
    run "$DARKNET" lwf train "$T/cl.data" "$SMALL" "$T/cl/small.backup" -clear -seed 1 -quiet -stop 2
    assert_ok
    assert_contains "-clear keeps the original old network"
    cmp "$T/cl/small.teacher.weights" "$T/original.weights"
    # a folder without one: the given model's old heads become the teacher, said so
    sed "s|^backup=.*|backup=$T/cl2|" "$T/new.data" > "$T/cl2.data"
    run "$DARKNET" lwf train "$T/cl2.data" "$SMALL" "$T/cl/small.backup" -clear -seed 1 -quiet -stop 1
    assert_ok
    assert_contains "no original old network in $T/cl2"
    [ -s "$T/cl2/small.teacher.weights" ]
}

@test "args: resuming at iteration 2 with -stop 2 or -stop 1 is refused before anything is written" {
    local s
    for s in 1 2; do
        train "$T/new.data" "$SMALL" "$T/backup/small.backup" -stop "$s"
        assert_rejected "-stop $s" - "already at iteration 2"
    done
}

@test "list: a relative train= or labels= that does not open names the .data line it came from" {
    new_data "$T/rel.data" classes=2 "train=rel/train.list" "labels=$FIX/labels" "backup=$T/backup"
    train "$T/rel.data" "$SMALL" "$OLDW"
    assert_rejected "$T/rel.data" 2 "rel/train.list" "current folder" "No such file"
    new_data "$T/rel.data" classes=2 "train=$FIX/train.list" "labels=rel/labels" "backup=$T/backup"
    train "$T/rel.data" "$SMALL" "$OLDW"
    assert_rejected "$T/rel.data" 3 "rel/labels" "current folder" "No such file"
}

@test "fifo: a FIFO or a link as the lock file is refused without blocking, and the link's target is not cut" {
    mkfifo "$T/backup/.lwf-train.lock.fifo"
    rm -f "$T/backup/.lwf-train.lock"
    mv "$T/backup/.lwf-train.lock.fifo" "$T/backup/.lwf-train.lock"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/backup/.lwf-train.lock" - "a FIFO"
    echo "my thesis" > "$T/thesis.tex"
    rm "$T/backup/.lwf-train.lock"
    ln -s "$T/thesis.tex" "$T/backup/.lwf-train.lock"
    train "$T/new.data" "$SMALL" "$OLDW"
    assert_rejected "$T/backup/.lwf-train.lock" - "symbolic link"
    [ "$(cat "$T/thesis.tex")" = "my thesis" ]
}

@test "fifo: a FIFO as the .state, the old log (resume) or the teacher cache fails without blocking" {
    mv "$T/backup/small.backup.state" "$T/saved.state"
    mkfifo "$T/backup/small.backup.state"
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    assert_rejected "$T/backup/small.backup.state" - "a FIFO"
    rm "$T/backup/small.backup.state"
    mv "$T/saved.state" "$T/backup/small.backup.state"
    rm "$T/backup/small.log.csv"
    mkfifo "$T/backup/small.log.csv"
    train "$T/new.data" "$SMALL" "$T/backup/small.backup"
    [ "$status" -ne 124 ]
    assert_failed
    assert_contains "$T/backup/small.log.csv" "a FIFO"
    mkfifo "$T/backup/small.teacher"
    train "$T/new.data" "$SMALL" "$OLDW" -teacher record
    [ "$status" -ne 124 ]
    assert_failed
    assert_contains "$T/backup/small.teacher" "a FIFO"
}

@test "teacher: its layer table comes after a line saying what it is; the student's table is first and whole" {
    run "$DARKNET" lwf train "$T/new.data" "$SMALL" "$OLDW" -seed 1 -quiet
    assert_ok
    [ "$(grep -c '^layer     filters' <<< "$output")" = 2 ]
    # line 1 is the student's table header; the teacher's follows its own line
    [ "$(sed -n 1p <<< "$output")" = "layer     filters    size              input                output" ]
    local at
    at=$(grep -n '^teacher: the original old network' <<< "$output" | cut -d: -f1)
    [ -n "$at" ]
    [ "$(sed -n "$((at + 1))p" <<< "$output")" = "layer     filters    size              input                output" ]
    # the student's table: a numbered line per layer (10 layers), before the teacher's line
    [ "$(sed -n "1,${at}p" <<< "$output" | grep -c '^ *[0-9][0-9]* ')" = 10 ]
}

@test "init: a task name from a file name with ',' or of 250 characters is refused, not written or cut" {
    local long
    long=$(printf 'x%.0s' $(seq 1 250))
    cp "$T/new.data" "$T/a,b.data"
    cp "$T/new.data" "$T/$long.data"
    hostile lwf init "$LWF_ROOT/cfg/fashion.cfg" "$T/a,b.data" "$T/out.cfg"
    assert_rejected "'a,b'" - "rename the file"
    [ ! -e "$T/out.cfg" ]
    hostile lwf init "$LWF_ROOT/cfg/fashion.cfg" "$T/$long.data" "$T/out.cfg"
    assert_rejected "$long" - "250 characters long"
    [ ! -e "$T/out.cfg" ]
}
