import json

import pytest
import torch

from hashlearn.errors import CorruptFileError
from hashlearn.train.checkpoint import load_checkpoint, optimizer_from_tensors, optimizer_to_tensors, restore_states, save_checkpoint


def _setup(optimizer_name):
    torch.manual_seed(0)
    model, objective = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)
    params = list(model.parameters()) + list(objective.parameters())
    optimizer = torch.optim.Adam(params, lr=0.01) if optimizer_name == "adam" else torch.optim.SGD(params, lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        loss = objective(model(torch.randn(5, 4))).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model, objective, optimizer, scheduler


@pytest.mark.parametrize("optimizer_name", ["adam", "sgd"])
def test_optimizer_state_round_trip(optimizer_name):
    _, _, optimizer, _ = _setup(optimizer_name)
    tensors, meta = optimizer_to_tensors(optimizer)
    meta = json.loads(json.dumps(meta))  # what the JSON file holds
    restored = optimizer_from_tensors(tensors, meta)
    original = optimizer.state_dict()
    assert restored["param_groups"] == json.loads(json.dumps(original["param_groups"]))
    for index, state in original["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(restored["state"][index][name]), torch.as_tensor(value))


def test_save_restore_and_checksum(tmp_path):
    model, objective, optimizer, scheduler = _setup("adam")
    best = {k: v.clone() * 0 for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path, model=model, objective=objective, optimizer=optimizer, scheduler=scheduler,
                    best_model_state=best, best_objective_state=objective.state_dict(), meta={"state": {"epoch": 3}})
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["state"]["epoch"] == 3 and meta["scheduler"]["last_epoch"] == 3

    fresh_model, fresh_objective, fresh_optimizer, fresh_scheduler = _setup("adam")
    torch.nn.init.zeros_(fresh_model.weight)
    best_model, _ = restore_states(tensors, meta, model=fresh_model, objective=fresh_objective, optimizer=fresh_optimizer, scheduler=fresh_scheduler)
    assert torch.equal(fresh_model.weight, model.weight) and torch.equal(best_model["weight"], best["weight"])
    assert fresh_scheduler.last_epoch == 3

    path = tmp_path / "last.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip the bits of the last byte
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="checksum"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing")
    assert "pickle" not in (tmp_path / "last.json").read_text()


# --- hostile checkpoints (issue 12): every problem with the content is a CorruptFileError --------
def _saved_checkpoint(tmp_path):
    model, objective, optimizer, scheduler = _setup("adam")
    save_checkpoint(tmp_path, model=model, objective=objective, optimizer=optimizer, scheduler=scheduler,
                    best_model_state=model.state_dict(), best_objective_state=objective.state_dict(),
                    meta={"state": {"epoch": 3, "best_epoch": 2, "best_metric": 0.5, "bad_epochs": 1, "history": []}})
    return tmp_path / "last.json"


def _edit(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit", [
    lambda m: m.pop("optimizer"),  # was KeyError: 'optimizer'
    lambda m: m.update(optimizer=[]),
    lambda m: m["optimizer"].pop("param_groups"),
    lambda m: m["optimizer"].update(param_groups=[{"lr": 1}]),
    lambda m: m["optimizer"].update(scalars={"x.step": 1}),
    lambda m: m["optimizer"].update(scalars={"step": 1}),
    lambda m: m.update(scheduler=3),
    lambda m: m.update(state=[]),
    lambda m: m["state"].update(epoch="3"),
    lambda m: m["state"].update(epoch=-1),
    lambda m: m["state"].update(best_metric=None),
    lambda m: m["state"].update(history={}),
    lambda m: m.pop("sha256"),
])
def test_hostile_checkpoint_json(tmp_path, edit):
    path = _saved_checkpoint(tmp_path)
    _edit(path, edit)
    with pytest.raises(CorruptFileError):
        load_checkpoint(tmp_path)


def test_hostile_checkpoint_tensor_files(tmp_path):
    _saved_checkpoint(tmp_path)
    tensors = tmp_path / "last.safetensors"
    original = tensors.read_bytes()
    for data, match in [(original + b"\0" * 100, "larger than its tensors"), (original[:-4], "truncated"), (b"\xff" * 8, "header length"),
                        (b"", "truncated")]:
        tensors.write_bytes(data)
        with pytest.raises(CorruptFileError, match=match):
            load_checkpoint(tmp_path)
    tensors.unlink()
    tensors.symlink_to("/dev/zero")
    with pytest.raises(CorruptFileError, match="not a regular file"):
        load_checkpoint(tmp_path)


def test_checkpoint_of_another_model_is_a_corrupt_file_error(tmp_path):
    _saved_checkpoint(tmp_path)
    tensors, meta = load_checkpoint(tmp_path)
    other, objective = torch.nn.Linear(4, 16), torch.nn.Linear(16, 2)  # another architecture
    optimizer = torch.optim.Adam(list(other.parameters()) + list(objective.parameters()))
    with pytest.raises(CorruptFileError, match="does not fit"):
        restore_states(tensors, meta, model=other, objective=objective, optimizer=optimizer, scheduler=None)
