"""The order service's deployment files, checked without Docker or Kubernetes: they parse, every
file, module and command they name exists, the probes are the application's URLs and untraced,
and every environment variable they set is one that djtrace or the application reads. uWSGI
and uvicorn, which are installed, are also run on the example for real."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml  # noqa: E402 - requirements/test.txt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_service"
DEPLOY = EXAMPLE / "deploy"
K8S = DEPLOY / "k8s"
SRC = ROOT / "src" / "djtrace"
PROBES = ("/health/", "/readiness/", "/liveness/")

if str(EXAMPLE) not in sys.path:
    sys.path.append(str(EXAMPLE))  # the example's helper modules, after everything else
from supervise import free_port  # noqa: E402


def load_yaml_documents(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_documents() -> list:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in load_yaml_documents(path)]
    return docs


def k8s_containers() -> list:
    out = []
    for name, doc in k8s_documents():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec")
        if pod:
            out += [(name, doc, c) for c in pod.get("containers", [])]
    return out


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def django_facts(var: Path) -> dict:
    """What the example's Django project says about itself, asked in a subprocess (this test
    process must not set Django up)."""
    code = f"""
import json, re
import django
django.setup()
from django.conf import settings
from django.urls import resolve, Resolver404
from django.core.management import get_commands
paths = {PROBES!r}
probes = {{}}
for path in paths:
    try:
        probes[path] = resolve(path).url_name
    except Resolver404:
        probes[path] = None
