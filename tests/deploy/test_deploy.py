"""deploy/ checked offline (no Docker engine, no cluster here): the Dockerfile linted by
hadolint and its essentials read; the image's own command and healthcheck run as a process;
the Kubernetes base and example overlay rendered by `kubectl kustomize` and validated by
kubernetes-validate against a pinned Kubernetes version, then their essentials asserted;
the compose file's essentials, its gateway config checked with its secrets, and its load
balancer's config accepted by Debian's nginx (`nginx -t`). The fleet itself runs as
processes in tests/system/test_fleet.py."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config.settings import LiveSettings
from tests.helpers import ROOT, free_port, load_settings
from tests.system.processes import SECRETS, clean_env, completed, production_config, started

DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent  # the virtualenv's: hadolint and kubectl come from PyPI
KUBERNETES = "1.32.0"  # the version the manifests are validated against
SECRETS_DIR = "/etc/balance-gateway/secrets/"


# --- the container image ----------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments out."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_the_dockerfile_passes_hadolint() -> None:
    linted = completed([str(BIN / "hadolint"), str(DEPLOY / "Dockerfile")])
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_dockerfile_has_the_essentials() -> None:
    steps = instructions((DEPLOY / "Dockerfile").read_text())
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert len(bases) >= 2  # multi-stage: nothing of the build stage but the virtualenv
    for base in bases:  # slim Python, pinned to a patch version
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base), base
    assert not [rest for word, rest in steps if word == "ADD"]  # never ADD (of a URL or not)
    installs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "-c requirements.lock" in installs  # the locked set, nothing newer
    final = dict(final_stage(steps))
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric, so runAsNonRoot can verify it
    assert "/healthz" in final["HEALTHCHECK"]
    entrypoint, command = json.loads(final["ENTRYPOINT"]), json.loads(final["CMD"])
    assert entrypoint == ["balance-gateway"] and command[0] == "serve"  # exec form
    secretish = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN)", re.I)
    for word, rest in steps:
        if word in ("ENV", "ARG"):
            assert not secretish.search(rest), rest  # no secret baked in
    ignored = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignored[0] == "*"  # everything out first, then only what the build copies
    assert "!.venv" not in ignored and "!tests/" not in ignored


def test_the_images_command_serves_and_its_healthcheck_passes(tmp_path: Path) -> None:
    """What the image runs, run here: its ENTRYPOINT + CMD on a free port, config from
    GATEWAY_CONFIG; its HEALTHCHECK command then succeeds, and SIGTERM exits 0."""
    final = dict(final_stage(instructions((DEPLOY / "Dockerfile").read_text())))
    argv = json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])
    port = free_port()
    argv = [str(BIN / argv[0]), *argv[1:]]
    argv[argv.index("--port") + 1] = str(port)
    health = json.loads(final["HEALTHCHECK"].split("CMD", 1)[1].strip())
    health = [sys.executable, *health[1:]]
    health[-1] = health[-1].replace(":8000/", f":{port}/")
    config = tmp_path / "gateway.toml"
    config.write_text(
        production_config("http://127.0.0.1:9", tmp_path / "journal.db", server="drain_seconds = 0")
    )
    env = clean_env(**SECRETS, GATEWAY_CONFIG=str(config))
    with started(argv, tmp_path / "logs", env=env) as gateway:
        gateway.wait_http(f"http://127.0.0.1:{port}/healthz")
        checked = completed(health)
        status = gateway.stop(signal.SIGTERM)
    assert checked.returncode == 0, checked.stderr
    assert status == 0


# --- Kubernetes ---------------------------------------------------------------------------


def rendered(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


BASE = DEPLOY / "kubernetes" / "base"
OVERLAY = DEPLOY / "kubernetes" / "overlays" / "example"


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "overlay"])
def test_the_kubernetes_manifests_render_and_validate(folder: Path) -> None:
    docs = rendered(folder)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises when invalid


def test_the_validator_does_refuse_a_broken_manifest() -> None:
    deployment = of_kind(rendered(BASE), "Deployment")
    deployment["spec"]["replicas"] = "two"
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy_"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def gateway_toml(docs: list[dict[str, Any]]) -> str:
    (text,) = [d["data"]["gateway.toml"] for d in docs if "gateway.toml" in d.get("data", {})]
    return str(text)


def test_the_deployment_has_the_essentials() -> None:
    docs = rendered(BASE)
    deployment = of_kind(docs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] >= 2
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"]
    # the grace period covers the preStop pause, the drain and the in-flight window
    server = tomllib.loads(gateway_toml(docs))["server"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    budget = pause + server["drain_seconds"] + server["shutdown_timeout_seconds"]
    assert pod["terminationGracePeriodSeconds"] > budget
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # the only writable place, with a read-only root
    config_path = next(e["value"] for e in container["env"] if e["name"] == "GATEWAY_CONFIG")
    assert Path(config_path).parent.as_posix() in mounts
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    # the scrape goes to the metrics listener: the port the config listens on, declared
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    listen = tomllib.loads(gateway_toml(docs))["metrics"]["listen"]
    assert listen == f"0.0.0.0:{ports['metrics']}"
    assert annotations["prometheus.io/port"] == str(ports["metrics"]) != str(ports["http"])
    service = of_kind(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    targets = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert targets == {"http": "http", "metrics": "metrics"}
    assert of_kind(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    budget_doc = of_kind(docs, "PodDisruptionBudget")["spec"]
    assert budget_doc["selector"]["matchLabels"].items() <= labels.items()


def test_the_network_policy_lets_out_dns_redis_postgres_and_https_only() -> None:
    policy = of_kind(rendered(BASE), "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "balance-gateway"}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    out = {
        (port["port"], port["protocol"]): rule["to"]
        for rule in policy["egress"]
        for port in rule["ports"]
    }
    assert set(out) == {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (5432, "TCP"), (443, "TCP")}
    # the peers' own labels, not rewritten by Kustomize into the gateway's
    assert out[(6379, "TCP")][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "redis"
    }
    assert out[(5432, "TCP")][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "postgres"
    }
    assert out[(443, "TCP")][0]["ipBlock"]["except"]  # not the cluster's private ranges


def test_the_example_lets_only_the_gateway_reach_redis() -> None:
    """The Redis side: an ingress policy on Redis's pods admitting the gateway's pods on
    Redis's port and nothing else (the gateway's own policy only lets it out)."""
    policies = [d for d in rendered(OVERLAY) if d["kind"] == "NetworkPolicy"]
    (redis,) = [p["spec"] for p in policies if p["metadata"]["name"] != "balance-gateway"]
    assert redis["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    assert redis["policyTypes"] == ["Ingress"]
    (rule,) = redis["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "balance-gateway"}}}
    ]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]


def test_the_kubernetes_gateway_authenticates_to_redis_with_the_secrets_password() -> None:
    cache = tomllib.loads(gateway_toml(rendered(BASE)))["cache"]
    assert cache["username"] == "balance-gateway"
    assert cache["password"] == f"file:{SECRETS_DIR}redis-password"
    assert "@" not in cache["url"]  # never credentials in the ConfigMap


def test_the_network_policy_admits_anyone_to_http_and_only_prometheus_to_metrics() -> None:
    (policy,) = [
        d["spec"]
        for d in rendered(OVERLAY)
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "balance-gateway"
    ]
    rules = {
        (port["port"], port["protocol"]): rule.get("from")
        for rule in policy["ingress"]
        for port in rule["ports"]
    }
    assert set(rules) == {("http", "TCP"), ("metrics", "TCP")}
    assert rules[("http", "TCP")] is None  # the gateway's port: as before, from anywhere
    # the metrics port: one peer, which must match both selectors (the documented assumption),
    # kept as written by Kustomize (not rewritten into the gateway's own labels)
    (scraper,) = rules[("metrics", "TCP")]
    assert scraper == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }


def secret_files(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name in names:
        (folder / name).write_text(f"placeholder-{name}\n")
    return folder


def test_the_kubernetes_config_checks_out_with_the_secrets_the_example_names(
    tmp_path: Path,
) -> None:
    overlay = rendered(OVERLAY)
    keys = sorted(of_kind(overlay, "Secret")["stringData"])
    text = gateway_toml(overlay)
    referenced = sorted(set(re.findall(re.escape(SECRETS_DIR) + r"([\w.-]+)", text)))
    assert referenced == keys  # every secret the config reads is in the example, and no more
    folder = secret_files(tmp_path, keys)
    config = tmp_path / "gateway.toml"
    config.write_text(text.replace(SECRETS_DIR, f"{folder}/"))
    settings = load_settings(str(config), env={})  # raises, listing problems, when wrong
    assert settings.server.profile == "production"
    assert settings.cache.url.startswith("redis://") and settings.idempotency.password
    assert settings.cache.password is not None and settings.cache.username


# --- compose ------------------------------------------------------------------------------

COMPOSE = DEPLOY / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_has_the_fleet_with_healthchecks_and_ordered_starts() -> None:
    spec = compose()
    services = spec["services"]
    assert {"lb", "gateway-1", "gateway-2", "simulator", "redis", "postgres"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services and condition == {"condition": "service_healthy"}
    for replica in ("gateway-1", "gateway-2"):
        gateway = services[replica]
        assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
        assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
        assert set(gateway["depends_on"]) == {"redis", "postgres", "simulator"}
        assert gateway["build"]["dockerfile"] == "deploy/Dockerfile"
    assert set(services["lb"]["depends_on"]) == {"gateway-1", "gateway-2"}
    assert [p.split(":")[-1] for p in services["lb"]["ports"]] == ["8080"]  # one port
    for secret in spec["secrets"].values():  # compose secrets, from files
        assert (DEPLOY / secret["file"]).is_file()


def test_compose_redis_demands_its_password_and_the_gateways_give_it() -> None:
    """Redis's requirepass comes from the compose secret the gateways authenticate with;
    never on a command line, and the health check authenticates too."""
    spec = compose()
    redis = spec["services"]["redis"]
    command = " ".join(redis["command"])
    assert "requirepass %s" in command and "$$(cat /run/secrets/redis_password)" in command
    assert "--requirepass" not in command
    assert redis["secrets"] == ["redis_password"]
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    assert redis["user"] == "redis" and redis["read_only"] is True
    config = (DEPLOY / spec["configs"]["gateway"]["file"]).read_text()
    assert 'password = "file:/run/secrets/redis_password"' in config


def test_the_compose_gateway_config_reads_exactly_its_compose_secrets(tmp_path: Path) -> None:
    spec = compose()
    gateway = spec["services"]["gateway-1"]
    text = (DEPLOY / spec["configs"]["gateway"]["file"]).read_text()
    referenced = sorted(set(re.findall(r"file:/run/secrets/([\w.-]+)", text)))
    assert referenced == sorted(gateway["secrets"])
    assert not re.search(r'(key|secret|password) = "(?!file:)', text)  # no inline secret
    source = DEPLOY / "compose" / "demo-secrets"
    config = tmp_path / "gateway.toml"
    config.write_text(text.replace("/run/secrets/", f"{source}/"))
    settings = load_settings(str(config), env={})
    assert len(settings.accounts) == 5
    assert settings.idempotency.url.startswith("postgresql://")


def local_load_balancer(conf: str, listen: int, replicas: list[int]) -> str:
    """The compose load balancer's config with its addresses made local."""
    servers = iter(replicas)
    conf = re.sub(r"server gateway-\d+:8000", lambda _: f"server 127.0.0.1:{next(servers)}", conf)
    return conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")


def test_the_load_balancer_config_is_accepted_by_nginx(nginx: str, tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    text = (DEPLOY / "compose" / "nginx.conf").read_text()
    conf.write_text(local_load_balancer(text, free_port(), [free_port(), free_port()]))
    checked = completed(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path}/nginx.pid;"]
    )
    assert checked.returncode == 0, checked.stderr
    assert "large_client_header_buffers 4 32k" in text  # the gateway's 32 KiB of headers
    assert "client_max_body_size 256k" in text  # its 256 KiB bodies
    # live streams: unbuffered, and idle no longer than the gateway's heartbeat allows
    stream = text[text.index("location = /graphql/stream") :].split("}", 1)[0]
    assert "proxy_buffering off;" in stream
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", stream).group(1))  # type: ignore[union-attr]
    assert read_timeout > LiveSettings().heartbeat_seconds
