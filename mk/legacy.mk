# Legacy link area (issue 7): the ISO 8583 codec and cofre-legacy-sim. See docs/legacy-iso8583.md.
#   make test-legacy       black-box tests of the simulator (pytest; the codec's unit tests run
#                          under ctest in test-unit, its fuzz target in test-fuzz)
#   make bench-legacy-sim  round trips per second to the simulator over one connection

TEST_TARGETS += test-legacy

.PHONY: test-legacy bench-legacy-sim

test-legacy: build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/legacy

BENCH_LEGACY_COUNT ?= 5000
bench-legacy-sim: build
	@tests/legacy/bench_sim.sh $(abspath $(BUILD_DIR))/bin $(BENCH_LEGACY_COUNT)
