import torch

from hashlearn.attacks import PGD


def reference_pgd(model, x, eps, steps, step_size):
    """Sign steps down <f(x + delta), b>, projected onto the L-inf ball and [0, 1] after each step."""
    with torch.no_grad():
        clean = torch.where(model(x) > 0, 1.0, -1.0)
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad((model(x_adv) * clean).sum(), x_adv)
        with torch.no_grad():
            x_adv = x_adv - step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def test_pgd_without_random_start_matches_a_reference_loop(trained_model, queries):
    x, _ = queries
    expected = reference_pgd(trained_model, x, eps=0.1, steps=4, step_size=0.03)
    actual = PGD(trained_model, eps=0.1, steps=4, step_size=0.03, random_start=False).attack(x).x_adv
    torch.testing.assert_close(actual, expected)


def test_default_step_size(trained_model):
    assert PGD(trained_model, eps=0.1, steps=100).resolved_step_size == 0.1 * 2.5 / 100
    assert PGD(trained_model, eps=0.1, steps=2).resolved_step_size == 0.1


def test_l2_random_start_lies_in_the_ball():
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Tanh())
    x = torch.full((50, 16), 0.5)
    attack = PGD(model, eps=0.3, norm="l2", random_start=True, clip=None)
    start = attack._random_start(x, torch.Generator().manual_seed(0))
    norms = start.norm(dim=1)
    assert norms.max() <= 0.3 + 1e-6 and norms.min() > 0
