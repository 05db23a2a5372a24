"""Layers point down: methods never import train (the deep-method helpers live in hashlearn.runs)."""

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m for m in sys.modules if m.startswith('hashlearn'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_methods_do_not_import_train_or_runs():
    loaded = _loaded_after("import hashlearn.methods")
    assert not any(name.startswith(("hashlearn.train", "hashlearn.runs")) for name in loaded), sorted(loaded)



def test_the_command_line_help_does_not_load_torch():
    loaded = _loaded_after("from hashlearn.cli.main import build_parser; build_parser().format_help(); import hashlearn.runs")
    out = subprocess.run([sys.executable, "-c", "import sys; from hashlearn.cli.main import build_parser; build_parser(); "
                          "import hashlearn.runs; print('torch' in sys.modules)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False" and "hashlearn.runs.config" in loaded
