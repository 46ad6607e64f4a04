"""The deploy area's parts agree with each other: the Ingress limits with the compose gateway,
the HPA metric with prometheus-adapter and docs/metrics.md, and the EKS overlays with the
Terraform roots (accounts, VPC CIDRs, IRSA role names, ECR repositories)."""

import re

import pytest
import yaml

from conftest import ROOT, render

TF_ENVS = {"staging": "staging", "prod": "prod"}


def annotations(objs, name):
    for o in objs:
        if o["kind"] == "Ingress" and o["metadata"]["name"] == name:
            return o["metadata"]["annotations"]
    pytest.fail(f"Ingress/{name} missing")


def test_ingress_limits_match_compose_gateway():
    conf = (ROOT / "deploy/docker/compose/gateway.conf").read_text(encoding="utf-8")
    zones = dict(re.findall(r"limit_req_zone \S+ zone=(\w+):\S+ rate=(\d+)r/s;", conf))
    objs = render("prod")[1]
    api, token, batch = (annotations(objs, n) for n in
                         ("cofre-api", "cofre-api-token", "cofre-api-batch"))
    key = "nginx.ingress.kubernetes.io/"
    assert api[key + "limit-rps"] == zones["cofre_api"], (api[key + "limit-rps"], zones)
    assert token[key + "limit-rps"] == zones["cofre_token"], (token[key + "limit-rps"], zones)
    assert api[key + "proxy-body-size"] == "64k" and "client_max_body_size 64k;" in conf
    assert batch[key + "proxy-body-size"] == "256k" and "client_max_body_size 256k;" in conf
    read = re.search(r"proxy_read_timeout (\d+)s;", conf).group(1)
    assert api[key + "proxy-read-timeout"] == read
    assert "non_idempotent" in api[key + "proxy-next-upstream"]


def test_hpa_metric_served_by_prometheus_adapter():
    values = yaml.safe_load((ROOT / "deploy/k8s/platform/prometheus-adapter.values.yaml")
                            .read_text(encoding="utf-8"))
    rule = values["rules"]["custom"][0]
    served = rule["name"]["as"]
    source = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
    metrics_md = (ROOT / "docs/metrics.md").read_text(encoding="utf-8")
    assert f"`{source}`" in metrics_md, f"{source} is not in docs/metrics.md"
    for o in render("prod")[1]:
        if o["kind"] != "HorizontalPodAutoscaler":
            continue
        names = [m["pods"]["metric"]["name"] for m in o["spec"]["metrics"] if m["type"] == "Pods"]
        assert names == [served], f"{o['metadata']['name']}: {names} vs adapter's {served}"


def terraform_root(env):
    text = (ROOT / f"deploy/terraform/envs/{env}/main.tf").read_text(encoding="utf-8")
    account = re.search(r'allowed_account_ids = \["(\d{12})"\]', text).group(1)
    cidr = re.search(r'cidr\s+=\s+"([\d./]+)"', text).group(1)
    region = re.search(r'region\s+=\s+"([a-z0-9-]+)"', text).group(1)
    name = re.search(r'name = "(cofre-[a-z]+)"', text).group(1)
    return account, cidr, region, name


@pytest.mark.parametrize("overlay", sorted(TF_ENVS))
def test_eks_overlay_matches_terraform(overlay):
    account, cidr, region, name = terraform_root(TF_ENVS[overlay])
    objs = render(overlay)[1]
    bad = []
    ecr = f"{account}.dkr.ecr.{region}.amazonaws.com/cofre/"
    ecr_images = (ROOT / "deploy/terraform/modules/ecr/variables.tf").read_text()
    for o in objs:
        kind, oname = o["kind"], o["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "Job"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                if not c["image"].startswith(ecr):
                    bad.append(f"{kind}/{oname}: image {c['image']} is not in {ecr}")
                repo = c["image"][len(ecr):].split(":")[0].split("@")[0]
                if f'"{repo}"' not in ecr_images:
                    bad.append(f"{kind}/{oname}: no ECR repository {repo} in Terraform")
        if kind == "ServiceAccount" and oname in ("cofre-core", "cofre-auth", "cofre-audit",
                                                   "cofre-legacy"):
            arn = o["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
            want = f"arn:aws:iam::{account}:role/{name}-{oname.removeprefix('cofre-')}"
            if arn != want:
                bad.append(f"ServiceAccount/{oname}: role {arn}, Terraform makes {want}")
        if kind == "NetworkPolicy" and oname == "allow-aws-datastores":
            got = o["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"]
            if got != cidr:
                bad.append(f"NetworkPolicy/{oname}: CIDR {got}, the VPC is {cidr}")
        if kind == "SecretStore":
            got = o["spec"]["provider"]["aws"]["region"]
            if got != region:
                bad.append(f"SecretStore/{oname}: region {got}, Terraform uses {region}")
        if kind == "ConfigMap" and oname == "cofre-config":
            brokers = o["data"]["COFRE_KAFKA_BROKERS"]
            if not all(b.endswith(":9096") for b in brokers.split(",")):
                bad.append("ConfigMap/cofre-config: MSK SASL/SCRAM brokers listen on 9096")
    assert not bad, "\n".join(bad)
