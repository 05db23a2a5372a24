import pytest
import torch

from hashlearn.losses.triplet import TripletLoss

DTYPES = [torch.float32, torch.float64]


def reference_triplet(outputs, label_sets, similar, margin, eta, own_quantization):
    """Slow loop over every (anchor, positive, negative) triple of the batch."""
    u = outputs.double().tolist()
    batch, n_bits = len(u), len(u[0])

    def distance(i, j):
        return (1 - sum(u[i][k] * u[j][k] for k in range(n_bits)) / n_bits) / 2

    total, count = 0.0, 0
    for a in range(batch):
        for p in range(batch):
            if p == a or not similar(label_sets, a, p):
                continue
            for n in range(batch):
                if not similar(label_sets, a, n):
                    total += max(0.0, margin + distance(a, p) - distance(a, n))
                    count += 1
    loss = total / count if count else 0.0
    if own_quantization:
        loss += eta * sum((x - (1.0 if x > 0 else -1.0)) ** 2 for row in u for x in row) / (batch * n_bits)
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(make_batch, approx, similarity_of, dtype, multi_label, own_quantization):
    outputs, labels, label_sets = make_batch(dtype, batch=8, n_bits=16, n_classes=3, multi_label=multi_label)
    value = TripletLoss(16, 3, margin=0.3, eta=0.2, own_quantization=own_quantization)(outputs, labels)
    assert value.dtype == dtype
    assert float(value) == approx(reference_triplet(outputs, label_sets, similarity_of, 0.3, 0.2, own_quantization), dtype)


def test_no_valid_triplet_gives_zero_with_a_graph():
    outputs = torch.tanh(torch.randn(4, 8, generator=torch.Generator().manual_seed(1))).requires_grad_()
    value = TripletLoss(8, 2, own_quantization=False)(outputs, torch.tensor([1, 1, 1, 1]))  # no negatives
    assert float(value.detach()) == 0.0
    value.backward()
    assert outputs.grad is not None


def test_gradient_pulls_positive_and_pushes_negative():
    anchor = torch.tensor([1.0, 1, 1, 1, -1, -1, -1, -1])
    outputs = torch.stack([anchor, -anchor * 0.1, anchor * 0.1]).requires_grad_()  # positive far, negative close
    TripletLoss(8, 2, own_quantization=False)(outputs, torch.tensor([0, 0, 1])).backward()
    assert float(outputs.grad[1] @ anchor) < 0  # descending the loss moves the positive towards the anchor
    assert float(outputs.grad[2] @ anchor) > 0  # and the negative away from it


@pytest.mark.parametrize("kwargs", [{"margin": 1.5}, {"margin": -0.1}, {"eta": -1}])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        TripletLoss(8, 2, **kwargs)
