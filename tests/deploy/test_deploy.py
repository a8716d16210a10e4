"""deploy/ checked without Docker or a cluster: files parse, fields exist, commands are real.

Every command a deployment runs (compose, Kubernetes, systemd, the image's
entrypoint) is parsed by ``scanner.cli.build_parser()``, so renaming a
command or a flag breaks these tests, not a production rollout.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanner.cli import build_parser
from scanner.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
SETTING_VARIABLES = {PREFIX + f.name.upper() for f in fields(Settings)}
VARIABLE = re.compile(r"\bCORS_SCANNER_[A-Z0-9_]+\b")


def assert_real_command(argv: list[str]) -> None:
    """``argv`` (after ``cors-scanner``) is a command the CLI accepts, down to its flags."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"cors-scanner {' '.join(argv)}: not a valid command") from exc
    assert getattr(args, "handler", None) is not None, argv


def cors_scanner_invocations(shell: str) -> list[list[str]]:
    """The argument lists of every ``cors-scanner`` call in a shell snippet."""
    calls = []
    for part in re.split(r"[;&|]+|\bdo\b|\bdone\b|\buntil\b|\bwhile\b", shell):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if Path(word).name == "cors-scanner":
                calls.append(words[i + 1 :])
    return calls


def assert_known_variables(names: object, where: str) -> None:
    unknown = sorted({n for n in VARIABLE.findall(str(names))} - SETTING_VARIABLES)
    assert unknown == [], f"{where} sets variables that are not settings: {unknown}"


