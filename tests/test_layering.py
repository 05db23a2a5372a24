"""Layers point down only (DESIGN.md): checked on the source and in fresh interpreters."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hashlearn"


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` in ``path`` names, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "defenses").rglob("*.py")), ids=lambda p: p.name)
def test_defenses_never_import_attacks(path):
    bad = sorted(name for name in imported_modules(path) if name == "hashlearn.attacks" or name.startswith("hashlearn.attacks."))
    assert not bad, f"{path.relative_to(SRC)} imports {bad}; shared helpers belong in hashlearn._validation"


def test_the_checker_sees_lazy_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from hashlearn.attacks.pgd import PGD\n    import hashlearn.attacks\n")
    assert imported_modules(sample) == {"hashlearn.attacks.pgd", "hashlearn.attacks"}


def test_no_matplotlib_backend_switch_in_library_code():
    """``matplotlib.use`` is the application's choice; library code draws on ``Figure`` objects."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use":
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "matplotlib":
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
        if "matplotlib.pyplot" in imported_modules(path):
            offenders.append(f"{path.relative_to(SRC)} imports matplotlib.pyplot")
    assert not offenders, offenders


def modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement",
    ["import hashlearn.defenses.spectral", "import hashlearn.defenses.activation_clustering", "from hashlearn.defenses import SpectralSignature"],
)
def test_poison_detectors_import_without_torch_or_attacks(statement):
    loaded = modules_after_import(statement)
    assert "torch" not in loaded
    assert not any(name.startswith("hashlearn.attacks") for name in loaded)


def test_the_subprocess_check_can_see_torch():
    assert "torch" in modules_after_import("import hashlearn.defenses.adversarial_training")


def test_plotting_in_library_code_leaves_the_pyplot_backend_alone():
    code = (
        "import matplotlib; before = matplotlib.get_backend();"
        "from hashlearn.eval import plots; plots.figure_to_png(plots.pr_curve_figure({'a': {'precision': [1, .5], 'recall': [.2, 1]}}));"
        "import sys; print(before == matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "svg"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
