"""Guard rails for the code Odoo runs (the addons and the shared library): no unbounded
threads, no unexplained sudo(), no daemon code, none of the daemons' runtime in Odoo's image."""

from __future__ import annotations

import re
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDONS = ROOT / "addons"
SHARED = ROOT / "shared"

THREAD_RE = re.compile(r"\bthreading\.Thread\(|(?<![\w.])Thread\(")
SUDO_RE = re.compile(r"\.sudo\(")
# A thread in code Odoo runs must say on its line what bounds it ("# bounded: one per process").
THREAD_BOUND = "bounded:"
DAEMONS_RUNTIME = {"uvloop", "websockets", "aio-pika", "aiohttp", "prometheus-client"}


def _python_files() -> list[Path]:
    return sorted(ADDONS.rglob("*.py"))


def _odoo_runtime_files() -> list[Path]:
    """What Odoo processes import: the addons and the shared library, their tests aside."""
    return [path for path in sorted([*ADDONS.rglob("*.py"), *SHARED.rglob("*.py")]) if "tests" not in path.parts]


def _code_lines(path: Path) -> dict[int, tuple[str, str]]:
    """line number -> (code without comments and strings, the line's comment)."""
    lines: dict[int, tuple[str, str]] = {}
    with tokenize.open(path) as handle:
        for token in tokenize.generate_tokens(handle.readline):
            if token.type in (tokenize.STRING, tokenize.NL, tokenize.NEWLINE):
                continue
            code, comment = lines.get(token.start[0], ("", ""))
            if token.type == tokenize.COMMENT:
                comment = token.string
            else:
                code += token.string
            lines[token.start[0]] = (code, comment)
    return lines


def find_threads(paths: list[Path]) -> list[str]:
    """Every thread created without a ``# bounded: ...`` comment saying what bounds it."""
    return [
        "%s:%d" % (path, n)
        for path in paths
        for n, (code, comment) in _code_lines(path).items()
        if THREAD_RE.search(code) and THREAD_BOUND not in comment
    ]


def find_unjustified_sudo(paths: list[Path]) -> list[str]:
    """Every ``.sudo(`` call whose line carries no comment saying why."""
    return [
        "%s:%d" % (path, n)
        for path in paths
        for n, (code, comment) in _code_lines(path).items()
        if SUDO_RE.search(code) and len(comment.lstrip("# ").strip()) < 10
    ]


def test_the_addons_tree_exists():
    assert _python_files(), "no Python file under addons/: the guard rails would prove nothing"


def test_no_unbounded_thread_in_what_odoo_runs():
    assert find_threads(_odoo_runtime_files()) == []


def test_no_addon_mentions_daemon_code():
    mentions = ["%s" % path for path in _python_files() if "zero_sudo_daemons" in path.read_text(encoding="utf-8")]
    assert mentions == [], "addons may import the shared library (shared/), never the daemons"


def test_odoo_image_installs_none_of_the_daemons_runtime():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    odoo_side = [*project["dependencies"], *project["optional-dependencies"]["odoo"]]
    names = {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in odoo_side}
    assert names & DAEMONS_RUNTIME == set()
    dockerfile = (ROOT / "docker/odoo.Dockerfile").read_text()
    assert "[odoo]" in dockerfile and "COPY daemons" not in dockerfile


def test_every_sudo_in_the_addons_says_why():
    assert find_unjustified_sudo(_python_files()) == []


def test_the_detectors_catch_what_they_must(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import threading\n"
        "threading.Thread(target=print).start()\n"
        "threading.Thread(target=print)  # bounded: one per process\n"
        "records.sudo().write({})\n"
        "records.sudo().unlink()  # portal users may delete their own drafts\n"
        "text = 'records.sudo() in a string'  # strings are not calls\n"
        "# threading.Thread( in a comment is not a call either\n"
    )
    assert find_threads([bad]) == ["%s:2" % bad]
    assert find_unjustified_sudo([bad]) == ["%s:4" % bad]
