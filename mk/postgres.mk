# PostgreSQL area (issue 3): cofre-core on PostgreSQL. See docs/postgres.md.
#   make test-postgres   the whole black-box suite of cofre-core on a throwaway PostgreSQL
#                        cluster (COFRE_TEST_DBS=postgres), which includes the PostgreSQL-only
#                        tests: replicas, outages, PgBouncer, migrations, roles
#   make bench-postgres  pgbench tpcb-like vs cofre-core POST /v1/transfers on one cluster

TEST_TARGETS += test-postgres

.PHONY: test-postgres bench-postgres

test-postgres: build
	@COFRE_TEST_DBS=postgres COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin \
	    $(PYTEST) -q -p no:cacheprovider tests/e2e

bench-postgres: deps-bench build
	@scripts/bench/pg.sh $(abspath $(BUILD_DIR))/bin
