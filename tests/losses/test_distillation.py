import math

import pytest
import torch

from hashlearn.losses.distillation import MLPPairScorer, ScoreDistillationLoss

DTYPES = [torch.float32, torch.float64]


def reference_distillation(outputs, scores, temperature, scale, eta):
    """Slow loop: per row, softmaxes over j != i, then KL(teacher || student)."""
    u, s = outputs.double().tolist(), scores.double().tolist()
    batch, n_bits = len(u), len(u[0])
    total = 0.0
    for i in range(batch):
        others = [j for j in range(batch) if j != i]
        teacher = [s[i][j] / temperature for j in others]
        student = [scale * sum(u[i][k] * u[j][k] for k in range(n_bits)) / n_bits for j in others]
        t_norm = math.log(sum(math.exp(v) for v in teacher))
        s_norm = math.log(sum(math.exp(v) for v in student))
        total += sum(math.exp(t - t_norm) * ((t - t_norm) - (q - s_norm)) for t, q in zip(teacher, student))
    return total / batch + eta * sum((abs(x) - 1) ** 2 for row in u for x in row) / (batch * n_bits)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_slow_loop(dtype):
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    scorer = MLPPairScorer(6, hidden=5).to(dtype)
    features = torch.randn(7, 6, generator=generator, dtype=torch.float64).to(dtype)
    outputs = torch.tanh(torch.randn(7, 16, generator=generator, dtype=torch.float64)).to(dtype)
    value = ScoreDistillationLoss(16, scorer=scorer, temperature=0.7, scale=5.0, eta=0.2)(outputs, features)
    with torch.no_grad():
        scores = scorer(features, features)
    tolerance = {torch.float32: dict(rel=2e-5, abs=1e-6), torch.float64: dict(rel=1e-10, abs=1e-12)}[dtype]
    assert value.dtype == dtype
    assert float(value) == pytest.approx(reference_distillation(outputs, scores, 0.7, 5.0, 0.2), **tolerance)


def test_scorer_matches_its_formula_and_is_not_trained_with_the_loss():
    torch.manual_seed(1)
    scorer = MLPPairScorer(4, hidden=3)
    q, x = torch.randn(2, 4), torch.randn(3, 4)
    with torch.no_grad():
        scores = scorer(q, x)
    for i in range(2):
        for j in range(3):
            with torch.no_grad():
                hidden = torch.relu(scorer.query_layer(q[i]) + scorer.item_layer(x[j]))
                expected = scorer.output(hidden).squeeze() + scorer.dot_weight * (q[i] @ x[j])
            assert float(scores[i, j]) == pytest.approx(float(expected), rel=1e-5)
    loss = ScoreDistillationLoss(8, scorer=scorer)
    assert not list(loss.parameters()) and "scorer" not in dict(loss.named_modules())


def test_codes_that_follow_the_teacher_score_lower():
    position = torch.arange(6.0)[:, None]
    scorer = lambda q, x: -3 * (q - x.T).abs()  # noqa: E731 -- the teacher prefers nearby positions
    thermometer = torch.tensor([[1.0 if bit < i else -1.0 for bit in range(8)] for i in range(6)])  # Hamming = |i - j|
    loss = ScoreDistillationLoss(8, scorer=scorer, own_quantization=False)
    shuffled = thermometer[torch.tensor([3, 0, 5, 1, 4, 2])]
    assert float(loss(thermometer, position)) < float(loss(shuffled, position))


@pytest.mark.parametrize("kwargs, error", [({"scorer": None}, TypeError), ({"scorer": 3}, TypeError),
                                           ({"scorer": MLPPairScorer(2), "temperature": 0}, ValueError),
                                           ({"scorer": MLPPairScorer(2), "eta": -1}, ValueError)])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        ScoreDistillationLoss(8, **kwargs)
