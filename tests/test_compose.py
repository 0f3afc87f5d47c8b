"""docker-compose.yml cannot be run here (no Docker engine): check it parses and is whole."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_stack_with_health_checks_and_restart_policies():
    services = _compose()["services"]
    assert {"db", "redis", "rabbitmq", "odoo", "relay"} <= set(services)
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert "healthcheck" in service, name
    assert services["odoo"]["build"]["dockerfile"] == "docker/odoo.Dockerfile"
    assert "FROM odoo:18.0" in (ROOT / "docker/odoo.Dockerfile").read_text()


def test_every_file_the_compose_file_references_exists():
    compose = _compose()
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
