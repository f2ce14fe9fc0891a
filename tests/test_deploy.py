"""docker/: the compose stack and the Kubernetes manifests are valid and keep secrets out.

``docker compose config`` (or docker-compose) validates compose.yaml where it is
installed; the structure checks below run everywhere. Nothing is built or started.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).parents[1] / "docker"
CANARY = "canary-pw-7f3a"
USERINFO_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_has_postgres_proxy_mlflow_server_workers_and_dashboard() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "proxy", "mlflow", "worker", "dashboard"}
    assert services["worker"]["deploy"]["replicas"]
    mlflow = " ".join(services["mlflow"]["command"])
    assert "mlflow server" in mlflow
    assert "--backend-store-uri=postgresql" in mlflow
    assert "--serve-artifacts" in mlflow
    worker = services["worker"]["command"]
    assert worker[:3] == ["python", "-m", "hpo"]
    assert "storage=${HPO_STORAGE:-grpc}" in worker, "through the proxy unless told otherwise"
    assert "tracking=server" in worker
    assert services["worker"]["environment"]["HPO_TRACKING_URI"] == "http://mlflow:5000"


def test_compose_puts_the_grpc_proxy_between_postgres_and_the_workers() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert proxy["command"][:3] == ["python", "-m", "hpo.storages.proxy"]
    assert {"storage=postgres", "host=0.0.0.0", "port=13000"} <= set(proxy["command"])
    assert proxy["environment"]["HPO_STORAGE_URL"] == "postgresql://hpo@postgres:5432/optuna"
    assert proxy["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "13000" in proxy["healthcheck"]["test"][-1]
    assert "ports" not in proxy, "plain gRPC: never published outside the stack"
    worker = services["worker"]
    assert worker["environment"]["HPO_PROXY_HOST"] == "proxy"
    assert worker["depends_on"]["proxy"]["condition"] == "service_healthy"


def test_compose_publishes_ports_on_loopback_only() -> None:
    published = [p for s in compose()["services"].values() for p in s.get("ports", [])]
    assert published, "the MLflow UI and the dashboard are published"
    for port in published:
        assert str(port).startswith("127.0.0.1:"), f"{port} is reachable from other hosts"


def test_compose_takes_the_password_from_a_secret_not_from_a_url_or_command() -> None:
    stack = compose()
    for name, service in stack["services"].items():
        text = yaml.safe_dump(service)
        assert "PASSWORD:" not in text.replace("PASSWORD_FILE:", ""), name
        for word in [*service.get("command", []), *service.get("environment", {}).values()]:
            assert not USERINFO_WITH_PASSWORD.search(str(word)), f"{name}: {word}"
        if name != "postgres":
            assert "pg_password" in service.get("secrets", []), name
    assert stack["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"]
    assert stack["secrets"]["pg_password"]["file"] == "./secrets/pg_password"


def test_entrypoint_exports_the_secret_file_as_pgpassword(tmp_path: Path) -> None:
    secret = tmp_path / "pg_password"
    secret.write_text(CANARY + "\n")
    shown = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "sh", "-c", 'printf %s "$PGPASSWORD"'],
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD_FILE": str(secret)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == CANARY


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = (
        ["docker", "compose"]
        if shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
        else ["docker-compose"]
        if shutil.which("docker-compose")
        else None
    )
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    stack = tmp_path / "docker"
    shutil.copytree(DOCKER, stack, ignore=shutil.ignore_patterns("secrets"))
    (stack / "secrets").mkdir()
    (stack / "secrets" / "pg_password").write_text(CANARY)
    done = subprocess.run(
        [*command, "-f", str(stack / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HPO_WORKERS": "3"},
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["worker"]["deploy"]["replicas"] == 3
    assert CANARY not in done.stdout


def test_kubernetes_job_runs_parallel_workers_through_the_grpc_proxy() -> None:
    [job] = list(yaml.safe_load_all((DOCKER / "k8s" / "job.yaml").read_text()))
    assert job["kind"] == "Job"
    spec = job["spec"]
    assert spec["parallelism"] >= 2
    assert spec["completions"] == spec["parallelism"], "every worker exits 0 at the budget"
    [container] = spec["template"]["spec"]["containers"]
    assert container["args"][:3] == ["python", "-m", "hpo"]
    assert "storage=grpc" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    deployment, service = yaml.safe_load_all((DOCKER / "k8s" / "proxy.yaml").read_text())
    assert env["HPO_PROXY_HOST"]["value"] == service["metadata"]["name"]
    assert "HPO_STORAGE_URL" not in env, "workers through the proxy hold no database password"

    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    assert service["spec"]["type"] == "ClusterIP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["selector"].items() <= labels.items()
    [proxy] = deployment["spec"]["template"]["spec"]["containers"]
    assert proxy["args"][:3] == ["python", "-m", "hpo.storages.proxy"]
    assert {"storage=postgres", "host=0.0.0.0", "port=13000"} <= set(proxy["args"])
    [port] = proxy["ports"]
    assert port["containerPort"] == 13000
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], 13000)
    proxy_env = {e["name"]: e for e in proxy["env"]}
    assert proxy_env["HPO_STORAGE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "hpo-storage"
    [secret] = list(yaml.safe_load_all((DOCKER / "k8s" / "secret.example.yaml").read_text()))
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "hpo-storage"
    assert "url" in secret["stringData"]


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    lines = (DOCKER / "Dockerfile").read_text().splitlines()
    torch = next(i for i, line in enumerate(lines) if 'pip install "torch==' in line)
    project = next(i for i, line in enumerate(lines) if 'pip install ".[torch]"' in line)
    assert torch < project
    assert any("TORCH_INDEX=" in line and "/cpu" in line for line in lines)
