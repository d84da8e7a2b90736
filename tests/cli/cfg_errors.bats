#!/usr/bin/env bats
# The cfg front end (`darknet lwf info <cfg>`): every bad cfg fails with a non-zero exit,
# names the cfg and the line at fault, and says what is wrong; good cfgs pass.
# Each test derives its cfg from cfg/fashion-lwf.cfg by a small edit.

load helpers

# --- valid cfgs -------------------------------------------------------------------------

@test "valid: cfg/fashion-lwf.cfg passes and lists the old and the new task" {
    CFG=$BASE_CFG
    run "$DARKNET" lwf info cfg/fashion-lwf.cfg
    assert_ok
    assert_contains "trunk = layers 0-4" "weights: " "for the whole model"
    [[ "$output" =~ task\ fashion-a\ +old\ layers ]]
    [[ "$output" =~ task\ fashion-b\ +new\ layers ]]
    [[ "$output" == *"T=2 lambda=1 t2_scaling=0"* ]]
}

@test "valid: zero old heads (trunk + one [task] ending in [softmax]) passes with one new task" {
    derive one-task
    local a b
    a=$(line_of '^\[task\]' 1)
    b=$(line_of '^\[task\]' 2)
    delete_lines "$a" $((b - 1))
    run_info
    assert_ok
    [[ "$output" =~ task\ fashion-b\ +new\ layers ]]
    refute_contains "fashion-a" " old layers"
    [ "$(grep -c '^task ' <<< "$output")" -eq 1 ]
}

# --- sections and keys ------------------------------------------------------------------

@test "unknown section [bogus] is an error at its line" {
    derive unknown-section
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[bogus]"
    run_info
    assert_error_at "$n" "unknown section" "bogus"
}

@test "unknown key in [task] is an error at its line" {
    derive task-key
    local n
    n=$(line_of '^name=fashion-a')
    insert_after "$n" "colour=red"
    run_info
    assert_error_at $((n + 1)) "[task]" "unknown key" "colour"
}

@test "unknown key in [lwf_distill] is an error at its line" {
    derive distill-key
    local n
    n=$(line_of '^temperature=')
    set_line "$n" "temprature=2"
    run_info
    assert_error_at "$n" "[lwf_distill]" "unknown key" "temprature"
}

@test "unknown key in a stock section (filterz=16 in [convolutional]) is an error at its line" {
    derive filterz
    local n
    n=$(line_of '^filters=16')
    set_line "$n" "filterz=16"
    run_info
    assert_error_at "$n" "[convolutional]" "unknown key" "filterz"
}

@test "malformed number in a stock section (filters=1x6) is an error at its line" {
    derive filters-1x6
    local n
    n=$(line_of '^filters=16')
    set_line "$n" "filters=1x6"
    run_info
    assert_error_at "$n" "filters" "integer" "1x6"
}

@test "size=0 in [convolutional] is an error at its line" {
    derive size0
    local n
    n=$(line_of '^size=3')
    set_line "$n" "size=0"
    run_info
    assert_error_at "$n" "[convolutional]" "size" "'0'"
}

@test "a stock key repeated in one section is an error at the second one, naming the first" {
    derive repeated-key
    local n
    n=$(line_of '^filters=16')
    insert_after "$n" "filters=8"
    run_info
    assert_error_at $((n + 1)) "filters" "twice" "line $n"
}

@test "a line without '=' is an error at its line" {
    derive no-equals
    local n
    n=$(line_of '^filters=16')
    insert_after "$n" "pad"
    run_info
    assert_error_at $((n + 1)) "key=value" "pad"
}

@test "an option before any section is an error at its line" {
    derive option-first
    insert_after 0 "batch=1"
    run_info
    assert_error_at 1 "batch=1" "before the first [section]"
}

@test "[route] without layers= is an error at its line" {
    derive route-no-layers
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[route]"
    run_info
    assert_error_at "$n" "[route]" "layers="
}

@test "an input too small for the layers (height=2, width=2, unpadded 3x3 conv) is an error at the conv" {
    # height=2, width=2 alone is a valid network: pad=1 keeps 2x2 and Darknet's maxpool
    # pads to 1x1; an unpadded 3x3 convolution on a 2x2 input has no output at all.
    derive too-small
    set_key height 2
    set_key width 2
    set_key pad 0
    run_info
    assert_error_at "$(line_of '^\[convolutional\]')" "[convolutional]" "too small"
}

# --- [lwf_distill] values ---------------------------------------------------------------

@test "[lwf_distill] temperature=abc is an error at its line" {
    derive t-abc
    set_key temperature abc
    run_info
    assert_error_at "$(line_of '^temperature=')" "temperature" "abc"
}

@test "[lwf_distill] temperature=0 is an error at its line (must be > 0)" {
    derive t-zero
    set_key temperature 0
    run_info
    assert_error_at "$(line_of '^temperature=')" "temperature" "> 0" "0"
}

@test "[lwf_distill] temperature=-1 is an error at its line" {
    derive t-neg
    set_key temperature -1
    run_info
    assert_error_at "$(line_of '^temperature=')" "temperature" "-1"
}

