#!/usr/bin/env bash
# Keeps the record of one deployment (written by deploy.sh as deployment-record.json) where
# the team's delivery metrics read it: s3://$RECORDS_BUCKET/deployments/ENV/TIME-COMMIT.json,
# one object per deployment (deployment frequency, lead time, change failure rate and time to
# restore are computed from these). Also writes a record when deploy.sh never ran (a failure
# before it), so no attempt goes unrecorded. GitHub keeps its own Deployments for the
# environment as well. Usage: record-deployment.sh ENVIRONMENT
set -euo pipefail

env_name=${1:?usage: record-deployment.sh ENVIRONMENT}
record=${RECORD_FILE:-deployment-record.json}
if [[ ! -s "$record" ]]; then
    cat >"$record" <<JSON
{"environment": "$env_name", "commit": "${GITHUB_SHA:-unknown}", "started_at": null,
 "finished_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "outcome": "failed_before_deploy",
 "actor": "${GITHUB_ACTOR:-unknown}",
 "run_url": "${GITHUB_SERVER_URL:-}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}"}
JSON
fi
/usr/bin/env python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$record"
cat "$record"
if [[ -n "${RECORDS_BUCKET:-}" ]]; then
    key="deployments/$env_name/$(date -u +%Y%m%dT%H%M%SZ)-${GITHUB_SHA:-unknown}.json"
    aws s3 cp --only-show-errors "$record" "s3://$RECORDS_BUCKET/$key"
else
    echo "record-deployment.sh: RECORDS_BUCKET unset; record kept as a workflow artifact only" >&2
fi
