# Authentication (issue 4): cofre-auth and the token checks of every service. See docs/auth.md.
#   make test-auth           tests/auth on the SQLite registry: cofre-auth as an OAuth client
#                            sees it (PyJWT against the JWKS, RFC 6749 errors, introspection,
#                            outbox events), cofre-core with checks on (the attack table,
#                            scopes, owners, idempotency per client), brute-force throttling,
#                            key rotation under load, the command lines, and the events on
#                            cofre.auth.events through cofre-kafka-dev (two replicas, one
#                            relay, each effect once, schema-valid).
#   make test-auth-postgres  the same suite on a throwaway PostgreSQL cluster
#                            (COFRE_TEST_DBS=postgres), plus the PostgreSQL-only tests:
#                            migrations, the service role's grants, replicas as one service,
#                            PgBouncer, the database going away and coming back.
#                            The unit tests (test_jwt, test_registry, ...) run in test-unit,
#                            fuzz_jwt in test-fuzz.
#   make bench-auth          the token check's cost on GET /v1/accounts/{id} and the issuance
#                            rate (markdown; scripts/bench.sh includes it)

TEST_TARGETS += test-auth test-auth-postgres

.PHONY: test-auth test-auth-postgres bench-auth

test-auth: build
	@shellcheck scripts/bench/auth.sh
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/auth

test-auth-postgres: build
	@COFRE_TEST_DBS=postgres COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin \
	    $(PYTEST) -q -p no:cacheprovider tests/auth

bench-auth: deps-bench build
	@scripts/bench/auth.sh $(abspath $(BUILD_DIR))/bin
