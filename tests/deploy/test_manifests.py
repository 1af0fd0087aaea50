"""What can be checked of deploy/ without docker or a cluster: parse, structure, and the local tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from honcho.environ import parse_procfile

from app.core.embedded import redis_server_binary
from tests.deploy.kustomize import render
from tests.redis_server import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"


def k8s_documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "ui1", "ui2", "worker", "balancer"} <= services.keys()
    assert "--appendonly" in services["redis"]["command"] and "noeviction" in services["redis"]["command"]
    assert services["worker"]["deploy"]["replicas"] >= 1
    for name in ("ui1", "ui2", "worker"):
        service = services[name]
        assert service["volumes"] == ["models:/srv/modeldepot"], name
        assert service["environment"]["MODELDEPOT_REDIS_URL"] == "redis://redis:6379/0"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["restart"] == "unless-stopped"
    assert services["ui1"]["command"][0] == "serve" and services["worker"]["command"][0] == "worker"
    assert "/readyz" in " ".join(services["ui1"]["healthcheck"]["test"])
    balancer = services["balancer"]
    assert balancer["environment"]["MODELDEPOT_UI_SERVERS"] == "ui1:7860 ui2:7860"
    assert "./haproxy.cfg:/etc/modeldepot/haproxy.cfg:ro" in balancer["volumes"]
    assert {"models", "redis-data"} <= compose["volumes"].keys()
    assert (DEPLOY / compose["x-app"]["build"]["dockerfile"].removeprefix("deploy/")).is_file()


def test_kubernetes_manifests() -> None:
    docs = k8s_documents()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    ui, worker = docs[("Deployment", "modeldepot-ui")], docs[("Deployment", "modeldepot-worker")]
    ui_container, worker_container = pod_spec(ui)["containers"][0], pod_spec(worker)["containers"][0]
    assert ui_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert ui_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ui_container["args"][0] == "serve" and worker_container["args"][0] == "worker"
    claim = docs[("PersistentVolumeClaim", "modeldepot-models")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment in (ui, worker):
        volumes = pod_spec(deployment)["volumes"]
        assert volumes == [{"name": "models", "persistentVolumeClaim": {"claimName": "modeldepot-models"}}]
        mounts = pod_spec(deployment)["containers"][0]["volumeMounts"]
        assert mounts == [{"name": "models", "mountPath": "/srv/modeldepot"}]
    ingress = docs[("Ingress", "modeldepot")]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "modeldepot-ui" and ("Service", "modeldepot-ui") in docs
    redis_args = pod_spec(docs[("StatefulSet", "modeldepot-redis")])["containers"][0]["args"]
    assert "--appendonly" in redis_args and "noeviction" in redis_args
    secret_url = docs[("Secret", "modeldepot-secrets")]["stringData"]["MODELDEPOT_REDIS_URL"]
    assert secret_url.startswith("redis://") and "modeldepot-redis:6379" in secret_url


def test_kustomize_renders() -> None:
    docs = render(K8S)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        [
            "Namespace",
            "ConfigMap",
            "Secret",
            "Service",
            "Service",
            "PersistentVolumeClaim",
            "Deployment",
            "Deployment",
            "StatefulSet",
            "Ingress",
        ]
    )
    text = yaml.safe_dump_all(docs)
    assert "namespace: modeldepot" in text and "registry.example.com/modeldepot:0.1.0" in text


def test_systemd_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point the units at this machine's binaries.
    modeldepot = str(Path(sys.executable).parent / "modeldepot")
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/modeldepot/venv/bin/modeldepot", modeldepot)
        text = text.replace("/usr/bin/redis-server", redis_server_binary())
        text = text.replace("EnvironmentFile=/etc/", "EnvironmentFile=-/etc/")
        (tmp_path / unit.name).write_text(text)
    names = ["modeldepot-ui@7861.service", "modeldepot-worker@1.service", "modeldepot-redis.service"]
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    problems = [line for line in result.stderr.splitlines() if "modeldepot" in line]
    assert result.returncode == 0 and not problems, result.stderr
    for name in ("modeldepot-ui@.service", "modeldepot-worker@.service", "modeldepot-redis.service"):
        assert "Restart=always" in (DEPLOY / "systemd" / name).read_text()


def test_procfile() -> None:
    processes = parse_procfile((DEPLOY / "Procfile").read_text()).processes
    assert list(processes) == ["ui", "worker", "redis", "balancer"]
    assert "modeldepot serve" in processes["ui"] and '--port "$PORT"' in processes["ui"]
    assert "modeldepot worker" in processes["worker"] and "--appendonly yes" in processes["redis"]


def test_redis_conf_is_accepted(tmp_path: Path) -> None:
    conf = (DEPLOY / "redis" / "redis.conf").read_text().replace("dir /var/lib/modeldepot-redis", f"dir {tmp_path}")
    (tmp_path / "redis.conf").write_text(conf)
    port = free_port()
    proc = subprocess.Popen(
        [redis_server_binary(), str(tmp_path / "redis.conf"), "--port", str(port), "--requirepass", "secret"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port, password="secret")
    try:
        deadline = time.monotonic() + 10
        while not _answers(client):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_haproxy_template_renders(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if haproxy is None:
        pytest.skip("haproxy is not installed")
    env = {
        **os.environ,
        "MODELDEPOT_UI_SERVERS": "127.0.0.1:17861 127.0.0.1:17862 127.0.0.1:17863",
        "MODELDEPOT_LB_BIND": "127.0.0.1:18080",
        "MODELDEPOT_STATS_BIND": "127.0.0.1:18404",
    }
    rendered = subprocess.run(
        [str(DEPLOY / "render-haproxy.sh")], capture_output=True, text=True, env=env, check=True
    ).stdout
    servers = [line.split()[2] for line in rendered.splitlines() if line.strip().startswith("server ui")]
    assert servers == ["127.0.0.1:17861", "127.0.0.1:17862", "127.0.0.1:17863"]
    assert "bind 127.0.0.1:18080" in rendered and "bind 127.0.0.1:18404" in rendered
    (tmp_path / "haproxy.cfg").write_text(rendered)
    check = subprocess.run([haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
