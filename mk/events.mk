# Events area (issue 6): the outbox relay, cofre-kafka-dev and cofre-audit. See
# docs/events/README.md and docs/audit.md. Unit tests run under ctest (test-unit), the audit
# event parser's fuzz target in test-fuzz.
#   make test-events   black-box tests against the real binaries and the dev cluster
#   make bench-events  the relay and cofre-audit at the core's maximum transfer rate

TEST_TARGETS += test-events

.PHONY: test-events bench-events

test-events: build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/events

bench-events: build
	@scripts/bench/events.sh $(abspath $(BUILD_DIR))/bin
