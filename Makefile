# cofre: the two commands a new engineer needs are `make run` and `make test`.
# Each area adds its own targets in mk/*.mk; tests join `make test` through TEST_TARGETS.

BUILD_DIR ?= build
SANITIZE_DIR ?= build-sanitize
FUZZ_DIR ?= build-fuzz
JOBS ?= $(shell nproc)
PYTEST ?= /usr/bin/python3 -m pytest
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

# Test stages, in order; mk/*.mk append theirs.
TEST_TARGETS := test-unit test-e2e test-fuzz

.PHONY: all build run test bench fmt fmt-check lint deps-build deps-run deps-test deps-bench \
        test-unit test-e2e test-fuzz fuzz test-sanitize clean

all: build

deps-build:
	@scripts/deps.sh build
deps-run:
	@scripts/deps.sh run
deps-test:
	@scripts/deps.sh test
deps-bench:
	@scripts/deps.sh bench

build: deps-build
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) -DCOFRE_WERROR=ON >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: deps-run build
	@scripts/run.sh

-include mk/*.mk

test: deps-test build
	@$(MAKE) --no-print-directory $(TEST_TARGETS)
	@echo "make test: every suite passed"

test-unit: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

test-e2e: build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q tests/e2e

# libFuzzer targets, a short run each (FUZZ_SECONDS); `make fuzz` runs longer.
FUZZ_SECONDS ?= 10
test-fuzz:
	@cmake -S . -B $(FUZZ_DIR) -DCMAKE_C_COMPILER=clang -DCOFRE_FUZZ=ON \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz-all
	@scripts/fuzz.sh $(FUZZ_DIR)/bin $(FUZZ_SECONDS)
fuzz:
	@$(MAKE) --no-print-directory test-fuzz FUZZ_SECONDS=300

# Unit and black-box suites again under ASan + UBSan (CI runs this after `make test`).
test-sanitize: deps-test
	@cmake -S . -B $(SANITIZE_DIR) -DCMAKE_C_COMPILER=clang -DCOFRE_SANITIZE=ON -DCOFRE_WERROR=ON \
	    -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS)
	@cd $(SANITIZE_DIR) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)
	@COFRE_BIN_DIR=$(abspath $(SANITIZE_DIR))/bin COFRE_SANITIZED=1 \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(PYTEST) -q tests/e2e

bench: deps-bench build
	@scripts/bench.sh

C_SOURCES = $(shell git ls-files '*.c' '*.h')

fmt:
	@clang-format -i $(C_SOURCES)

fmt-check:
	@clang-format --dry-run -Werror $(C_SOURCES)

# Code quality (pipeline stage 1): formatting, cppcheck, shellcheck. The analyzers
# (flawfinder, clang-tidy) run in `make sast`; workflows and YAML in `make obs-lint`.
lint: build fmt-check
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	    --std=c11 -I include $(filter %.c,$(C_SOURCES))
	@shellcheck scripts/*.sh scripts/bench/*.sh .ci/run

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(FUZZ_DIR)
