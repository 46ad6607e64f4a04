# Authentication (issue 4): cofre-auth and the token checks of every service. See docs/auth.md.
#   make test-auth    tests/auth: cofre-auth as an OAuth client sees it (PyJWT against the
#                     JWKS, RFC 6749 errors, introspection, outbox events), cofre-core with
#                     checks on (the attack table, scopes, owners, idempotency per client),
#                     brute-force throttling, key rotation under load, the command lines.
#                     The unit tests (test_jwt, test_auth, ...) run in test-unit, fuzz_jwt in
#                     test-fuzz.
#   make bench-auth   the token check's cost on GET /v1/accounts/{id} and the issuance rate
#                     (markdown; scripts/bench.sh includes it)

TEST_TARGETS += test-auth

.PHONY: test-auth bench-auth

test-auth: build
	@shellcheck scripts/bench/auth.sh
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/auth

bench-auth: deps-bench build
	@scripts/bench/auth.sh $(abspath $(BUILD_DIR))/bin