excluded = settings.DJTRACE.get("excluded_urls", [])
pattern = re.compile("|".join(excluded)) if excluded else None
print(json.dumps({{
    "probes": probes,
    "excluded": {{p: bool(pattern and pattern.search("http://127.0.0.1:8000" + p)) for p in paths}},
    "traced_example": bool(pattern and pattern.search("http://127.0.0.1:8000/api/orders/")),
    "commands": sorted(get_commands()),
}}))
"""
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE), "DJANGO_SETTINGS_MODULE":
           "order_service.settings", "OTEL_SDK_DISABLED": "true",
           "ORDER_SERVICE_VAR": str(var)}
    result = subprocess.run([sys.executable, "-c", code], cwd=EXAMPLE, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    return django_facts(tmp_path_factory.mktemp("order-service-facts"))


# -- parsing ----------------------------------------------------------------------------------

def test_yaml_files_parse():
    paths = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert {p.name for p in paths} >= {"docker-compose.yml", "otel-collector-config.yaml",
                                       "deployment.yaml", "service.yaml", "secrets.yaml"}
    for path in paths:
        assert load_yaml_documents(path), f"{path} is empty"


def test_kubernetes_documents_are_well_formed():
    kinds = set()
    for name, doc in k8s_documents():
        assert doc.get("apiVersion") and doc.get("kind"), f"{name}: no apiVersion or kind"
        assert doc.get("metadata", {}).get("name"), f"{name}: a {doc['kind']} without a name"
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "Secret", "ConfigMap", "Job"} <= kinds


def test_uwsgi_ini_parses_and_names_an_importable_module(tmp_path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(DEPLOY / "uwsgi.ini")
    section = parser["uwsgi"]
    chdir = Path(section["chdir"].replace("%d", str(DEPLOY) + "/")).resolve()
    assert chdir == EXAMPLE
    module, _, attribute = section["module"].partition(":")
    assert (chdir / (module.replace(".", "/") + ".py")).is_file()
    assert attribute == "application"
    env = {**os.environ, "PYTHONPATH": str(chdir), "OTEL_SDK_DISABLED": "true",
           "DJANGO_SETTINGS_MODULE": "order_service.settings",
           "ORDER_SERVICE_VAR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", f"import {module}; {module}.{attribute}"],
                            cwd=chdir, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- files, modules and commands -------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def check_command(argv: list[str], facts: dict) -> None:
    """The program and what it names exist in the image (the example's directory is /app)."""
    program = argv[0]
    if program == "gunicorn":
        module = argv[1].partition(":")[0]
        assert (EXAMPLE / (module.replace(".", "/") + ".py")).is_file(), argv
        if "--config" in argv:
            assert (EXAMPLE / argv[argv.index("--config") + 1]).is_file(), argv
    elif program == "celery":
        assert argv[1] == "-A" and (EXAMPLE / argv[2] / "celery.py").is_file(), argv
        assert argv[3] in ("worker", "beat"), argv
    elif program == "python":
        if argv[1] == "manage.py":
            assert argv[2] in facts["commands"], f"no management command {argv[2]!r}"
        else:
            assert (EXAMPLE / argv[1]).is_file(), argv
    else:
        pytest.fail(f"unexpected program {program!r} in {argv}")


def test_dockerfile_copies_existing_files_and_runs_the_app(facts):
    instructions = dockerfile_instructions()
    stages = [rest.split()[-1] for kw, rest in instructions if kw == "FROM" and " AS " in rest]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    copied = []  # from the build context, each landing at its repository path under WORKDIR
    for keyword, rest in instructions:
        if keyword != "COPY":
            continue
        args = shlex.split(rest)
        sources = [a for a in args[:-1] if not a.startswith("--")]
        stage = next((a.split("=", 1)[1] for a in args if a.startswith("--from=")), None)
        if stage is not None:
            assert stage in stages, f"COPY --from={stage}: no such stage"
            continue
        for source in sources:
            copied.append(source.rstrip("/"))
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            assert any(source.rstrip("/") == k or source.startswith(k + "/") for k in kept), \
                f"COPY {source}: excluded by Dockerfile.dockerignore"
    assert len(copied) >= 5
    # A script the build runs must have been copied in.
    for keyword, rest in instructions:
        for script in re.findall(r"\bbash\s+(\S+)", rest) if keyword == "RUN" else []:
            assert any(script == c or script.startswith(c + "/") for c in copied), \
                f"RUN bash {script}: not copied into the image"
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    cmd = json.loads(next(rest for kw, rest in reversed(instructions) if kw == "CMD"))
    check_command(cmd, facts)


def test_compose_builds_from_the_repository_and_runs_existing_commands(facts):
    spec = compose()
    services = spec["services"]
    assert {"app", "worker", "beat", "postgres", "redis", "otel-collector"} <= set(services)
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, f"{name}: build context {context}"
            assert (context / build["dockerfile"]).is_file()
        if service.get("image", "").startswith("django-order-service") and "command" in service:
            check_command(service["command"], facts)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: no {source}"
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "order_service", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "order_service", "beat"]