@test "[lwf_distill] lambda=-1 is an error at its line" {
    derive l-neg
    set_key lambda -1
    run_info
    assert_error_at "$(line_of '^lambda=')" "lambda" "-1"
}

@test "[lwf_distill] lambda=abc is an error at its line" {
    derive l-abc
    set_key lambda abc
    run_info
    assert_error_at "$(line_of '^lambda=')" "lambda" "abc"
}

@test "[lwf_distill] t2_scaling=2 is an error at its line" {
    derive t2-2
    local n
    n=$(line_of '^lambda=')
    insert_after "$n" "t2_scaling=2"
    run_info
    assert_error_at $((n + 1)) "t2_scaling" "2"
}

# --- tasks and heads --------------------------------------------------------------------

@test "[task] without name= is an error at the [task] line" {
    derive no-name
    local t
    t=$(line_of '^\[task\]')
    delete_lines "$(line_of '^name=fashion-a')"
    run_info
    assert_error_at "$t" "[task]" "name"
}

@test "two tasks with one name is an error at the second name=, naming the first task's line" {
    derive dup-name
    local first
    first=$(line_of '^\[task\]' 1)
    set_line "$(line_of '^name=fashion-b')" "name=fashion-a"
    run_info
    assert_error_at "$(line_of '^name=fashion-a' 2)" "fashion-a" "already used" "line $first"
}

@test "a head with no loss layer before the next [task] is an error at that [task]" {
    derive no-loss-mid
    local d
    d=$(line_of '^\[lwf_distill\]')
    delete_lines "$d" $((d + 2)) # [lwf_distill], temperature=, lambda=
    run_info
    assert_error_at "$(line_of '^\[task\]' 2)" "fashion-a" "no loss layer"
}

@test "a head with no loss layer at the end of the file is an error at its [task]" {
    derive no-loss-end
    delete_lines "$(line_of '^\[softmax\]')"
    run_info
    assert_error_at "$(line_of '^\[task\]' 2)" "fashion-b" "no loss layer"
}

@test "a layer after a head's loss layer is an error at that layer" {
    derive after-loss
    local n
    n=$(line_of '^lambda=')
    insert_after "$n" "[activation]\nactivation=linear"
    run_info
    assert_error_at $((n + 1)) "[activation]" "after the loss layer" "fashion-a"
}

@test "[lwf_distill] before the first [task] is an error at its line" {
    derive distill-in-trunk
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[lwf_distill]"
    run_info
    assert_error_at "$n" "[lwf_distill]" "before the first [task]"
}

@test "[softmax] before the first [task] is an error at its line" {
    derive softmax-in-trunk
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[softmax]"
    run_info
    assert_error_at "$n" "[softmax]" "before the first [task]"
}

@test "no new head (every head ends in [lwf_distill]) is an error naming the cfg" {
    derive no-new-head
    set_line "$(line_of '^\[softmax\]')" "[lwf_distill]"
    run_info
    assert_error "no new head" "[softmax]"
}

@test "two new heads (two heads end in [softmax]) is an error at the second [softmax]" {
    derive two-new-heads
    local d
    d=$(line_of '^\[lwf_distill\]')
    delete_lines $((d + 1)) $((d + 2)) # temperature=, lambda=
    set_line "$d" "[softmax]"
    run_info
    assert_error_at "$(line_of '^\[softmax\]' 2)" "second new head" "fashion-b"
}

@test "the new head before an old head is an error at the new task's [task]" {
    derive new-not-last
    local t1 t2 end
    t1=$(line_of '^\[task\]' 1)
    t2=$(line_of '^\[task\]' 2)
    end=$(last_line)
    {
        sed -n "1,$((t1 - 1))p" "$BASE_CFG"
        sed -n "${t2},${end}p" "$BASE_CFG"
        echo
        sed -n "${t1},$((t2 - 1))p" "$BASE_CFG"
    } > "$CFG"
    run_info
    assert_error_at "$t1" "fashion-b" "last head"
}

@test "a task whose .data has classes=7 for a 5-output head is an error at its [task]" {
    derive classes7
    printf 'classes=7\nlabels=data/fmnist/a.labels\n' > "$BATS_TEST_TMPDIR/seven.data"
    set_line "$(line_of '^data=cfg/fashion-a.data')" "data=$BATS_TEST_TMPDIR/seven.data"
    run_info
    assert_error_at "$(line_of '^\[task\]')" "fashion-a" "seven.data" "classes=7" "5"
}

@test "a task whose data= file does not exist is an error at the data= line" {
    derive no-data
    local n
    n=$(line_of '^data=cfg/fashion-a.data')
    set_line "$n" "data=$BATS_TEST_TMPDIR/nosuch.data"
    run_info
    assert_error_at "$n" "nosuch.data" "no such"
}

# --- whole files ------------------------------------------------------------------------

@test "a missing cfg file is an error naming it" {
    CFG=$BATS_TEST_TMPDIR/nosuch.cfg
    run_info
    assert_error "cannot open"
}

