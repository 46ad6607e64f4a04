# Deploy area (issue 8): images, Kubernetes manifests, kind, Terraform. See docs/deploy.md.
#   make image        one image per service (podman here, docker where an engine answers)
#   make test-image   build cofre-core's image and smoke-test it (slow; .ci/run calls it)
#   make test-deploy  render + schema + policy + terraform fmt + shellcheck + compose checks
#   make kind-up / kind-down   a local three-zone cluster (needs Docker and kind)

DEPLOY_BUILD_DIR ?= build-deploy
IMAGE_REPO ?= cofre/
IMAGE_TAG ?= $(shell sed -nE 's/^project.cofre VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)-$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DEPLOY_ENV = DEPLOY_BUILD_DIR=$(DEPLOY_BUILD_DIR) IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) \
    CONTAINERS_CONF=$(abspath deploy/docker/containers.conf)
CONTAINER_ENGINE ?= $(shell if command -v docker >/dev/null && docker info >/dev/null 2>&1; \
    then echo docker; else echo podman; fi)

.PHONY: deps-deploy image test-image

deps-deploy:
	@scripts/deps.sh deploy

image: deps-deploy
	@$(DEPLOY_ENV) CONTAINER_ENGINE=$(CONTAINER_ENGINE) IMAGE_EXTRA_TAGS=dev deploy/docker/build.sh

test-image: deps-deploy
	@$(DEPLOY_ENV) CONTAINER_ENGINE=$(CONTAINER_ENGINE) deploy/docker/build.sh cofre-core
	@$(DEPLOY_ENV) CONTAINER_ENGINE=$(CONTAINER_ENGINE) COFRE_CONTAINER_ENGINE=$(CONTAINER_ENGINE) \
	    COFRE_IMAGE=$(IMAGE_REPO)cofre-core:$(IMAGE_TAG) \
	    $(PYTEST) -q -p no:cacheprovider tests/deploy/test_image.py

# Schema validation needs the npm models, pinned in tests/deploy/package-lock.json and
# installed into the git-ignored tests/deploy/node_modules.
DEPLOY_NODE_MODULES = tests/deploy/node_modules/.package-lock.json
$(DEPLOY_NODE_MODULES): tests/deploy/package.json tests/deploy/package-lock.json
	@cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: test-deploy k8s-monitoring kind-up kind-down

TEST_TARGETS += test-deploy

# kubectl, terraform and node come with the machine (shared/environment.md).
test-deploy: $(DEPLOY_NODE_MODULES)
	@scripts/deps.sh test
	@$(PYTEST) -q -p no:cacheprovider tests/deploy --ignore=tests/deploy/test_image.py

# Refreshes the copies of deploy/observability/k8s (ServiceMonitors, PrometheusRule).
k8s-monitoring:
	@/usr/bin/python3 deploy/k8s/sync-observability.py

kind-up:
	@deploy/kind/kind-up.sh

kind-down:
	@deploy/kind/kind-down.sh
