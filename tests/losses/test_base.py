import math

import numpy as np
import pytest
import torch

from hashlearn.losses import LOSSES, DPSHLoss, LocalityLoss, pairwise_similarity


def labels_for(name, batch, n_classes, generator):
    if name == "unsupervised":
        return torch.randn(batch, 5, generator=generator)
    return torch.randint(0, n_classes, (batch,), generator=generator)


@pytest.mark.parametrize("multi_label", [False, True])
def test_pairwise_similarity_matches_loop(make_batch, similarity_of, multi_label):
    _, labels, label_sets = make_batch(batch=9, n_classes=4, multi_label=multi_label, seed=3)
    targets = torch.nn.functional.one_hot(labels, 4).double() if labels.ndim == 1 else labels.double()
    similarity = pairwise_similarity(targets)
    expected = [[similarity_of(label_sets, i, j) for j in range(9)] for i in range(9)]
    assert similarity.tolist() == expected


def test_multi_hot_dtypes_are_accepted():
    loss = DPSHLoss(8, 3)
    outputs = torch.zeros(2, 8)
    hot = [[1, 0, 1], [0, 1, 0]]
    values = [loss(outputs, torch.tensor(hot, dtype=dtype)) for dtype in (torch.uint8, torch.float32, torch.bool, torch.int64)]
    values.append(loss(outputs, np.array(hot, dtype=np.uint8)))
    assert len({float(v) for v in values}) == 1


@pytest.mark.parametrize(
    "outputs, labels, error, match",
    [
        ([[0.0] * 8], torch.tensor([0]), TypeError, "torch.Tensor"),
        (torch.zeros(2, 8, dtype=torch.int64), torch.tensor([0, 1]), TypeError, "floating"),
        (torch.zeros(8), torch.tensor([0]), ValueError, "shape"),
        (torch.zeros(2, 16), torch.tensor([0, 1]), ValueError, "n_bits=8"),
        (torch.zeros(0, 8), torch.tensor([], dtype=torch.int64), ValueError, "at least one"),
        (torch.zeros(2, 8), torch.tensor([0.0, 1.0]), TypeError, "integer class ids"),
        (torch.zeros(2, 8), torch.tensor([True, False]), TypeError, "integer class ids"),
        (torch.zeros(2, 8), torch.tensor([0, 3]), ValueError, r"\[0, 3\)"),
        (torch.zeros(2, 8), torch.tensor([-1, 0]), ValueError, "class ids"),
        (torch.zeros(2, 8), torch.tensor([0, 1, 2]), ValueError, "must match"),
        (torch.zeros(2, 8), torch.zeros(2, 4), ValueError, r"\(2, 3\)"),
        (torch.zeros(2, 8), torch.full((2, 3), 0.5), ValueError, "only 0 and 1"),
        (torch.zeros(2, 8), torch.zeros(2, 3, 1), ValueError, "3-D"),
        (torch.zeros(2, 8), [0, 1], TypeError, "labels must be a torch.Tensor"),
    ],
)
def test_bad_inputs_raise_typed_errors(outputs, labels, error, match):
    with pytest.raises(error, match=match):
        DPSHLoss(8, 3)(outputs, labels)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="n_classes"):
        DPSHLoss(8)
    with pytest.raises(ValueError, match="n_bits"):
        DPSHLoss(0, 3)
    with pytest.raises(TypeError, match="own_quantization"):
        DPSHLoss(8, 3, own_quantization="yes")


def test_unsupervised_rejects_class_ids():
    loss = LOSSES["unsupervised"].cls(8)
    with pytest.raises(TypeError, match="float feature vectors"):
        loss(torch.zeros(3, 8), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(batch, d\)"):
        loss(torch.zeros(3, 8), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        loss(torch.zeros(2, 8), torch.tensor([[0.0], [float("nan")]]))


EDGE_CASES = ["identical", "batch_of_one", "single_class", "all_zero", "saturated"]


@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_on_edge_cases(name, case, dtype):
    generator = torch.Generator().manual_seed(1)
    n_bits, n_classes = 16, 1 if case == "single_class" else 3
    batch = 1 if case == "batch_of_one" else 6
    if case == "identical":
        outputs = torch.tanh(torch.randn(1, n_bits, generator=generator)).repeat(batch, 1)
    elif case == "all_zero":
        outputs = torch.zeros(batch, n_bits)
    elif case == "saturated":
        outputs = torch.where(torch.randn(batch, n_bits, generator=generator) > 0, 1.0, -1.0)
    else:
        outputs = torch.tanh(torch.randn(batch, n_bits, generator=generator))
    outputs = outputs.to(dtype).requires_grad_(True)
    labels = labels_for(name, batch, n_classes, generator)
    if case == "identical" and name == "unsupervised":
        labels = labels[:1].repeat(batch, 1)
    kwargs = {"step_size": 1} if name == "hashnet" else {}  # HashNet: exercise a sharpened scale too
    loss = LOSSES[name].cls(n_bits, n_classes, **kwargs).to(dtype)
    for _ in range(3):
        loss.step()
    value = loss((outputs, outputs) if getattr(loss, "cross_modal", False) else outputs, labels)
    value.backward()
    assert value.ndim == 0 and math.isfinite(value.item())
    assert torch.isfinite(outputs.grad).all()
    for parameter in loss.parameters():
        assert torch.isfinite(parameter.grad).all()


def retrieval_precision(codes, labels):
    """Share of same-class items among each item's Hamming-nearest other item (ties by id)."""
    distances = (codes[:, None, :] != codes[None, :, :]).sum(-1).float()
    distances.fill_diagonal_(float("inf"))
    nearest = distances.argmin(dim=1)
    return float((labels[nearest] == labels).float().mean())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_learns_class_preserving_codes(name):
    """Free codes u = tanh(z) trained by the loss alone end up grouping the classes."""
    torch.manual_seed(0)
    n_bits, n_classes, per_class = 16, 4, 10
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    if name == "unsupervised":
        # well-separated clusters in feature space stand in for the classes
        centers = 6 * torch.randn(n_classes, 8)
        targets = centers[labels] + torch.randn(len(labels), 8)
    else:
        targets = labels
    logits = torch.nn.Parameter(0.1 * torch.randn(len(labels), n_bits))
    loss = LOSSES[name].cls(n_bits, n_classes)
    optimizer = torch.optim.Adam([logits, *loss.parameters()], lr=0.05)
    before = retrieval_precision(logits.detach() > 0, labels)
    for _ in range(150):
        optimizer.zero_grad()
        codes = torch.tanh(logits)
        loss((codes, codes) if getattr(loss, "cross_modal", False) else codes, targets).backward()
        optimizer.step()
        loss.step()
    after = retrieval_precision(logits.detach() > 0, labels)
    assert after >= 0.9 and after > before


def test_hooks_exist_and_do_nothing_by_default():
    loss = DPSHLoss(8, 2)
    assert isinstance(loss, LocalityLoss)
    loss.on_epoch_start(0)
    loss.step()
    assert "n_bits=8" in repr(loss)