@test "an empty cfg file is an error naming it" {
    CFG=$BATS_TEST_TMPDIR/empty.cfg
    : > "$CFG"
    run_info
    assert_error "empty"
}

@test "a cfg with only comments is an error naming it" {
    CFG=$BATS_TEST_TMPDIR/comments.cfg
    printf '# just a comment\n\n   # another one\n; and a Darknet-style one\n' > "$CFG"
    run_info
    assert_error "empty"
}

@test "a cfg whose first section is not [net] is an error at that section" {
    derive no-net
    local n
    n=$(line_of '^\[net\]')
    set_line "$n" "[convolutional]"
    run_info
    assert_error_at "$n" "[net]"
}

@test "an unsupported Darknet section ([region]) is an error at its line" {
    derive region
    local n
    n=$(line_of '^\[task\]')
    insert_after $((n - 1)) "[region]"
    run_info
    assert_error_at "$n" "[region]" "not supported"
}

@test "dontsave= and dontload= are errors at their line (our weights files hold every layer)" {
    local key n
    for key in dontsave dontload; do
        derive "$key"
        n=$(line_of '^filters=5')
        insert_after "$n" "$key=1"
        run_info
        assert_error_at $((n + 1)) "$key" "not supported" || return 1
    done
}

@test "an error found while the layer table prints starts its own line (file:line: at line start)" {
    # editors and grep look for ^file:line:; the table's "    5 " prefix must not precede it
    derive own-line
    delete_lines "$(line_of '^name=fashion-a')"
    run_info
    assert_failed
    grep -q "^$CFG:$(line_of '^\[task\]'):" <<< "$output" || {
        echo "no line starts with $CFG:LINE:; output:" >&2
        echo "$output" >&2
        return 1
    }
}

@test "binary=1 without batch_normalize=1 in [convolutional] is an error at its line (libdarknet's update crashed)" {
    derive binary-no-bn
    local n
    n=$(line_of '^filters=5' 2)
    insert_after "$n" "binary=1"
    run_info
    assert_error_at $((n + 1)) "[convolutional]" "binary=1 needs batch_normalize=1"
    # with batch_normalize=1 libdarknet allocates the scale updates: accepted
    insert_after "$n" "batch_normalize=1"
    run_info
    assert_ok
}

@test "numload=, dontloadscales=, truth= in a layer and tree= in [softmax] are errors at their line" {
    local key n
    for key in numload dontloadscales truth; do
        derive "$key"
        n=$(line_of '^filters=5')
        insert_after "$n" "$key=1"
        run_info
        assert_error_at $((n + 1)) "[convolutional]" "$key" "not supported" || return 1
    done
    derive tree
    n=$(line_of '^\[softmax\]')
    insert_after "$n" "tree=data/9k.tree"
    run_info
    assert_error_at $((n + 1)) "[softmax]" "tree" "not supported"
}

@test "keys with no effect in this build ([net] clip, inputs; a layer's onlyforward, smooth) are errors at their line" {
    local key n
    for key in clip=0.5 inputs=2352; do
        derive "net-${key%%=*}"
        n=$(line_of '^decay=')
        insert_after "$n" "$key"
        run_info
        assert_error_at $((n + 1)) "[net]" "${key%%=*}" "not supported" || return 1
    done
    for key in onlyforward=1 smooth=0.1; do
        derive "layer-${key%%=*}"
        n=$(line_of '^filters=16')
        insert_after "$n" "$key"
        run_info
        assert_error_at $((n + 1)) "[convolutional]" "${key%%=*}" "not supported" || return 1
    done
}

@test "a head's [route] or [shortcut] reading another head's layer is an error at its layers=/from= line" {
    local text n
    for text in 'layers=6' 'layers=4,-4' 'from=6'; do
        derive other-head
        n=$(line_of '^data=cfg/fashion-b.data')
        if [[ $text == from=* ]]; then
            insert_after "$n" "[shortcut]\n$text\nactivation=linear"
            run_info
            assert_error_at $((n + 2)) "[shortcut]" "reads layer 6 of another head" || return 1
        else
            insert_after "$n" "[route]\n$text"
            run_info
            assert_error_at $((n + 2)) "[route]" "reads layer 6 of another head" || return 1
        fi
    done
    # the trunk and the head's own [task] are fine
    for text in 'layers=4' 'layers=9'; do
        derive own-head
        n=$(line_of '^data=cfg/fashion-b.data')
        insert_after "$n" "[route]\n$text"
        run_info
        assert_ok || return 1
    done
}

@test "valid: the cfg with CRLF line ends passes; a CR inside a line is an error at its line" {
    derive crlf
    sed -i 's/$/\r/' "$CFG"
    run_info
    assert_ok
    assert_contains "trunk = layers 0-4"
    derive inner-cr
    local n
    n=$(line_of '^filters=16')
    set_line "$n" $'filters=1\r6'
    run_info
    assert_error_at "$n" "control character 0x0d"
}
