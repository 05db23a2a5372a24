"""Model directories as hostile input (issue 12): model.json and the safetensors header are
checked before the network is built, so a small edit cannot allocate gigabytes and every
problem with the content is a CorruptFileError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hashlearn.errors import CorruptFileError
from hashlearn.models import Classifier, HashModel


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    HashModel("mlp", 16, {"in_features": 12, "hidden": [8]}).save(tmp_path / "m")
    return tmp_path / "m"


def _edit_config(directory: Path, **changes) -> None:
    path = directory / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


_CAPPED = textwrap.dedent("""
    import resource, sys
    from hashlearn.models import HashModel
    from hashlearn.errors import CorruptFileError
    def vm_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    limit = vm_bytes() + int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        HashModel.load(sys.argv[1])
        print("loaded")
    except CorruptFileError as error:
        print("CorruptFileError", error)
    except BaseException as error:
        print("ESCAPED", type(error).__name__, error)
""")


def _load_capped(directory: Path, headroom: int = 256 << 20) -> str:
    """Load in a subprocess whose address space may grow by at most ``headroom`` bytes."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _CAPPED, str(directory), str(headroom)], capture_output=True, text=True, env=env, timeout=120)
    return done.stdout.strip() + done.stderr[-2000:]


def test_a_small_config_edit_cannot_allocate_gigabytes(saved):
    """A 300-byte edit of model.json (hidden=[100000, 100000]) allocated 1.6 GB before the weights were checked."""
    _edit_config(saved, backbone_kwargs={"in_features": 12, "hidden": [100_000, 100_000]})
    out = _load_capped(saved)
    assert out.startswith("CorruptFileError") and "do not fit" in out, out
    HashModel("mlp", 16, {"in_features": 12, "hidden": [8]}).save(saved)
    assert _load_capped(saved).startswith("loaded")  # the cap leaves room for a real load


@pytest.mark.parametrize("kwargs", [{"in_features": 12, "hidden": [-1]}, {"in_features": -3}, {"in_features": 12, "hidden": [2**62]},
                                    {"in_features": 12, "dropout": "x"}, {"in_features": 12, "hidden": "8"}, {"depth": 3}])
def test_wrong_sizes_are_corrupt_file_errors_not_runtime_errors(saved, kwargs):
    """hidden=[-1] raised a raw RuntimeError (negative dimension)."""
    _edit_config(saved, backbone_kwargs=kwargs)
    with pytest.raises(CorruptFileError, match="invalid model configuration|do not fit"):
        HashModel.load(saved)


@pytest.mark.parametrize("changes", [{"n_bits": "16"}, {"n_bits": True}, {"n_bits": 16.0}, {"n_bits": 2**80}, {"backbone": ["mlp"]},
                                     {"backbone_kwargs": [12]}, {"sha256": 5}, {"class": None}])
def test_config_types_are_checked(saved, changes):
    _edit_config(saved, **changes)
    with pytest.raises(CorruptFileError):
        HashModel.load(saved)


def test_a_million_layers_are_refused_before_they_are_built(saved):
    _edit_config(saved, backbone_kwargs={"in_features": 12, "hidden": [1] * 1_000_000})
    with pytest.raises(CorruptFileError, match="values for a weights file"):
        HashModel.load(saved)


def test_weights_linked_to_dev_zero_are_refused(saved):
    """A weights file linked to /dev/zero was read for 5.4 GB."""
    weights = saved / "model.safetensors"
    weights.unlink()
    weights.symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        HashModel.load(saved)


def test_weights_larger_than_their_tensors_are_refused(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + bytes(1 << 20))
    with pytest.raises(CorruptFileError, match="larger than its tensors justify"):
        HashModel.load(saved)


@pytest.mark.parametrize("header", [
    (2**64 - 1).to_bytes(8, "little"),
    (10**6).to_bytes(8, "little") + b"{}",
    b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]",
    b"\x02\x00\x00\x00\x00\x00\x00\x00{}",
])
def test_hostile_safetensors_headers(saved, header):
    (saved / "model.safetensors").write_bytes(header)
    with pytest.raises(CorruptFileError):
        HashModel.load(saved)


def test_forged_tensor_entries(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    name = next(key for key in header if key != "__metadata__")
    for entry in ({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}, {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]},
                  {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}):
        forged = json.dumps({**header, name: entry}).encode()
        weights.write_bytes(len(forged).to_bytes(8, "little") + forged + data[8 + length :])
        with pytest.raises(CorruptFileError):
            HashModel.load(saved)


def test_classifier_load_is_checked_the_same_way(tmp_path):
    torch.manual_seed(0)
    Classifier("mlp", 3, {"in_features": 5, "hidden": [4]}).save(tmp_path / "c")
    _edit_config(tmp_path / "c", n_classes=-2)
    with pytest.raises(CorruptFileError):
        Classifier.load(tmp_path / "c")


def test_a_loaded_model_holds_the_weights_it_read(saved, monkeypatch):
    """The network was built (its weights allocated) and the loaded weights copied in: a load cost
    the weights twice. Now it is built on the meta device and holds the loaded tensors themselves."""
    import safetensors.torch

    read = {}
    real_load_file = safetensors.torch.load_file

    def load_file(path, *args, **kwargs):
        read.update(real_load_file(path, *args, **kwargs))
        return read

    monkeypatch.setattr(safetensors.torch, "load_file", load_file)
    model = HashModel.load(saved)
    state = model.state_dict()
    assert read and set(state) == set(read)
    assert all(state[name].data_ptr() == tensor.data_ptr() for name, tensor in read.items())
    assert all(parameter.requires_grad and not parameter.is_meta for parameter in model.parameters())
    reference = HashModel("mlp", 16, {"in_features": 12, "hidden": [8]})
    reference.load_state_dict(state)
    x = torch.randn(5, 12)
    assert torch.equal(model(x), reference.eval()(x))


def test_a_model_with_tensors_outside_its_state_is_built_for_real(tmp_path):
    """A backbone that keeps a plain tensor attribute would be left on the meta device: such a
    model is built normally and the weights copied in."""
    from hashlearn.models.base import _with_weights

    class WithConstant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)
            self.offset = torch.ones(2)  # not a parameter or buffer: not in the state dict

        def forward(self, x):
            return self.linear(x) + self.offset

    state = {name: value.clone() for name, value in WithConstant().state_dict().items()}
    model = _with_weights(lambda: WithConstant(), (), state)
    assert not model.offset.is_meta and torch.equal(model.linear.weight, state["linear.weight"])