# -- docker compose -----------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_has_postgres_migrations_serve_and_two_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "migrate", "serve", "worker"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    # Migrations run once, after PostgreSQL is up, and before anything else.
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("serve", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
    assert services["postgres"]["healthcheck"]["test"]
    assert "8080" in services["serve"]["ports"][0]
    # One API + scheduler that scans nothing itself; the workers do all the scanning.
    assert services["serve"]["command"] == ["serve", "--no-worker"]
    assert services["worker"]["command"] == ["worker"]
    # A worker has no HTTP listener: the image's /healthz check must not apply.
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_compose_runs_real_commands_with_real_settings(compose: dict[str, Any]) -> None:
    scanner_services = {n: s for n, s in compose["services"].items() if n != "postgres"}
    for name, service in scanner_services.items():
        assert service["image"], name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert_real_command(service["command"])
        env = service["environment"]
        assert_known_variables(list(env), f"compose service {name}")
        url = env["CORS_SCANNER_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://"), name
        assert "@postgres:5432/" in url, name
        assert "${POSTGRES_PASSWORD" in url, "the password comes from the environment"
        # Docker's default soft limit (1024) is what 1100 slow clients exhaust (issue 13).
        assert service["ulimits"]["nofile"]["soft"] >= 65536, name
    assert compose["services"]["serve"]["environment"]["CORS_SCANNER_HOST"] == "0.0.0.0"


# -- Kubernetes ------------------------------------------------------------------


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


WORKLOADS = ("Deployment", "Job")


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    return document["spec"]["template"]["spec"]


def test_every_manifest_has_the_fields_kubernetes_requires() -> None:
    documents = k8s_documents()
    kinds = sorted(d["kind"] for _, d in documents)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Job", "Secret", "Service"]
    names = set()
    for filename, document in documents:
        where = f"{filename}: {document.get('kind')}"
        assert isinstance(document.get("apiVersion"), str), where
        assert isinstance(document.get("kind"), str), where
        name = document["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), where
        names.add((document["kind"], name))
        if document["kind"] in ("ConfigMap", "Secret"):
            assert document.get("data") or document.get("stringData"), where
            continue
        assert isinstance(document.get("spec"), dict), where
        if document["kind"] == "Deployment":
            assert document["apiVersion"] == "apps/v1"
            selector = document["spec"]["selector"]["matchLabels"]
            labels = document["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{where}: selector must match the pods"
        if document["kind"] == "Job":
            assert document["apiVersion"] == "batch/v1"
            assert pod_spec(document)["restartPolicy"] in ("Never", "OnFailure")
        if document["kind"] == "Service":
            assert document["spec"]["selector"]
            assert document["spec"]["ports"]
    assert len(names) == len(documents), "names are unique per kind"


def test_containers_have_images_probes_real_commands_and_no_root() -> None:
    documents = dict(((d["kind"], d["metadata"]["name"]), d) for _, d in k8s_documents())
    config_names = {n for (k, n) in documents if k in ("ConfigMap", "Secret")}
    for (kind, name), document in documents.items():
        if kind not in WORKLOADS:
            continue
        spec = pod_spec(document)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            assert container["image"], where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                assert ref["name"] in config_names, where
            if "args" in container:
                assert "command" not in container, "args go to the image's cors-scanner entrypoint"
                assert_real_command(container["args"])
            else:
                calls = cors_scanner_invocations(" ".join(container["command"]))
                assert calls, where
                for call in calls:
                    assert_real_command(call)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if "exec" in container.get(probe, {}):
                    command = container[probe]["exec"]["command"]
                    assert command[0] == "cors-scanner", where
                    assert_real_command(command[1:])

    api = pod_spec(documents[("Deployment", "cors-scanner-api")])["containers"][0]
    # The API pod plans runs, the worker pods execute them.
    assert api["args"] == ["serve", "--no-worker"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["ports"][0]["containerPort"] == 8080
    worker = pod_spec(documents[("Deployment", "cors-scanner-worker")])["containers"][0]
    assert worker["args"] == ["worker"]
    assert worker["livenessProbe"]
    assert worker["readinessProbe"]
    job = pod_spec(documents[("Job", "cors-scanner-migrate")])["containers"][0]
    assert job["args"] == ["db", "upgrade"]


def test_configmap_and_secret_set_only_real_settings() -> None:
    documents = {d["kind"]: d for _, d in k8s_documents() if d["kind"] in ("ConfigMap", "Secret")}
    config = documents["ConfigMap"]["data"]
    secret = documents["Secret"]["stringData"]
    assert set(config) <= SETTING_VARIABLES
    assert set(secret) <= SETTING_VARIABLES
    assert "CORS_SCANNER_DATABASE_URL" in secret
    assert "CORS_SCANNER_DATABASE_URL" not in config, "the URL holds a password"
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values are strings"
    assert Settings.from_env(config).host == "0.0.0.0", "the values parse as settings"


# -- systemd ----------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as {section: {key: [values]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNITS = sorted(SYSTEMD.glob("*.service"))


def test_the_units_cover_migrations_serve_and_workers() -> None:
    assert [u.name for u in UNITS] == [
        "cors-scanner-migrate.service",
        "cors-scanner-worker@.service",
        "cors-scanner.service",
    ]
    migrate = read_unit(SYSTEMD / "cors-scanner-migrate.service")
    assert migrate["Service"]["Type"] == ["oneshot"]
    for name in ("cors-scanner.service", "cors-scanner-worker@.service"):
        unit = read_unit(SYSTEMD / name)
        assert "cors-scanner-migrate.service" in " ".join(unit["Unit"]["Requires"]), name
        assert "cors-scanner-migrate.service" in " ".join(unit["Unit"]["After"]), name
        assert unit["Service"]["Restart"] == ["on-failure"], name
        # The distribution default (1024) is what 1100 slow clients exhaust (issue 13).
        assert int(unit["Service"]["LimitNOFILE"][0]) >= 65536, name
    serve = read_unit(SYSTEMD / "cors-scanner.service")
    assert serve["Service"]["ExecStart"][0].split()[1:] == ["serve", "--no-worker"]
    # Without a worker of its own, serve brings up at least one worker unit.
    assert "cors-scanner-worker@1.service" in serve["Unit"]["Wants"]


@pytest.mark.parametrize("unit_path", UNITS, ids=[u.name for u in UNITS])
def test_units_run_real_commands_as_an_unprivileged_user(unit_path: Path) -> None:
    unit = read_unit(unit_path)
    assert unit["Unit"]["Description"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    service = unit["Service"]
    assert service["User"] == ["cors-scanner"], "never root"
    assert service["NoNewPrivileges"] == ["yes"]
    [exec_start] = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/"), "systemd needs an absolute path"
    assert Path(argv[0]).name == "cors-scanner"
    assert_real_command(argv[1:])
    assert service["EnvironmentFile"] == ["/etc/cors-scanner/cors-scanner.env"]


def test_the_example_environment_file_sets_only_real_settings() -> None:
    lines = [
        line
        for line in (SYSTEMD / "cors-scanner.env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = {line.partition("=")[0] for line in lines}
    assert names <= SETTING_VARIABLES
    assert "CORS_SCANNER_DATABASE_URL" in names
    values = dict(line.split("=", 1) for line in lines)
    assert Settings.from_env(values).log_format == "json"


# -- the image ---------------------------------------------------------------------


def test_the_dockerfile_is_multi_stage_non_root_with_a_health_check_and_migrations() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [
        line for line in text.replace("\\\n", " ").splitlines() if line and line[0] not in "# "
    ]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert len(stages) == 2
    assert stages[0].endswith(" AS build")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in instructions
    final = instructions[instructions.index(stages[1]) :]
    assert any(line.startswith("COPY --from=build ") for line in final), "wheels from the build"
    [user] = [line for line in final if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    [health] = [line for line in final if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in health
    assert "urllib.request" in health, "python:slim has no curl"
    build = instructions[: instructions.index(stages[1])]
    assert any(line.startswith("COPY migrations ") for line in build), "the wheel carries them"
    assert not any("migrations" in line for line in final if line.startswith("COPY ")), (
        "no copy step: the migrations come inside the wheel"
    )
    assert "alembic_config()" in text, "the build fails if the migrations are not found"
    [entrypoint] = [line for line in final if line.startswith("ENTRYPOINT ")]
    assert entrypoint == 'ENTRYPOINT ["cors-scanner"]'
    [cmd] = [line for line in final if line.startswith("CMD ")]
    assert_real_command(yaml.safe_load(cmd.removeprefix("CMD ")))
    for line in final:
        if line.startswith("ENV "):
            assert_known_variables(line, "Dockerfile ENV")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {"!scanner", "!migrations", "!pyproject.toml"} <= set(ignore)
