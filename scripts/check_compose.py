"""Checks docker-compose.yml by parsing it: no Docker engine runs in CI."""
import subprocess
import sys

try:
    import yaml
except ImportError:  # a fresh machine may lack PyYAML
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyyaml"], check=True)
    import yaml

path = sys.argv[1] if len(sys.argv) > 1 else "docker-compose.yml"
with open(path) as f:
    compose = yaml.safe_load(f)

services = compose.get("services", {})
required = {"postgres", "kafka", "minio", "minio-init", "migrate", "job", "nightly", "ingest"}
missing = required - services.keys()
assert not missing, f"services missing: {sorted(missing)}"
for name, service in services.items():
    assert "image" in service or "build" in service, f"{name}: needs image or build"
    for dep in service.get("depends_on", {}):
        assert dep in services, f"{name} depends on unknown service {dep}"
for name in ("postgres", "kafka", "minio"):
    assert "healthcheck" in services[name], f"{name}: needs a healthcheck"
env = services["migrate"]["environment"]
assert env["SR_CATALOG__URL"].startswith("postgres://"), "migrate must use PostgreSQL"
for name in ("job", "nightly"):
    pipeline = services[name]["command"][-1]
    with open(pipeline) as f:  # the pipeline file a service runs must exist
        f.read()
command = services["ingest"]["command"]
assert command[0] == "ingest", "the ingest service runs the consumer group"
with open(command[command.index("--config") + 1]) as f:
    f.read()
print(f"{path}: {len(services)} services OK")
