# Legacy link area (issue 7): the ISO 8583 codec, cofre-legacy-sim and cofre-legacy.
# See docs/legacy-iso8583.md.
#   make test-legacy          black-box tests of the simulator and of the adapter (pytest over
#                             tests/legacy; the adapter's start cofre-kafka-dev and cofre-core
#                             too). The unit tests run under ctest in test-unit, the codec's
#                             fuzz target in test-fuzz.
#   make test-legacy-adapter  only the adapter's black-box tests (tests/legacy/test_adapter.py)
#   make test-legacy-postgres the adapter's black-box tests with its delivery store on a
#                             throwaway PostgreSQL cluster (COFRE_LEGACY_STORES=postgres): the
#                             same scenarios, plus replicas sharing one database and the
#                             database going away (tests/legacy/test_adapter_pg.py)
#   make bench-legacy         scripts/bench/legacy.sh: round trips to the simulator over one
#                             connection, the adapter's delivery rate over one connection and a
#                             pool, and whether it keeps up with the core (a markdown section)
#   make bench-legacy-sim     round trips per second to the simulator over one connection

TEST_TARGETS += test-legacy test-legacy-postgres

.PHONY: test-legacy test-legacy-adapter test-legacy-postgres bench-legacy bench-legacy-sim

test-legacy: build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/legacy

test-legacy-adapter: build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider \
	    tests/legacy/test_adapter.py

test-legacy-postgres: build
	@COFRE_LEGACY_STORES=postgres COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin \
	    $(PYTEST) -q -p no:cacheprovider tests/legacy/test_adapter.py tests/legacy/test_adapter_pg.py

bench-legacy: deps-bench build
	@scripts/bench/legacy.sh $(abspath $(BUILD_DIR))/bin

BENCH_LEGACY_COUNT ?= 5000
bench-legacy-sim: build
	@tests/legacy/bench_sim.sh $(abspath $(BUILD_DIR))/bin $(BENCH_LEGACY_COUNT)
