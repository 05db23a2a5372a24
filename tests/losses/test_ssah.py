import math

import pytest
import torch

from hashlearn.losses import SSAHLoss, build_objective
from hashlearn.quantization import RegularizerQuantizer

DTYPES = [torch.float32, torch.float64]


def paired_batch(dtype, batch=6, n_bits=8, n_classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.tanh(1.5 * torch.randn(batch, n_bits, generator=generator, dtype=torch.float64)).to(dtype)
    text = torch.tanh(1.5 * torch.randn(batch, n_bits, generator=generator, dtype=torch.float64)).to(dtype)
    labels = (torch.rand(batch, n_classes, generator=generator) < 0.5).to(torch.uint8)
    labels[0] = 0
    labels[0, 0] = 1
    return image, text, labels


def pair_likelihood(A, B, S):
    total = 0.0
    for i in range(len(A)):
        for j in range(len(B)):
            theta = 0.5 * sum(a * b for a, b in zip(A[i], B[j]))
            total += math.log1p(math.exp(theta)) - S[i][j] * theta
    return total / (len(A) * len(B))


def reference_ssah(loss, image, text, labels, own_quantization):
    """Label network evaluated row by row with plain Python lists; every term as an explicit loop."""
    Y = labels.double().tolist()
    n = len(Y)
    W1, b1 = loss.label_net.encoder[0].weight.double().tolist(), loss.label_net.encoder[0].bias.double().tolist()
    W2, b2 = loss.label_net.encoder[2].weight.double().tolist(), loss.label_net.encoder[2].bias.double().tolist()
    W3, b3 = loss.label_net.decoder.weight.double().tolist(), loss.label_net.decoder.bias.double().tolist()
    H, logits = [], []
    for y in Y:
        hidden = [max(0.0, sum(w * v for w, v in zip(row, y)) + b) for row, b in zip(W1, b1)]
        code = [math.tanh(sum(w * v for w, v in zip(row, hidden)) + b) for row, b in zip(W2, b2)]
        H.append(code)
        logits.append([sum(w * v for w, v in zip(row, code)) + b for row, b in zip(W3, b3)])
    S = [[1.0 if any(a and b for a, b in zip(Y[i], Y[j])) else 0.0 for j in range(n)] for i in range(n)]
    F, G = image.double().tolist(), text.double().tolist()
    value = pair_likelihood(H, H, S)
    bce = sum(math.log1p(math.exp(z)) - t * z for row, trow in zip(logits, Y) for z, t in zip(row, trow))
    value += loss.mu * bce / (n * len(Y[0]))
    value += pair_likelihood(H, F, S) + pair_likelihood(H, G, S)
    if own_quantization:
        m = len(F[0])
        for codes in (F, G, H):
            value += loss.gamma * sum(((1.0 if H[i][k] > 0 else -1.0) - codes[i][k]) ** 2 for i in range(n) for k in range(m)) / (n * m)
    return value


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("own_quantization", [True, False])
def test_matches_slow_loop(dtype, own_quantization):
    torch.manual_seed(0)
    image, text, labels = paired_batch(dtype)
    loss = SSAHLoss(8, 3, gamma=0.3, mu=0.7, hidden=5, own_quantization=own_quantization).to(dtype)
    value = loss((image, text), labels)
    assert value.dtype == dtype
    tolerance = dict(rel=2e-5, abs=1e-6) if dtype == torch.float32 else dict(rel=1e-10, abs=1e-12)
    assert value.item() == pytest.approx(reference_ssah(loss, image, text, labels, own_quantization), **tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adversary_adds_the_discriminator_loss_and_reverses_its_gradient(dtype):
    torch.manual_seed(0)
    image, text, labels = paired_batch(dtype)
    plain = SSAHLoss(8, 3, hidden=5).to(dtype)
    adversarial = SSAHLoss(8, 3, hidden=5, adversarial_weight=0.5).to(dtype)
    adversarial.label_net.load_state_dict(plain.label_net.state_dict())
    codes = torch.cat([image, text])
    logits = adversarial.discriminator(codes).squeeze(1).double().tolist()
    targets = [1.0] * len(image) + [0.0] * len(text)
    bce = sum(math.log1p(math.exp(z)) - t * z for z, t in zip(logits, targets)) / len(targets)
    difference = float(adversarial((image, text), labels)) - float(plain((image, text), labels))
    tolerance = dict(rel=2e-5, abs=1e-6) if dtype == torch.float32 else dict(rel=1e-10, abs=1e-12)
    assert difference == pytest.approx(0.5 * bce, **tolerance)
    # the towers receive the reversed gradient of the discriminator's loss
    image_grad = image.clone().requires_grad_(True)
    adversarial_only = adversarial.adversarial_weight * torch.nn.functional.binary_cross_entropy_with_logits(
        adversarial.discriminator(torch.cat([image_grad, text])).squeeze(1), torch.tensor(targets, dtype=dtype))
    (direct,) = torch.autograd.grad(adversarial_only, image_grad)
    image_a = image.clone().requires_grad_(True)
    image_p = image.clone().requires_grad_(True)
    (with_adversary,) = torch.autograd.grad(adversarial((image_a, text), labels), image_a)
    (without,) = torch.autograd.grad(plain((image_p, text), labels), image_p)
    torch.testing.assert_close(with_adversary - without, -direct)


def test_label_network_learns_only_from_its_own_loss():
    image, text, labels = paired_batch(torch.float32)
    loss = SSAHLoss(8, 3, gamma=0.0, mu=0.0)
    own = torch.autograd.grad(loss((image, text), labels), loss.label_net.encoder[0].weight)[0]
    from hashlearn.losses.dcmh import inter_modal_likelihood
    from hashlearn.losses.base import pairwise_similarity

    targets = labels.float()
    codes, _ = loss.label_net(targets)
    only_label_term = torch.autograd.grad(inter_modal_likelihood(codes, codes, pairwise_similarity(targets)), loss.label_net.encoder[0].weight)[0]
    torch.testing.assert_close(own, only_label_term)


def test_pluggable_quantizer():
    image, text, labels = paired_batch(torch.float64)
    objective = build_objective("ssah+reg", 8, 3, quantization_weight=0.2).double()
    assert objective.locality.own_quantization is False
    expected = objective.locality((image, text), labels) + 0.2 * (RegularizerQuantizer()(image) + RegularizerQuantizer()(text)) / 2
    assert float(objective((image, text), labels)) == pytest.approx(float(expected), rel=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="adversarial_weight"):
        SSAHLoss(8, 3, adversarial_weight=-1)
    with pytest.raises(TypeError, match="n_classes"):
        SSAHLoss(8)
