#!/usr/bin/env bash
# Builds one image per cofre service from deploy/docker/Dockerfile, with docker where a Docker
# engine answers and with podman otherwise (this project's machines have no Docker engine).
# The Dockerfile is the same for both; with podman, the base image cannot be pulled, so it is
# made from Debian's archive with mmdebstrap and imported under the name the Dockerfile uses.
#
# Usage: deploy/docker/build.sh [SERVICE...]   (default: every service that has sources)
# Environment:
#   IMAGE_REPO    name prefix (default "cofre/"; an ECR registry in the pipeline)
#   IMAGE_TAG     tag (default VERSION-REVISION12); never "latest"
#   IMAGE_EXTRA_TAGS  more tags for the same image, space-separated (e.g. "dev")
#   CONTAINER_ENGINE  docker or podman (default: docker if its engine answers, else podman)
#   DEPLOY_BUILD_DIR  where the base image tarball is cached (default build-deploy)
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly all_services=(cofre-core cofre-auth cofre-audit cofre-legacy cofre-legacy-sim)
readonly base_image=docker.io/library/debian:bookworm-slim
build_dir=${DEPLOY_BUILD_DIR:-build-deploy}

die() { echo "build.sh: $*" >&2; exit 1; }

# A service is built when some services/*/CMakeLists.txt declares its executable.
has_sources() {
    grep -qsE "add_executable\(\s*$1(\s|\))" services/*/CMakeLists.txt
}

pick_engine() {
    if [[ -n ${CONTAINER_ENGINE:-} ]]; then
        echo "$CONTAINER_ENGINE"
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo docker
    elif command -v podman >/dev/null; then
        echo podman
    else
        die "neither a Docker engine nor podman (scripts/deps.sh deploy installs podman)"
    fi
}

# podman only: make debian:bookworm-slim from Debian's archive unless it is already there.
ensure_podman_base() {
    podman image exists "$base_image" && return 0
    mkdir -p "$build_dir"
    local tar=$build_dir/debian-bookworm-minbase.tar
    if [[ ! -s $tar ]]; then
        echo "build.sh: making $base_image with mmdebstrap" >&2
        # mmdebstrap picks the output format from the file name: keep the .tar suffix.
        mmdebstrap --quiet --variant=minbase bookworm "${tar%.tar}.partial.tar"
        mv "${tar%.tar}.partial.tar" "$tar"
    fi
    podman import --quiet "$tar" "$base_image" >/dev/null
}

engine=$(pick_engine)
if [[ $engine == podman ]]; then
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/docker/containers.conf}
    ensure_podman_base
    engine_args=(--network=host --format docker --layers)
else
    engine_args=()
fi

version=$(sed -nE 's/^project\(cofre VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(git remote get-url origin 2>/dev/null || echo unknown)
tag=${IMAGE_TAG:-$version-${revision:0:12}}
[[ $tag != latest ]] || die "IMAGE_TAG=latest is refused: use an explicit version"
repo=${IMAGE_REPO:-cofre/}

services=("$@")
if [[ ${#services[@]} -eq 0 ]]; then
    for s in "${all_services[@]}"; do
        if has_sources "$s"; then services+=("$s"); fi
    done
fi
[[ ${#services[@]} -gt 0 ]] || die "no service has sources yet"

for svc in "${services[@]}"; do
    tags=(-t "$repo$svc:$tag")
    for extra in ${IMAGE_EXTRA_TAGS:-}; do tags+=(-t "$repo$svc:$extra"); done
    echo "build.sh: $engine building $repo$svc:$tag" >&2
    "$engine" build "${engine_args[@]}" -f deploy/docker/Dockerfile --target "$svc" \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        --build-arg SOURCE="$source_url" "${tags[@]}" .
done
for svc in "${services[@]}"; do
    size=$("$engine" image inspect --format '{{.Size}}' "$repo$svc:$tag")
    awk -v n="$repo$svc:$tag" -v s="$size" 'BEGIN { printf "image %s %d bytes (%.1f MB)\n", n, s, s / 1e6 }'
done
