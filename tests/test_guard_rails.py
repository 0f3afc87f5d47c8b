"""Guard rails for the suite's own Odoo code: no raw threads, no unexplained sudo()."""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

ADDONS = Path(__file__).resolve().parent.parent / "addons"

THREAD_RE = re.compile(r"\bthreading\.Thread\(|(?<![\w.])Thread\(")
SUDO_RE = re.compile(r"\.sudo\(")


def _python_files() -> list[Path]:
    return sorted(ADDONS.rglob("*.py"))


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
    return ["%s:%d" % (path, n) for path in paths for n, (code, _c) in _code_lines(path).items() if THREAD_RE.search(code)]


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


def test_no_raw_thread_in_the_addons():
    assert find_threads(_python_files()) == []


def test_every_sudo_in_the_addons_says_why():
    assert find_unjustified_sudo(_python_files()) == []


def test_the_detectors_catch_what_they_must(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import threading\n"
        "threading.Thread(target=print).start()\n"
        "records.sudo().write({})\n"
        "records.sudo().unlink()  # portal users may delete their own drafts\n"
        "text = 'records.sudo() in a string'  # strings are not calls\n"
        "# threading.Thread( in a comment is not a call either\n"
    )
    assert find_threads([bad]) == ["%s:2" % bad]
    assert find_unjustified_sudo([bad]) == ["%s:3" % bad]
