"""The proxy package runs in Lambda with boto3 only: no Django, no portal app, nothing else."""

import ast
import subprocess
import sys
from pathlib import Path

PROXY = Path(__file__).resolve().parents[2] / "proxy"
ALLOWED = set(sys.stdlib_module_names) | {"boto3", "botocore", "proxy"}
# The local runner's TLS certificate (python -m proxy.local); the handler never imports it.
LOCAL_ONLY = {"local_tls.py": {"cryptography"}}


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes inside `if TYPE_CHECKING:` blocks: read by the type checker, never run."""
    hidden: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test).split("."):
            hidden.update(inner for child in node.body for inner in ast.walk(child))
    return hidden


def test_every_import_is_stdlib_boto3_or_the_package_itself():
    outside = {}
    for path in sorted(PROXY.glob("*.py")):
        tree = ast.parse(path.read_text())
        typing_only = _type_checking_only(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if node in typing_only and top.startswith("mypy_boto3_"):
                    continue  # boto3's type stubs, imported for the type checker only
                if top not in ALLOWED and top not in LOCAL_ONLY.get(path.name, ()):
                    outside.setdefault(path.name, []).append(name)
    assert outside == {}


def test_importing_the_handler_or_the_price_reader_loads_no_portal_module_nor_cryptography():
    code = (
        "import sys, proxy.handler, proxy.local, proxy.runtime, proxy.prices; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'core', 'portal', 'customers', 'usage', 'billing', 'rest_framework', 'celery', "
        "'cryptography'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROXY.parent,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
