"""The policy rules can fail: each case breaks one thing in a copy of a rendered overlay and
checks that the matching rule fails, naming the object and the rule."""

import copy

import pytest

import test_policy as policy
from conftest import render


@pytest.fixture(scope="module")
def good():
    return {name: render(name)[1] for name in ("kind", "prod")}


def core(objs, kind="Deployment", name="cofre-core"):
    return policy.find(objs, kind, name)


def ctr(objs, name="cofre-core"):
    return core(objs, name=name)["spec"]["template"]["spec"]["containers"][0]


def drop(objs, kind, name):
    objs.remove(policy.find(objs, kind, name))


def set_latest(objs):
    c = ctr(objs)
    c["image"] = c["image"].rsplit(":", 1)[0] + ":latest"


CASES = [
    ("no readiness", lambda o: ctr(o).pop("readinessProbe"), policy.test_probes_present_and_distinct,
     "Deployment/cofre-core container cofre-core: probes"),
    ("same probes", lambda o: ctr(o).update(livenessProbe=ctr(o)["readinessProbe"]),
     policy.test_probes_present_and_distinct, "liveness and readiness are identical"),
    ("no limits", lambda o: ctr(o)["resources"].pop("limits"), policy.test_resources,
     "Deployment/cofre-core container cofre-core: resources: no limits.cpu"),
    ("writable root", lambda o: ctr(o)["securityContext"].update(readOnlyRootFilesystem=False),
     policy.test_security_context, "cofre-core: securityContext: readOnlyRootFilesystem"),
    ("caps kept", lambda o: ctr(o)["securityContext"]["capabilities"].update(drop=[]),
     policy.test_security_context, "capabilities do not drop ALL"),
    ("token mounted", lambda o: core(o, "ServiceAccount").update(automountServiceAccountToken=True),
     policy.test_service_accounts, "ServiceAccount/cofre-core: serviceaccount"),
    ("no pdb", lambda o: drop(o, "PodDisruptionBudget", "cofre-core"),
     policy.test_pdb_for_every_multi_replica_workload, "Deployment/cofre-core: pdb"),
    ("hpa at pdb", lambda o: core(o, "HorizontalPodAutoscaler")["spec"].update(
        minReplicas=core(o, "PodDisruptionBudget")["spec"]["minAvailable"]),
     policy.test_autoscaler_minimum_above_pdb, "HorizontalPodAutoscaler/cofre-core: hpa-min"),
    ("keda at pdb", lambda o: core(o, "ScaledObject", "cofre-audit")["spec"].update(
        minReplicaCount=1), policy.test_autoscaler_minimum_above_pdb,
     "ScaledObject/cofre-audit: hpa-min"),
    ("no rps metric", lambda o: core(o, "HorizontalPodAutoscaler")["spec"]["metrics"].pop(1),
     policy.test_autoscaling_shape, "HorizontalPodAutoscaler/cofre-core: hpa: no requests"),
    ("no spread", lambda o: core(o)["spec"]["template"]["spec"].pop("topologySpreadConstraints"),
     policy.test_zone_spread, "Deployment/cofre-core: zone-spread"),
    ("latest", set_latest, policy.test_image_tags, "Deployment/cofre-core container cofre-core: image-tag"),
    ("no own netpol", lambda o: drop(o, "NetworkPolicy", "cofre-core"),
     policy.test_network_policy_selects_every_pod, "Deployment/cofre-core: networkpolicy"),
    ("no default deny", lambda o: drop(o, "NetworkPolicy", "default-deny-all"),
     policy.test_network_policy_selects_every_pod, "no default-deny policy"),
    ("secret in git", lambda o: o.append({"apiVersion": "v1", "kind": "Secret",
                                          "metadata": {"name": "leak"}, "data": {"k": "dg=="}}),
     policy.test_no_secret_data, "Secret/leak: secrets"),
    ("short grace", lambda o: core(o)["spec"]["template"]["spec"].update(
        terminationGracePeriodSeconds=30), policy.test_graceful_shutdown_budget,
     "Deployment/cofre-core: shutdown"),
    ("no preStop", lambda o: ctr(o).pop("lifecycle"), policy.test_graceful_shutdown_budget,
     "Deployment/cofre-core: shutdown: no preStop"),
    ("migrate image", lambda o: policy.containers(core(o, "Job", "cofre-core-migrate"))[0].update(
        image="cofre/cofre-core:other"), policy.test_migration_job, "Job/cofre-core-migrate: migration"),
    ("metrics exposed", lambda o: core(o, "Ingress", "cofre-api")["spec"]["rules"][0]["http"]["paths"]
     .append({"path": "/metrics", "pathType": "Prefix", "backend": {"service": {
         "name": "cofre-core", "port": {"name": "http"}}}}),
     policy.test_ingress_routes_and_limits, "routes beyond the gateway's"),
    ("no service", lambda o: drop(o, "Service", "cofre-auth"), policy.test_services_and_monitoring,
     "Deployment/cofre-auth: service"),
]


@pytest.mark.parametrize("what,breaks,rule,expect", CASES, ids=[c[0] for c in CASES])
def test_rule_fails_on_broken_copy(good, what, breaks, rule, expect):
    objs = copy.deepcopy(good["kind"])
    rule(("kind", objs))  # passes on the real overlay
    breaks(objs)
    with pytest.raises(pytest.fail.Exception) as err:
        rule(("kind", objs))
    assert expect in str(err.value), f"{what}: message was {err.value}"


def test_prod_replica_rule_fails(good):
    objs = copy.deepcopy(good["prod"])
    core(objs)["spec"]["replicas"] = 2
    with pytest.raises(pytest.fail.Exception) as err:
        policy.test_replicas_per_environment(("prod", objs))
    assert "prod: Deployment/cofre-core: replicas" in str(err.value)
