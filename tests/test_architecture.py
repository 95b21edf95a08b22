"""The house rules of docs/architecture.md that a reader cannot see at a glance: imports run one
way (import-linter's contracts, run here too so the suite alone catches a break), no import of
another app hides inside a function to dodge that rule, and template tags only format (no
database or AWS reads: the views put the figures in the context)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "customers", "usage", "billing", "portal")
FIRST_PARTY = {*APPS, "proxy"}


def _python_files(*packages):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_the_layer_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


def _function_imports(path: Path):
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield function.name, node.module, node.lineno
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield function.name, alias.name, node.lineno


def test_no_import_of_another_app_hides_in_a_function():
    """Such imports dodged import cycles between the apps; with imports running one way they
    sit at the top of the module. AppConfig.ready() is where Django wants them (the apps hand
    each other their hooks there)."""
    hidden = []
    for path in _python_files(*APPS):
        package = path.relative_to(ROOT).parts[0]
        for function, module, line in _function_imports(path):
            top = module.split(".")[0]
            if top in FIRST_PARTY and top != package and function != "ready":
                hidden.append(f"{path.relative_to(ROOT)}:{line} {function}() imports {module}")
    assert hidden == []


# Modules a template tag must not reach: they read the database or AWS.
READS = ("models", "selectors", "services", "counters", "aws", "live", "anomalies", "payments")


def _reads(source: str) -> list[str]:
    reads = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [a.name for a in node.names]
            if any(part in READS for name in names for part in name.split(".")):
                reads.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''}")
        elif isinstance(node, ast.Attribute) and node.attr == "objects":
            reads.append(f"line {node.lineno}: .objects")
    return reads


@pytest.mark.parametrize(
    "path",
    [p for p in _python_files(*APPS) if "templatetags" in p.parts and p.name != "__init__.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_template_tags_only_format(path):
    assert _reads(path.read_text()) == []


def test_the_rule_catches_a_reading_tag():
    """The check above can fail: a tag module that reads is caught, line by line."""
    source = "from .. import selectors\nfrom ..models import Alert\nx = Alert.objects.all()\n"
    assert _reads(source) == [
        "line 1: from ..",
        "line 2: from ..models",
        "line 3: .objects",
    ]
