"""The gateway's configuration: `nginx -t` passes on what render.sh makes (defaults, the test
harness's and a Kubernetes-style environment); malformed settings stop the renderer with one
line naming the variable; the template holds no local path and only known variables; its
limits agree with the compose gateway and the Ingresses."""

import os
import re
import shutil
import subprocess

import pytest

from gw import GATEWAY_DIR, REPO, nginx_test, render, workdir

TEMPLATE = os.path.join(GATEWAY_DIR, "nginx.conf.template")
RENDER = os.path.join(GATEWAY_DIR, "render.sh")


@pytest.fixture
def prefix():
    d = workdir("cofre-gw-conf-")
    os.makedirs(os.path.join(d, "tmp"))
    subprocess.run([os.path.join(GATEWAY_DIR, "dev-cert.sh"), os.path.join(d, "tls")],
                   check=True, timeout=30)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_render(env, *args):
    return subprocess.run([RENDER, *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30)


def test_nginx_t_passes_on_the_defaults(prefix):
    conf = os.path.join(prefix, "nginx.conf")
    render({"PATH": os.environ["PATH"]}, conf)
    r = nginx_test(prefix, conf)
    assert "syntax is ok" in r.stderr and "successful" in r.stderr, r.stderr


def test_nginx_t_passes_in_a_container_layout(prefix):
    """As a ConfigMap would use it: all addresses, absolute temp/pid paths, certificates
    mounted elsewhere, several replicas per upstream, logs to the container's streams."""
    tls = os.path.join(prefix, "tls")
    env = {
        "PATH": os.environ["PATH"],
        "COFRE_GW_HTTP_LISTEN": "8080", "COFRE_GW_HTTPS_LISTEN": "8443",
        "COFRE_GW_STATUS_LISTEN": "8089",
        "COFRE_GW_CORE_UPSTREAMS": "10.0.0.1:8081,10.0.0.2:8081,10.0.0.3:8081",
        "COFRE_GW_AUTH_UPSTREAMS": "10.0.1.1:8082", "COFRE_GW_AUDIT_UPSTREAMS": "10.0.2.1:8083",
        "COFRE_GW_TLS_CERT": f"{tls}/cert.pem", "COFRE_GW_TLS_KEY": f"{tls}/key.pem",
        "COFRE_GW_PID": f"{prefix}/nginx.pid", "COFRE_GW_TEMP_DIR": f"{prefix}/tmp",
        "COFRE_GW_ACCESS_LOG": "/dev/stdout", "COFRE_GW_ERROR_LOG": "stderr",
        "COFRE_GW_WORKERS": "4",
    }
    conf = os.path.join(prefix, "k8s.conf")
    render(env, conf)
    text = open(conf, encoding="utf-8").read()
    assert text.count("server 10.0.0.") == 3 and "max_fails=2 fail_timeout=5s;" in text
    assert not re.search(r"\$\{COFRE_GW_[A-Z0-9_]+\}", text)
    nginx_test(prefix, conf)


@pytest.mark.parametrize("name,value", [
    ("COFRE_GW_API_RATE", "100r/s; include /etc/passwd"),
    ("COFRE_GW_API_RATE", "fast"),
    ("COFRE_GW_API_BURST", "0"),
    ("COFRE_GW_CORE_UPSTREAMS", "127.0.0.1:8081;server evil:80"),
    ("COFRE_GW_CORE_UPSTREAMS", ""),
    ("COFRE_GW_HTTP_LISTEN", "127.0.0.1:8080 ssl"),
    ("COFRE_GW_READ_TIMEOUT", "15"),
    ("COFRE_GW_TLS_CERT", "/etc/ssl/my cert.pem"),
    ("COFRE_GW_ACCESS_LOG", "/dev/stdout cofre_json; access_log /tmp/x"),
    ("COFRE_GW_WORKERS", "-1"),
])
def test_renderer_refuses_malformed_settings(name, value):
    """A malformed value never reaches the file: exit 2 and one line naming the variable."""
    r = run_render({name: value})
    assert r.returncode == 2, (r.returncode, r.stdout[:200])
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and name in r.stderr, r.stderr


def test_renderer_refuses_an_unknown_template_variable(tmp_path):
    tpl = tmp_path / "t.template"
    tpl.write_text(open(TEMPLATE, encoding="utf-8").read() + "# ${COFRE_GW_NOPE}\n")
    r = run_render({}, "-t", str(tpl))
    assert r.returncode == 2 and "COFRE_GW_NOPE" in r.stderr, r.stderr


def test_template_uses_only_known_variables_and_no_local_path():
    text = open(TEMPLATE, encoding="utf-8").read()
    listed = {line.split()[0] for line in run_render({}, "--list").stdout.splitlines()}
    derived = {"COFRE_GW_CORE_SERVERS", "COFRE_GW_AUTH_SERVERS", "COFRE_GW_AUDIT_SERVERS"}
    used = set(re.findall(r"\$\{(COFRE_GW_[A-Z0-9_]+)\}", text))
    assert used - listed - derived == set(), used - listed - derived
    # Every setting the renderer offers is used (the UPSTREAMS through the derived SERVERS).
    unused = listed - used - {"COFRE_GW_CORE_UPSTREAMS", "COFRE_GW_AUTH_UPSTREAMS",
                              "COFRE_GW_AUDIT_UPSTREAMS", "COFRE_GW_MAX_FAILS",
                              "COFRE_GW_FAIL_TIMEOUT"}
    assert unused == set(), unused
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for local in ("/work", "/home", "/tmp", "/var/", "/etc/", "/usr/", "build/", REPO):
        assert local not in body, f"the template mentions {local}"
    assert "daemon" not in body, "daemon off comes from the command line (-g), as in containers"


def test_defaults_agree_with_compose_and_ingress():
    """The limits of the compose gateway (and, through tests/deploy, the Ingresses) are the
    template's defaults: the same rates, body sizes and read timeout everywhere."""
    compose = open(os.path.join(REPO, "deploy/docker/compose/gateway.conf"),
                   encoding="utf-8").read()
    zones = dict(re.findall(r"limit_req_zone \S+ zone=(\w+):\S+ rate=(\d+r/s);", compose))
    defaults = dict(line.split(None, 1) for line in run_render({}, "--list").stdout.splitlines())
    assert zones == {"cofre_api": defaults["COFRE_GW_API_RATE"],
                     "cofre_token": defaults["COFRE_GW_TOKEN_RATE"]}, (zones, defaults)
    read = re.search(r"proxy_read_timeout (\w+);", compose).group(1)
    assert read == defaults["COFRE_GW_READ_TIMEOUT"]
    text = open(TEMPLATE, encoding="utf-8").read()
    for size in ("client_max_body_size 64k;", "client_max_body_size 256k;"):
        assert size in text and size in compose
    assert "non_idempotent" in text and "non_idempotent" in compose


def test_kubernetes_settings_render(prefix):
    """deploy/gateway/kubernetes.env renders (every value valid) to upstreams on the cluster's
    Service names and nothing of this machine; with its names swapped for addresses (there is
    no cluster DNS here) the same file passes nginx -t."""
    env = {}
    for line in open(os.path.join(GATEWAY_DIR, "kubernetes.env"), encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    conf = os.path.join(prefix, "k8s.conf")
    render(dict(env, PATH=os.environ["PATH"]), conf)
    text = open(conf, encoding="utf-8").read()
    for svc, port in (("cofre-core", 8081), ("cofre-auth", 8082), ("cofre-audit", 8083)):
        assert f"server {svc}.cofre.svc.cluster.local:{port} " in text
    assert REPO not in text and prefix not in text
    tls = os.path.join(prefix, "tls")
    local = {k: v.replace(".cofre.svc.cluster.local", "") for k, v in env.items()}
    local.update({k: "127.0.0.1:" + v.split(":")[1] for k, v in env.items()
                  if k.endswith("_UPSTREAMS")})
    local.update(COFRE_GW_TLS_CERT=f"{tls}/cert.pem", COFRE_GW_TLS_KEY=f"{tls}/key.pem",
                 COFRE_GW_PID=f"{prefix}/nginx.pid", COFRE_GW_TEMP_DIR=f"{prefix}/tmp",
                 PATH=os.environ["PATH"])
    render(local, conf)
    nginx_test(prefix, conf)
