"""Production-readiness policy (issue 8) on every workload of every rendered overlay.

Each test is one rule; it collects every violation and fails with lines of the form
"<overlay>: <Kind>/<name>: <rule>: <detail>", so a failure names the object and the rule.
"""

import re

import pytest

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
COFRE_SERVICES = ["cofre-core", "cofre-auth", "cofre-audit", "cofre-legacy"]
DRAIN_DEFAULT_S = 5
SHUTDOWN_DEFAULT_S = 20


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_template(obj):
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]
    return spec["template"]


def workloads(objs):
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def containers(obj, init=True):
    spec = pod_template(obj)["spec"]
    out = list(spec.get("containers", []))
    if init:
        out += spec.get("initContainers", [])
    return out


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    return None


def selects(selector, labels):
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def report(overlay_name, violations):
    if violations:
        pytest.fail("\n".join(f"{overlay_name}: {v}" for v in violations), pytrace=False)


def test_overlay_has_every_service(overlay):
    name, objs = overlay
    missing = [s for s in COFRE_SERVICES if not find(objs, "Deployment", s)]
    report(name, [f"Deployment/{s}: every service deployed: missing" for s in missing])


def test_probes_present_and_distinct(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        if w["kind"] not in LONG_RUNNING:
            continue
        for c in containers(w, init=False):
            where = f"{name_of(w)} container {c['name']}"
            probes = {p: c.get(p) for p in ("startupProbe", "readinessProbe", "livenessProbe")}
            for p, v in probes.items():
                if not v:
                    bad.append(f"{where}: probes: no {p}")
            live, ready = probes["livenessProbe"], probes["readinessProbe"]
            if live and ready and live == ready:
                bad.append(f"{where}: probes: liveness and readiness are identical")
            if live and (live.get("httpGet") or {}).get("path") == "/readyz":
                bad.append(f"{where}: probes: liveness asks /readyz (it must not touch the DB)")
            if any(p.get("name") == "http" for p in c.get("ports", [])):
                if (ready or {}).get("httpGet", {}).get("path") != "/readyz":
                    bad.append(f"{where}: probes: readiness must be GET /readyz")
                if (live or {}).get("httpGet", {}).get("path") != "/healthz":
                    bad.append(f"{where}: probes: liveness must be GET /healthz")
    report(name, bad)


CPU_RE = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEM_UNITS = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}


def cpu(v):
    m = CPU_RE.match(str(v))
    assert m, f"cannot parse cpu {v!r}"
    return float(m.group(1)) / (1000 if m.group(2) else 1)


def mem(v):
    m = re.match(r"^(\d+)([KMG]i?)?$", str(v))
    assert m, f"cannot parse memory {v!r}"
    return int(m.group(1)) * MEM_UNITS[m.group(2) or ""]