def test_collector_pipeline_batches_and_redacts():
    config = yaml.safe_load((DEPLOY / "otel-collector-config.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    for section in ("receivers", "processors", "exporters"):
        for name in pipeline[section]:
            assert name in config[section], f"{section}: {name} is not defined"
    processors = pipeline["processors"]
    assert processors[0] == "memory_limiter" and processors[-1] == "batch"
    redact = config["processors"]["attributes/redact"]["actions"]
    assert {"key": "http.request.header.authorization", "action": "delete"} in redact
    assert any(a["action"] == "hash" for a in redact)
    assert "attributes/redact" in processors and "transform/redact" in processors
    statements = config["processors"]["transform/redact"]["trace_statements"][0]["statements"]
    assert any("@" in s for s in statements), "e-mail addresses are not redacted"
    # The collector's ${env:...} variables are given to it by the compose file.
    used = set(re.findall(r"\$\{env:([A-Z0-9_]+)\}",
                          (DEPLOY / "otel-collector-config.yaml").read_text()))
    assert used <= set(compose()["services"]["otel-collector"]["environment"])


def test_kubernetes_probes_are_the_health_urls_and_untraced(facts):
    assert all(facts["probes"][p] for p in PROBES), facts["probes"]
    assert all(facts["excluded"].values()), f"probes not excluded from tracing: {facts}"
    assert not facts["traced_example"], "the exclusion patterns also exclude the API"
    probes = {}
    for _, _, container in k8s_containers():
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(kind)
            if probe:
                probes[kind] = probe["httpGet"]["path"]
                port = probe["httpGet"]["port"]
                names = [p.get("name") for p in container.get("ports", [])]
                numbers = [p.get("containerPort") for p in container.get("ports", [])]
                assert port in names or port in numbers, f"{kind} port {port}"
    assert probes == {"livenessProbe": "/liveness/", "readinessProbe": "/readiness/",
                      "startupProbe": "/health/"}


def test_kubernetes_references_resolve(facts):
    docs = k8s_documents()
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {}) | d.get("data", {}))
               for _, d in docs if d["kind"] == "Secret"}
    config_maps = {d["metadata"]["name"] for _, d in docs if d["kind"] == "ConfigMap"}
    assert "order-service-otlp" in secrets and "order-service-db" in secrets
    for name, _, container in k8s_containers():
        check_command(container["command"], facts)
        assert container["image"] == "django-order-service:latest"
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in config_maps
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets.get(ref["name"], ()), f"{name}: {ref}"
    deployments = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Deployment"}
    service = next(d for _, d in docs if d["kind"] == "Service")
    web = deployments["django-order-service"]
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"][
        "labels"].items()
    assert deployments["django-celery-beat"]["spec"]["replicas"] == 1
    # The OTLP API key reaches the exporter as a header.
    web_env = {v["name"]: v for v in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert web_env["OTLP_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "order-service-otlp"
    assert "$(OTLP_API_KEY)" in web_env["OTEL_EXPORTER_OTLP_HEADERS"]["value"]


# -- environment variables --------------------------------------------------------------------

def djtrace_source() -> str:
    return "\n".join(p.read_text() for p in SRC.rglob("*.py"))


def application_reads() -> set[str]:
    names = set()
    for path in list(EXAMPLE.rglob("*.py")):
        if "var" in path.relative_to(EXAMPLE).parts:
            continue
        names |= set(re.findall(r"os\.(?:getenv|environ\.get|environ)\s*[\(\[]\s*\"([A-Z0-9_]+)\"",
                                path.read_text()))
    return names


def variables_set_by_deployment_files() -> dict[str, set[str]]:
    """Variable names each deployment file gives the application's processes."""
    found: dict[str, set[str]] = {}
    spec = compose()
    for service in spec["services"].values():
        if service.get("image", "").startswith("django-order-service"):
            found.setdefault("docker-compose.yml", set()).update(service.get("environment", {}))
    for name, _, container in k8s_containers():
        found.setdefault(name, set()).update(v["name"] for v in container.get("env", []))
    for name, doc in k8s_documents():
        if doc["kind"] == "ConfigMap":
            found.setdefault(name, set()).update(doc["data"])
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            found.setdefault("Dockerfile", set()).update(
                m.group(1) for m in re.finditer(r"([A-Z0-9_]+)=", rest))
    uwsgi = (DEPLOY / "uwsgi.ini").read_text()
    found["uwsgi.ini"] = set(re.findall(r"^env\s*=\s*([A-Z0-9_]+)=", uwsgi, re.M))
    for script in ("demo.py", "fullstack.py"):  # the keys of the environments they build
        found[script] = set(re.findall(r"\"((?:OTEL|DJTRACE)_[A-Z0-9_]+)\":",
                                       (EXAMPLE / script).read_text()))
    return found


# Read by the servers themselves, not by Python code: Django's and Gunicorn's own.
SERVER_VARIABLES = {"DJANGO_SETTINGS_MODULE", "PYTHONUNBUFFERED"}
# Only used to build another variable's value (Kubernetes $(NAME) expansion).
K8S_EXPANSION_ONLY = {"K8S_NAMESPACE", "K8S_POD_NAME", "OTLP_API_KEY"}


def test_environment_variables_are_read_by_djtrace_or_the_application():
    source = djtrace_source()
    app = application_reads()
    unknown = []
    for where, names in variables_set_by_deployment_files().items():
        for name in sorted(names):
            if name.startswith(("OTEL_", "DJTRACE_")):
                if not re.search(rf"\b{name}\b", source):
                    unknown.append(f"{where}: {name} (djtrace does not read it)")
            elif name not in app | SERVER_VARIABLES | K8S_EXPANSION_ONLY:
                unknown.append(f"{where}: {name} (the application does not read it)")
    assert not unknown, "\n".join(unknown)


def test_djtrace_variables_in_deployment_files_are_known_to_its_configuration():
    # Stricter than a text search: the names the SDK's configuration maps.
    from djtrace import config

    mapped = set(re.findall(r"\"((?:OTEL|DJTRACE)_[A-Z0-9_]+)\"",
                            Path(config.__file__).read_text()))
    core = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"}
    used = set().union(*variables_set_by_deployment_files().values())
    assert core & used <= mapped, core & used - mapped


# -- the other servers, for real ---------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded_var(tmp_path_factory):
    var = tmp_path_factory.mktemp("order-service-var")
    env = embedded_env(var, exporter="none")
    for args in (["migrate", "--no-input", "-v", "0"], ["seed_orders", "--reset"]):
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    return var


def embedded_env(var: Path, exporter: str = "file") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJTRACE_"))}
    env.update({"PYTHONPATH": str(EXAMPLE), "DJANGO_SETTINGS_MODULE": "order_service.settings",
                "ORDER_SERVICE_STACK": "embedded", "ORDER_SERVICE_VAR": str(var),
                "OTEL_TRACES_EXPORTER": exporter, "DJTRACE_FILE_PATH": str(var / "traces.jsonl"),
                "OTEL_BSP_SCHEDULE_DELAY": "100", "ALLOWED_HOSTS": "127.0.0.1"})
    return env


def serve_and_get(argv: list[str], env: dict, port: int, paths: list[str], log: Path) -> None:
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=EXAMPLE, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness/", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        for path in paths:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                assert r.status == 200
        time.sleep(0.5)  # one export period and a little more
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def exported_span_names(var: Path) -> list[str]:
    path = var / "traces.jsonl"
    text = path.read_text() if path.exists() else ""
    return re.findall(r'"name":"([^"]+)","kind"', text)


def test_uwsgi_serves_the_example_with_the_shipped_ini(embedded_var):
    uwsgi = Path(sys.executable).with_name("uwsgi")
    assert uwsgi.exists(), "uWSGI is installed by scripts/bootstrap.sh (requirements/test.txt)"
    (embedded_var / "traces.jsonl").unlink(missing_ok=True)
    port = free_port()
    serve_and_get([str(uwsgi), "--ini", str(DEPLOY / "uwsgi.ini"), "--http-socket",
                   f"127.0.0.1:{port}", "--processes", "2"], embedded_env(embedded_var), port,
                  ["/orders/html/"], embedded_var / "uwsgi.log")
    names = exported_span_names(embedded_var)
    assert "GET orders/html/" in names, names
    assert "render orders/list.html" in names
    assert not [n for n in names if "liveness" in n]


def test_uvicorn_serves_the_asgi_application(embedded_var):
    (embedded_var / "traces.jsonl").unlink(missing_ok=True)
    port = free_port()
    serve_and_get([sys.executable, "-m", "uvicorn", "order_service.asgi:application",
                   "--host", "127.0.0.1", "--port", str(port)], embedded_env(embedded_var), port,
                  ["/orders/html/1/"], embedded_var / "uvicorn.log")
    names = exported_span_names(embedded_var)
    assert "GET orders/html/<int:order_id>/" in names, names
    assert {"render orders/detail.html", "render orders/includes/order_summary.html",
            "render orders/includes/order_items.html"} <= set(names)
