# darknet-lwf: Darknet with Learning without Forgetting.
# make            build ./darknet against Debian's libdarknet
# make test       install what is missing, build, run the whole suite
# make check      the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer
# make bench      training-step speed: Darknet's reference kernels vs ours, LwF overhead
# make demo       install, build, prepare Fashion-MNIST, run the LwF comparison
# make deps       install the Debian packages the project needs (as root or through sudo)
# make fuzz       libFuzzer harnesses (clang) on a seed corpus, FUZZ_SECONDS (60) each

PKGS := darknet libopenblas-dev libstb-dev dataset-fashion-mnist libcmocka-dev bats zlib1g-dev gcc make \
        gnuplot-nox clang libclang-rt-14-dev

DN_INC := /usr/lib/darknet/include
DN_LIB := /usr/lib/darknet

BUILD ?= build
SAN ?= 0
CC ?= cc
WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
CFLAGS ?= -O2 -g
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# FUZZ=1 (used by `make fuzz`): clang, the plugin instrumented for libFuzzer + ASan + UBSan
ifeq ($(FUZZ),1)
CC := clang
CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
          -DLWF_BUILD_BUDGET_MIB=1024 '-DLWF_MAX_PIXELS=(1LL << 22)'
LDFLAGS += -fsanitize=address,undefined
endif
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) -I$(DN_INC) -Iplugin -Isrc
LDLIBS := -lstb -L$(DN_LIB) -ldarknet -Wl,-rpath,$(DN_LIB) -lopenblas -ldl -lm -lpthread

PLUGIN_SRC := $(wildcard plugin/*/*.c)
CLI_SRC := $(wildcard src/*.c)
PLUGIN_OBJ := $(PLUGIN_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/liblwf.a
BIN := $(if $(filter build,$(BUILD)),darknet,$(BUILD)/darknet)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPER_OBJ := $(BUILD)/obj/tests/unit/testutil.o
MKIMG := $(BUILD)/tests/tools/mkimg
FUZZ_HARNESSES := cfg data weights image
FUZZ_BIN := $(FUZZ_HARNESSES:%=$(BUILD)/fuzz_%) $(BUILD)/make_seeds
FUZZ_SECONDS ?= 60

.PHONY: all deps test check bench bench-deps demo clean unit-bins tools data fuzz fuzz-bins
all: $(BIN)

deps:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BUILD)/obj/%.o: %.c $(wildcard plugin/*.h plugin/*/*.h src/*.h tests/unit/*.h tests/fuzz/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# the kernels' loops: vectorised with GCC's dynamic cost model (still -O2 semantics: no
# unsafe-math options, no reassociation the source does not write); a*b + c contracted into one
# fused multiply-add where the CPU has one (one rounding instead of two); short copy
# loops stay inline loops instead of becoming memset/memcpy calls
# (GCC's options; the fuzz build's clang gets only the contraction)
ifeq ($(FUZZ),1)
$(BUILD)/obj/plugin/kernels/%.o: ALL_CFLAGS += -ffp-contract=fast
else
$(BUILD)/obj/plugin/kernels/%.o: ALL_CFLAGS += -fvect-cost-model=dynamic -ffp-contract=fast \
	-fno-tree-loop-distribute-patterns
endif

$(LIB): $(PLUGIN_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -rdynamic $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_HELPER_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -rdynamic $< $(TEST_HELPER_OBJ) $(LIB) $(LDLIBS) -lcmocka -o $@

unit-bins: $(UNIT_BIN)

# test data writer for the command-line tests (PNG/JPEG via stb_image_write, forged headers)
$(MKIMG): tests/tools/mkimg.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $< -lstb -lm -o $@

tools: $(MKIMG)

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LIB)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer $(filter %.o,$^) $(LIB) $(LDLIBS) -o $@

# stb_image compiled in, instrumented (see tests/fuzz/stb_image_impl.c).  Debian's stb
# (2.27) has arithmetic UB on corrupt files that is harmless on x86-64 (NULL + 0 and a
# 0-byte memcpy from NULL on an empty PNG IDAT, shifts by >= 32 in the JPEG bit reader),
# so it is checked for memory errors (ASan, array bounds) but not for those
STB_NO_SAN := -fno-sanitize=pointer-overflow,nonnull-attribute,shift,signed-integer-overflow
$(BUILD)/fuzz_image: $(BUILD)/obj/tests/fuzz/stb_image_impl.o
$(BUILD)/obj/tests/fuzz/stb_image_impl.o: tests/fuzz/stb_image_impl.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(STB_NO_SAN) -c $< -o $@

$(BUILD)/make_seeds: $(BUILD)/obj/tests/fuzz/make_seeds.o $(LIB)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

fuzz-bins: $(FUZZ_BIN)
.SECONDARY: $(FUZZ_HARNESSES:%=$(BUILD)/obj/tests/fuzz/fuzz_%.o)

BENCH_BIN := $(BUILD)/bench
$(BENCH_BIN): $(BUILD)/obj/bench/bench.o $(BUILD)/obj/bench/det.o $(BUILD)/obj/bench/common.o $(LIB)
	$(CC) $(LDFLAGS) -rdynamic $(filter %.o,$^) $(LIB) $(LDLIBS) -o $@
$(BUILD)/obj/bench/bench.o $(BUILD)/obj/bench/det.o $(BUILD)/obj/bench/common.o: bench/bench.h

# PyTorch for the bench's detector comparison only (bench/torch_det.py); not a test dependency.
# Not fatal: without it the bench prints the PyTorch line as skipped.
BENCH_PKGS := python3-torch
bench-deps:
	@dpkg-query -W -f='$${Status}' $(BENCH_PKGS) 2>/dev/null | grep -q "ok installed" || { \
	  echo "installing Debian packages for make bench: $(BENCH_PKGS)"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_PKGS); } || \
	  echo "could not install $(BENCH_PKGS): the bench's PyTorch line will say skipped"; }

# a few minutes on 2 cores; BENCH_ARGS=-quick skips the (slow) reference kernels, -notorch
# the PyTorch run, -det CFG -detsize N -detbatch N choose the detector row's network
bench: deps bench-deps
	$(MAKE) $(BENCH_BIN)
	LWF_ROOT=$(CURDIR) $(BENCH_BIN) $(BENCH_ARGS)

test: deps
	$(MAKE) all unit-bins tools
	BUILD=$(BUILD) DARKNET=$(CURDIR)/$(BIN) tests/run.sh

check: deps
	$(MAKE) BUILD=build/san SAN=1 all unit-bins tools
	BUILD=build/san DARKNET=$(CURDIR)/build/san/darknet SANITIZED=1 tests/run.sh

fuzz: deps
	$(MAKE) BUILD=build/fuzz FUZZ=1 fuzz-bins
	FUZZ_BUILD=build/fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_HARNESSES)

data: deps
	scripts/prepare_fashion.sh

demo: deps
	$(MAKE) all
	scripts/p1.sh

clean:
	rm -rf build darknet