def test_resources(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        for c in containers(w):
            where = f"{name_of(w)} container {c['name']}"
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        bad.append(f"{where}: resources: no {kind}.{r}")
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            if "cpu" in req and "cpu" in lim and cpu(req["cpu"]) > cpu(lim["cpu"]):
                bad.append(f"{where}: resources: cpu request above limit")
            if "memory" in req and "memory" in lim and mem(req["memory"]) > mem(lim["memory"]):
                bad.append(f"{where}: resources: memory request above limit")
    report(name, bad)


def test_security_context(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        pod = pod_template(w)["spec"]
        psc = pod.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                bad.append(f"{name_of(w)}: securityContext: {flag} is set")
        if pod.get("automountServiceAccountToken") is not False:
            bad.append(f"{name_of(w)}: serviceaccount: pod does not set "
                       "automountServiceAccountToken: false")
        for c in containers(w):
            where = f"{name_of(w)} container {c['name']}"
            csc = c.get("securityContext") or {}
            eff = {**psc, **csc}
            if eff.get("runAsNonRoot") is not True:
                bad.append(f"{where}: securityContext: runAsNonRoot is not true")
            if eff.get("runAsUser") == 0:
                bad.append(f"{where}: securityContext: runs as uid 0")
            if csc.get("allowPrivilegeEscalation") is not False:
                bad.append(f"{where}: securityContext: allowPrivilegeEscalation is not false")
            if csc.get("readOnlyRootFilesystem") is not True:
                bad.append(f"{where}: securityContext: readOnlyRootFilesystem is not true")
            if csc.get("privileged"):
                bad.append(f"{where}: securityContext: privileged")
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                bad.append(f"{where}: securityContext: capabilities do not drop ALL")
            if (csc.get("capabilities") or {}).get("add"):
                bad.append(f"{where}: securityContext: capabilities added")
            if (eff.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                bad.append(f"{where}: securityContext: seccompProfile is not RuntimeDefault")
    report(name, bad)


def test_service_accounts(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        sa = pod_template(w)["spec"].get("serviceAccountName")
        if not sa:
            bad.append(f"{name_of(w)}: serviceaccount: uses the namespace's default account")
            continue
        obj = find(objs, "ServiceAccount", sa)
        if obj is None:
            bad.append(f"{name_of(w)}: serviceaccount: {sa} is not in the overlay")
        elif obj.get("automountServiceAccountToken") is not False:
            bad.append(f"ServiceAccount/{sa}: serviceaccount: automountServiceAccountToken "
                       "is not false")
    report(name, bad)


def replicas_of(obj):
    return obj["spec"].get("replicas", 1)


def pdb_for(objs, w):
    labels = pod_template(w)["metadata"].get("labels", {})
    return [p for p in by_kind(objs, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]


def autoscaler_min(objs, w):
    """Minimum replicas from an HPA or a KEDA ScaledObject targeting w, or None."""
    wname = w["metadata"]["name"]
    for h in by_kind(objs, "HorizontalPodAutoscaler"):
        if h["spec"]["scaleTargetRef"]["name"] == wname:
            return "HorizontalPodAutoscaler", h["metadata"]["name"], h["spec"].get("minReplicas", 1)
    for s in by_kind(objs, "ScaledObject"):
        if s["spec"]["scaleTargetRef"]["name"] == wname:
            return "ScaledObject", s["metadata"]["name"], s["spec"].get("minReplicaCount", 0)
    return None


def test_pdb_for_every_multi_replica_workload(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        if w["kind"] not in ("Deployment", "StatefulSet"):
            continue
        scaled = autoscaler_min(objs, w)
        most = max(replicas_of(w), scaled[2] if scaled else 0)
        pdbs = pdb_for(objs, w)
        if most > 1 and not pdbs:
            bad.append(f"{name_of(w)}: pdb: {most} replicas and no PodDisruptionBudget")
        for p in pdbs:
            min_avail = p["spec"].get("minAvailable")
            if not isinstance(min_avail, int):
                bad.append(f"PodDisruptionBudget/{p['metadata']['name']}: pdb: minAvailable "
                           "must be an integer")
            elif min_avail >= replicas_of(w):
                bad.append(f"PodDisruptionBudget/{p['metadata']['name']}: pdb: minAvailable "
                           f"{min_avail} >= replicas {replicas_of(w)} blocks every drain")
    report(name, bad)


def test_autoscaler_minimum_above_pdb(overlay):
    name, objs = overlay
    bad = []
    for w in by_kind(objs, "Deployment"):
        scaled = autoscaler_min(objs, w)
        if scaled is None:
            continue
        kind, sname, minimum = scaled
        for p in pdb_for(objs, w):
            min_avail = p["spec"].get("minAvailable", 0)
            if isinstance(min_avail, int) and minimum < min_avail + 1:
                bad.append(f"{kind}/{sname}: hpa-min: minimum {minimum} < PDB "
                           f"{p['metadata']['name']} minAvailable {min_avail} + 1")
        if replicas_of(w) < minimum:
            bad.append(f"{name_of(w)}: hpa-min: replicas {replicas_of(w)} below the "
                       f"autoscaler minimum {minimum}")
    report(name, bad)


def test_autoscaling_shape(overlay):
    """core and auth: HPA on CPU and requests/s; audit and legacy: KEDA on Kafka lag."""
    name, objs = overlay
    bad = []
    for svc in ("cofre-core", "cofre-auth"):
        h = find(objs, "HorizontalPodAutoscaler", svc)
        if h is None:
            bad.append(f"Deployment/{svc}: hpa: no HorizontalPodAutoscaler")
            continue
        metrics = h["spec"].get("metrics", [])
        if not any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics):
            bad.append(f"HorizontalPodAutoscaler/{svc}: hpa: no CPU metric")
        if not any(m["type"] == "Pods" and m["pods"]["metric"]["name"] ==
                   "cofre_http_requests_per_second" for m in metrics):
            bad.append(f"HorizontalPodAutoscaler/{svc}: hpa: no requests-per-second metric")
        behavior = h["spec"].get("behavior") or {}
        for b in ("scaleUp", "scaleDown"):
            if not behavior.get(b):
                bad.append(f"HorizontalPodAutoscaler/{svc}: hpa: no {b} behaviour")
    for svc in ("cofre-audit", "cofre-legacy"):
        s = find(objs, "ScaledObject", svc)
        if s is None:
            bad.append(f"Deployment/{svc}: keda: no ScaledObject")
            continue
        if not any(t["type"] == "kafka" for t in s["spec"]["triggers"]):
            bad.append(f"ScaledObject/{svc}: keda: no kafka lag trigger")
        behavior = (((s["spec"].get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {})
                    .get("behavior") or {})
        for b in ("scaleUp", "scaleDown"):
            if not behavior.get(b):
                bad.append(f"ScaledObject/{svc}: keda: no {b} behaviour")
    report(name, bad)


def test_zone_spread(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        if w["kind"] not in ("Deployment", "StatefulSet"):
            continue
        labels = pod_template(w)["metadata"].get("labels", {})
        spread = [t for t in pod_template(w)["spec"].get("topologySpreadConstraints", [])
                  if t["topologyKey"] == "topology.kubernetes.io/zone"]
        if not spread:
            bad.append(f"{name_of(w)}: zone-spread: no topologySpreadConstraint over zones")
            continue
        if not any(selects(t.get("labelSelector"), labels) for t in spread):
            bad.append(f"{name_of(w)}: zone-spread: the constraint does not select its own pods")
        if replicas_of(w) > 1 and not any(t["whenUnsatisfiable"] == "DoNotSchedule"
                                          for t in spread):
            bad.append(f"{name_of(w)}: zone-spread: multi-replica spread must be DoNotSchedule")
    report(name, bad)


def test_image_tags(overlay):
    name, objs = overlay
    bad = []
    for w in workloads(objs):
        for c in containers(w):
            image = c["image"]
            if "@sha256:" in image:
                continue
            last = image.rsplit("/", 1)[-1]
            if ":" not in last:
                bad.append(f"{name_of(w)} container {c['name']}: image-tag: {image} has no tag")
            elif last.split(":", 1)[1] == "latest":
                bad.append(f"{name_of(w)} container {c['name']}: image-tag: {image} is latest")
            if c.get("imagePullPolicy") == "Always" and name == "kind":
                bad.append(f"{name_of(w)}: image-tag: kind loads images; Always would pull")
    report(name, bad)


def is_default_deny(np):
    spec = np["spec"]
    return (spec.get("podSelector") == {} and set(spec.get("policyTypes", [])) >=
            {"Ingress", "Egress"} and not spec.get("ingress") and not spec.get("egress"))


def names_app(selector):
    key = "app.kubernetes.io/name"
    return key in (selector.get("matchLabels") or {}) or any(
        e["key"] == key and e["operator"] == "In" for e in selector.get("matchExpressions") or [])


def test_network_policy_selects_every_pod(overlay):
    name, objs = overlay
    bad = []
    policies = by_kind(objs, "NetworkPolicy")
    if not any(is_default_deny(p) for p in policies):
        bad.append("Namespace/cofre: networkpolicy: no default-deny policy")
    for w in workloads(objs):
        labels = pod_template(w)["metadata"].get("labels", {})
        # Its own flows: a policy that selects it by app.kubernetes.io/name (policies for
        # every pod, such as DNS or the Prometheus scrape, do not count).
        own = [p for p in policies if names_app(p["spec"].get("podSelector") or {}) and
               selects(p["spec"]["podSelector"], labels)]
        if not own:
            bad.append(f"{name_of(w)}: networkpolicy: no policy selects its pods by name "
                       "(beyond default deny and the namespace-wide ones)")
    report(name, bad)


def test_no_secret_data(overlay):
    name, objs = overlay
    bad = [f"{name_of(s)}: secrets: a Secret with data is in git (use an ExternalSecret)"
           for s in by_kind(objs, "Secret") if s.get("data") or s.get("stringData")]
    report(name, bad)


def env_value(container, key, default):
    for e in container.get("env", []):
        if e["name"] == key and "value" in e:
            return int(e["value"])
    return default


def test_graceful_shutdown_budget(overlay):
    """preStop + drain + shutdown timeout < terminationGracePeriodSeconds, for every cofre
    Deployment; a preStop exists on every long-running cofre container."""
    name, objs = overlay
    bad = []
    for w in by_kind(objs, "Deployment"):
        grace = pod_template(w)["spec"].get("terminationGracePeriodSeconds", 30)
        for c in containers(w, init=False):
            pre = ((c.get("lifecycle") or {}).get("preStop") or {})
            if not pre:
                bad.append(f"{name_of(w)}: shutdown: no preStop")
                continue
            sleep = (pre.get("sleep") or {}).get("seconds", 0)
            drain = env_value(c, "COFRE_DRAIN_S", DRAIN_DEFAULT_S)
            finish = env_value(c, "COFRE_SHUTDOWN_TIMEOUT_S", SHUTDOWN_DEFAULT_S)
            if w["metadata"]["name"] in COFRE_SERVICES and not sleep + drain + finish < grace:
                bad.append(f"{name_of(w)}: shutdown: preStop {sleep} + drain {drain} + "
                           f"timeout {finish} >= terminationGracePeriodSeconds {grace}")
    report(name, bad)


def test_replicas_per_environment(overlay):
    name, objs = overlay
    bad = []
    for svc in COFRE_SERVICES:
        d = find(objs, "Deployment", svc)
        if d is None:
            continue
        r = replicas_of(d)
        if name == "prod" and r < 3:
            bad.append(f"Deployment/{svc}: replicas: prod needs >= 3 (one per zone), has {r}")
        if name != "prod" and r < 2:
            bad.append(f"Deployment/{svc}: replicas: {r} < 2, spread and PDBs untested")
        scaled = autoscaler_min(objs, d)
        if name == "prod" and scaled and scaled[2] < 3:
            bad.append(f"{scaled[0]}/{scaled[1]}: replicas: prod minimum {scaled[2]} < 3")
    report(name, bad)


def test_services_and_monitoring(overlay):
    """Each cofre Deployment has a Service on its http port, and the ServiceMonitor scrapes it."""
    name, objs = overlay
    bad = []
    monitors = by_kind(objs, "ServiceMonitor")
    for svc in COFRE_SERVICES:
        d = find(objs, "Deployment", svc)
        s = find(objs, "Service", svc)
        if d is None:
            continue
        if s is None or not selects({"matchLabels": s["spec"]["selector"]},
                                    pod_template(d)["metadata"]["labels"]):
            bad.append(f"Deployment/{svc}: service: no Service selects its pods")
            continue
        if not any(p["name"] == "http" for p in s["spec"]["ports"]):
            bad.append(f"Service/{svc}: service: no port named http")
        if not any(selects(m["spec"]["selector"], s["metadata"].get("labels", {}))
                   for m in monitors):
            bad.append(f"Service/{svc}: monitoring: no ServiceMonitor selects it")
    if not by_kind(objs, "PrometheusRule"):
        bad.append("PrometheusRule/*: monitoring: no rules")
    report(name, bad)


def test_migration_job(overlay):
    """The migration Job runs `cofre-core migrate` with the very image cofre-core runs."""
    name, objs = overlay
    job = find(objs, "Job", "cofre-core-migrate")
    core = find(objs, "Deployment", "cofre-core")
    bad = []
    if job is None:
        bad.append("Job/cofre-core-migrate: migration: missing")
    else:
        c = containers(job)[0]
        if c.get("args") != ["migrate"]:
            bad.append(f"Job/cofre-core-migrate: migration: args {c.get('args')}")
        if core and c["image"] != containers(core)[0]["image"]:
            bad.append(f"Job/cofre-core-migrate: migration: image {c['image']} is not "
                       f"cofre-core's {containers(core)[0]['image']}")
        if pod_template(job)["spec"].get("restartPolicy") != "Never":
            bad.append("Job/cofre-core-migrate: migration: restartPolicy must be Never")
    report(name, bad)


GATEWAY_ROUTES = {"/v1/": "cofre-core", "/v1/audit/": "cofre-audit", "/oauth/": "cofre-auth",
                  "/.well-known/": "cofre-auth", "/v1/transfers/batch": "cofre-core",
                  "/oauth/token": "cofre-auth"}


def test_ingress_routes_and_limits(overlay):
    name, objs = overlay
    bad = []
    seen = {}
    for ing in by_kind(objs, "Ingress"):
        ann = ing["metadata"].get("annotations", {})
        where = name_of(ing)
        if ing["spec"].get("ingressClassName") != "nginx":
            bad.append(f"{where}: ingress: not for ingress-nginx")
        if not ing["spec"].get("tls"):
            bad.append(f"{where}: ingress: no TLS")
        for key in ("limit-rps", "proxy-body-size", "proxy-read-timeout"):
            if f"nginx.ingress.kubernetes.io/{key}" not in ann:
                bad.append(f"{where}: ingress: no {key}")
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                seen[p["path"]] = (p["backend"]["service"]["name"],
                                   ann.get("nginx.ingress.kubernetes.io/proxy-body-size"))
    for path, svc in GATEWAY_ROUTES.items():
        if path not in seen:
            bad.append(f"Ingress/*: ingress: route {path} missing")
        elif seen[path][0] != svc:
            bad.append(f"Ingress/*: ingress: {path} goes to {seen[path][0]}, not {svc}")
    extra = set(seen) - set(GATEWAY_ROUTES)
    if extra:
        bad.append(f"Ingress/*: ingress: routes beyond the gateway's: {sorted(extra)}")
    if seen.get("/v1/transfers/batch", (None, None))[1] != "256k":
        bad.append("Ingress/cofre-api-batch: ingress: batch body limit is not 256k")
    if seen.get("/v1/", (None, None))[1] != "64k":
        bad.append("Ingress/cofre-api: ingress: body limit is not 64k")
    report(name, bad)
