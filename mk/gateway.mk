# The NGINX gateway and the local platform (issue 5). See docs/gateway.md.
#   make test-gateway    shellcheck of the area's scripts, then tests/gateway: real NGINX in
#                        front of real cofre-core replicas (routes, limits, TLS, ids, failover,
#                        rolling restart) and scripts/run.sh end to end on private ports
#   make bench-gateway   transfers straight to cofre-core vs through the gateway (markdown)
#   make gateway-config  the rendered NGINX configuration (COFRE_GW_* from the environment)

TEST_TARGETS += test-gateway
GATEWAY_SCRIPTS := deploy/gateway/render.sh deploy/gateway/dev-cert.sh scripts/run.sh \
    scripts/bench/gateway.sh

.PHONY: test-gateway bench-gateway gateway-config

test-gateway: build
	@shellcheck $(GATEWAY_SCRIPTS)
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider tests/gateway

bench-gateway: deps-bench build
	@scripts/bench/gateway.sh $(abspath $(BUILD_DIR))/bin

gateway-config:
	@deploy/gateway/render.sh
