"""Property-based fuzzing of every loader (issue 12), the small-size version of benchmarks/fuzz.py.

For each file format, hypothesis draws mutations of a seed written by the real code path
(truncation, bit flips, overwritten or inserted bytes, hostile header fields, re-signed so
the checksums pass) and checks the one rule every loader keeps: it loads, or it raises
``CorruptFileError`` (content) or ``FileNotFoundError`` / ``PermissionError`` /
``IsADirectoryError`` (path) -- never anything else. ``benchmarks/fuzz.py`` runs the same
mutations 10,000 times per format under an address-space cap.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashlearn.errors import CorruptFileError

_SPEC = importlib.util.spec_from_file_location("hashlearn_fuzz", Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = fuzz  # dataclasses look their module up while the class is made
_SPEC.loader.exec_module(fuzz)

TYPED = (CorruptFileError, FileNotFoundError, PermissionError, IsADirectoryError)
#: fewer examples for the formats whose seeds take longest to build or load (a few seconds each in all)
EXAMPLES = {"run": 6, "cifar.gz": 5, "checkpoint": 10, "hlx": 10}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    built = {}

    def get(name):
        if name not in built:
            folder = tmp_path_factory.mktemp(f"seed-{name.replace('.', '-')}")
            built[name] = (folder, fuzz.FORMATS[name].build(folder))
        return built[name]

    return get


@pytest.mark.parametrize("name", list(fuzz.FORMATS))
def test_every_mutation_loads_or_raises_a_typed_error(name, seeds, tmp_path_factory):
    fmt = fuzz.FORMATS[name]
    folder, seed = seeds(name)
    fmt.load(folder, seed)  # the seed itself loads

    @settings(max_examples=EXAMPLES.get(name, 20), deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(index=st.integers(0, 2**32 - 1))
    def check(index):
        rng = np.random.default_rng([fuzz._format_seed(name), index])
        kind, files = fuzz.mutate(fmt, seed, rng)
        seed.context["kind"] = kind
        load_dir = tmp_path_factory.mktemp("load")
        if name == "run":
            import shutil

            shutil.copytree(folder / "run", load_dir / "run")
        fuzz._write_files(load_dir, files, {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fmt.load(load_dir, seed)
            except TYPED:
                pass  # the rule: a typed error, never another exception

    check()
