"""docker-compose.yml, alone and with docker-compose.pgbouncer.yml on top, cannot be run here (no
Docker engine): check they parse and are whole."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# What operators start: `docker compose -f <each file> ... up -d`.
STACKS = {
    "plain": ["docker-compose.yml"],
    "pgbouncer": ["docker-compose.yml", "docker-compose.pgbouncer.yml"],
}
POOLER = "pgbouncer"  # the pooler's service name


def _merged(base: dict, override: dict) -> dict:
    """Compose's merge of a later file into an earlier one, for what these files use: mappings
    merge key by key, anything else the later file gives replaces the earlier value."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _compose(stack: str = "plain") -> dict:
    compose: dict = {}
    for name in STACKS[stack]:
        compose = _merged(compose, yaml.safe_load((ROOT / name).read_text()))
    return compose


@pytest.mark.parametrize("stack", STACKS)
def test_compose_has_the_stack_with_health_checks_and_restart_policies(stack):
    services = _compose(stack)["services"]
    assert {"db", "redis", "rabbitmq", "odoo", "relay"} <= set(services)
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert "healthcheck" in service, name
    assert services["odoo"]["build"]["dockerfile"] == "docker/odoo.Dockerfile"
    assert "FROM odoo:18.0" in (ROOT / "docker/odoo.Dockerfile").read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_every_file_the_compose_file_references_exists(stack):
    compose = _compose(stack)
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), name
            dockerfile = context / build["dockerfile"]
            assert dockerfile.is_file(), "%s: %s" % (name, dockerfile)
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (context / source).exists(), "%s: COPY %s" % (name, source)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), "%s: volume %s" % (name, source)
            else:
                assert source in compose["volumes"], "%s: named volume %s" % (name, source)
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], "%s depends on %s" % (name, dependency)


def test_daemon_services_run_console_scripts_the_package_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if command and str(command[0]).startswith("zero-sudo-"):
            assert '%s = "' % command[0] in pyproject, name


def test_odoo_conf_loads_the_server_wide_module_and_names_the_section():
    conf = (ROOT / "odoo.conf").read_text()
    assert "server_wide_modules = base,web,zero_sudo" in conf
    assert "[zero_sudo]" in conf


def test_with_pgbouncer_odoo_goes_through_the_pooler_and_the_daemons_never_do():
    """Odoo's database address is the image's HOST and PORT (odoo.conf leaves db_host and db_port
    out, or they would win); the pooler forwards to the db service; every daemon, the relay
    first, keeps PostgreSQL itself."""
    assert _compose("plain")["services"]["odoo"]["environment"]["HOST"] == "db"
    conf = (ROOT / "odoo.conf").read_text()
    assert not any(line.split("=")[0].strip() in ("db_host", "db_port") for line in conf.splitlines() if "=" in line)

    services = _compose("pgbouncer")["services"]
    odoo = services["odoo"]
    assert (odoo["environment"]["HOST"], odoo["environment"]["PORT"]) == (POOLER, "6432")
    assert POOLER in odoo["depends_on"]
    assert "listen_port = 6432" in (ROOT / "docker/pgbouncer.ini").read_text()
    assert "* = host=db port=5432" in (ROOT / "docker/pgbouncer.ini").read_text()
    daemons = {name: s for name, s in services.items() if str((s.get("command") or [""])[0]).startswith("zero-sudo-")}
    assert "relay" in daemons
    for name, daemon in daemons.items():
        assert daemon["environment"]["ZERO_SUDO_DB_HOST"] == "db", name
        assert daemon["environment"].get("ZERO_SUDO_DB_PORT", "5432") == "5432", name
