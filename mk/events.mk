# Events area (issue 6): the outbox relay, cofre-kafka-dev and cofre-audit. See
# docs/events/README.md and docs/audit.md. Unit tests run under ctest (test-unit), the audit
# event parser's fuzz target in test-fuzz.
#   make test-events           black-box tests against the real binaries and the dev cluster,
#                              on SQLite
#   make test-events-postgres  the store-dependent ones again on a throwaway PostgreSQL cluster
#                              (COFRE_TEST_DBS=postgres), and the PostgreSQL-only ones: three
#                              core replicas and one relay, audit replicas on one chain, a
#                              database outage, audit migrations and roles
#   make bench-events          the relay and cofre-audit at the core's maximum transfer rate

TEST_TARGETS += test-events test-events-postgres

.PHONY: test-events test-events-postgres bench-events

test-events: build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/events

test-events-postgres: build
	@COFRE_TEST_DBS=postgres COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin \
	    $(PYTEST) -q -p no:cacheprovider -k postgres tests/events

bench-events: build
	@scripts/bench/events.sh $(abspath $(BUILD_DIR))/bin
