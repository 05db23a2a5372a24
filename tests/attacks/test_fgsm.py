import torch

from hashlearn.attacks import FGSM


def reference_fgsm(model, x, eps):
    """x + eps * sign(grad of -<f(x), b>/m ... ) written out: one step down <f, b>, then clip."""
    with torch.no_grad():
        clean = torch.where(model(x) > 0, 1.0, -1.0)
    x = x.clone().requires_grad_(True)
    loss = (model(x) * clean).sum(dim=1).mean()
    (grad,) = torch.autograd.grad(loss, x)
    return (x - eps * grad.sign()).clamp(0, 1).detach()


def test_fgsm_matches_the_one_step_formula(trained_model, queries):
    x, _ = queries
    expected = reference_fgsm(trained_model, x, 0.05)
    torch.testing.assert_close(FGSM(trained_model, eps=0.05).attack(x).x_adv, expected)


def test_fgsm_l2_step_has_norm_eps_before_clipping():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
    x = torch.full((3, 4), 0.5)
    delta = FGSM(model, eps=0.1, norm="l2").attack(x).x_adv - x
    torch.testing.assert_close(delta.norm(dim=1), torch.full((3,), 0.1))
