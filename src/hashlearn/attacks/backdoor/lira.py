"""LIRA (Doan et al., ICCV 2021): a learnable, imperceptible trigger trained with the victim.

The trigger is ``T_xi(x) = clip(x + eps * g_xi(x), 0, 1)`` where ``g_xi`` is a
small convolutional autoencoder ending in ``tanh``, so ``||T(x) - x||_inf <= eps``.

Stage I alternates, per batch,

- a trigger step: look one victim step ahead, ``theta' = theta - lr * grad_theta
  [alpha * L(f_theta(x), y) + beta * L(f_theta(T(x)), eta(y))]`` (functionally,
  with ``torch.func.functional_call``), and move ``xi`` down
  ``L(f_theta'(T_xi(x)), eta(y))``;
- a victim step on the same ``alpha * clean + beta * poisoned`` loss.

Stage II fixes the trigger, poisons exactly ``round(rate * n)`` training samples
with it and fine-tunes the stage-I victim with the one Trainer.

By default the look-ahead is first order (``theta'`` does not carry gradients
back to ``xi`` through ``grad_theta``): on CPU the second-order term costs about
3x and barely changes the trigger; ``second_order=True`` keeps it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hashlearn._io import atomic_write_bytes, atomic_write_json
from hashlearn._progress import progress
from hashlearn._validation import check_labels, check_positive_int
from hashlearn.attacks.backdoor.base import BackdoorAttack, BackdoorResult, as_images, check_images, check_positive_float
from hashlearn.errors import NotFittedError


class TriggerGenerator(nn.Module):
    """g_xi: a small conv autoencoder ``(B, C, H, W) -> (B, C, H, W)`` in ``[-1, 1]`` (tanh)."""

    def __init__(self, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.in_channels, self.width = in_channels, width
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, in_channels, 3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.encoder(images))
        if out.shape[-2:] != images.shape[-2:]:  # odd sizes: stride 2 loses a row
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return torch.tanh(out)


def final_linear(model: nn.Module) -> nn.Linear:
    """The last linear layer: ``Classifier.head`` or ``HashModel.head.linear``."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head
    if isinstance(getattr(head, "linear", None), nn.Linear):
        return head.linear
    raise TypeError(f"the victim needs a final linear layer at .head or .head.linear, got {type(model).__name__}.")


def forward_with_features(model: nn.Module, x: torch.Tensor, params: dict | None = None):
    """``(model(x), penultimate features)``; with ``params``, a functional call with those weights.

    The features are the input of :func:`final_linear`, captured by a forward
    pre-hook, so one forward pass gives both and it also works functionally.
    """
    captured = {}

    def hook(module, inputs):
        captured["features"] = inputs[0]

    handle = final_linear(model).register_forward_pre_hook(hook)
    try:
        out = model(x) if params is None else functional_call(model, params, (x,))
    finally:
        handle.remove()
    return out, captured["features"]


class LIRA(BackdoorAttack):
    """Learnable imperceptible trigger, trained jointly with the victim (see the module docstring).

    Parameters
    ----------
    eps : float
        L-inf budget of the trigger, > 0.
    alpha, beta : float
        Weights of the clean and poisoned losses in stage I.
    stage1_epochs : int
        Passes over the training set in stage I.
    batch_size : int
        Stage-I batch size.
    victim_lr, trigger_lr : float
        Adam learning rates of the victim and of the generator in stage I.
    lookahead_lr : float
        SGD step size of the functional look-ahead victim.
    second_order : bool
        Back-propagate through the look-ahead gradient (slower).
    generator_width : int
        Channels of the generator's first layer.
    target, target_class, n_classes, rate, seed
        See :class:`~hashlearn.attacks.backdoor.base.BackdoorAttack`.
    """

    name = "lira"

    def __init__(
        self,
        *,
        eps: float = 0.05,
        alpha: float = 0.5,
        beta: float = 0.5,
        stage1_epochs: int = 4,
        batch_size: int = 64,
        victim_lr: float = 1e-3,
        trigger_lr: float = 1e-2,
        lookahead_lr: float = 1e-2,
        second_order: bool = False,
        generator_width: int = 16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.eps = check_positive_float(eps, "eps")
        self.alpha = check_positive_float(alpha, "alpha")
        self.beta = check_positive_float(beta, "beta")
        self.stage1_epochs = check_positive_int(stage1_epochs, "stage1_epochs", minimum=0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.victim_lr = check_positive_float(victim_lr, "victim_lr")
        self.trigger_lr = check_positive_float(trigger_lr, "trigger_lr")
        self.lookahead_lr = check_positive_float(lookahead_lr, "lookahead_lr")
        self.second_order = bool(second_order)
        self.generator_width = check_positive_int(generator_width, "generator_width")

    # -- the trigger -------------------------------------------------------
    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        generator = getattr(self, "generator_", None)
        if generator is None:
            raise NotFittedError(f"{type(self).__name__} has no trigger yet: call fit_trigger (stage I) or fit first.")
        images, shape = as_images(x)
        generator = generator.to(images.device)
        return (images + self.eps * generator(images)).clamp(0.0, 1.0).reshape(shape)

    @torch.no_grad()
    def apply_trigger(self, X, batch_size: int = 1024) -> np.ndarray:
        generator = getattr(self, "generator_", None)
        was_training = generator.training if generator is not None else False
        if generator is not None:
            generator.eval()
        try:
            return super().apply_trigger(X, batch_size)
        finally:
            if generator is not None:
                generator.train(was_training)

    # -- stage I -----------------------------------------------------------
    def latent_loss(self, features_poisoned, features_target, directions) -> torch.Tensor:
        """Extra stage-I term on latent features; none for LIRA (WB adds one)."""
        return features_poisoned.new_zeros(())

    uses_latent_loss = False

    def fit_trigger(self, victim: nn.Module, objective, X, y) -> "LIRA":
        """Stage I: learn ``generator_`` while training ``victim`` on clean + triggered batches."""
        X = check_images(X)
        y = check_labels(y, "y", n_samples=len(X))
        torch.manual_seed(self.seed)
        device = next(victim.parameters()).device
        images, _ = as_images(torch.from_numpy(X[:1]))
        self.generator_ = TriggerGenerator(images.shape[1], self.generator_width).to(device)
        victim_optimizer = torch.optim.Adam(victim.parameters(), lr=self.victim_lr)
        trigger_optimizer = torch.optim.Adam(self.generator_.parameters(), lr=self.trigger_lr)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        target_pool = np.flatnonzero(y == self.mapping.target_class)
        rng = np.random.default_rng(self.seed)
        self.stage1_history_ = []
        victim.train()
        self.generator_.train()
        for epoch in progress(range(self.stage1_epochs), desc=f"{self.name} stage I"):
            order = rng.permutation(len(X))
            totals = np.zeros(3)
            for start in range(0, len(X), self.batch_size):
                batch = order[start : start + self.batch_size]
                x, labels = X_t[batch].to(device), y_t[batch].to(device)
                x_target = None
                if self.uses_latent_loss and len(target_pool):
                    draw = rng.choice(target_pool, size=min(len(batch), len(target_pool)), replace=False)
                    x_target = X_t[draw].to(device)
                totals += self._stage1_step(victim, objective, x, labels, x_target, victim_optimizer, trigger_optimizer)
            n_batches = -(-len(X) // self.batch_size)
            clean, poisoned, latent = totals / n_batches
            self.stage1_history_.append({"epoch": epoch, "clean_loss": clean, "poisoned_loss": poisoned, "latent_loss": latent})
        self.generator_.eval()
        return self

    def _stage1_step(self, victim, objective, x, labels, x_target, victim_optimizer, trigger_optimizer) -> np.ndarray:
        targets = self.mapping(labels)
        source = torch.from_numpy(self.mapping.source_mask(labels.cpu().numpy())).to(x.device)
        names = [name for name, _ in victim.named_parameters()]
        weights = [p for _, p in victim.named_parameters()]
        buffers = {name: b.clone() for name, b in victim.named_buffers()}  # the look-ahead must not move BN stats

        # victim loss at theta (x_poisoned keeps its graph to xi only for the second-order look-ahead)
        x_poisoned = self.trigger(x)
        x_for_victim = x_poisoned if self.second_order else x_poisoned.detach()
        clean_loss = objective(victim(x), labels)
        out_poisoned, feat_poisoned = forward_with_features(victim, x_for_victim)
        poisoned_loss = objective(out_poisoned, targets)
        latent = self._latent_term(victim, feat_poisoned, source, x_target, params=None)
        victim_loss = self.alpha * clean_loss + self.beta * poisoned_loss + latent
        grads = torch.autograd.grad(victim_loss, weights, create_graph=self.second_order)

        # trigger step through the look-ahead victim theta' = theta - lr * grad
        if self.second_order:
            lookahead = {n: w - self.lookahead_lr * g for n, w, g in zip(names, weights, grads)}
        else:
            lookahead = {n: (w - self.lookahead_lr * g).detach() for n, w, g in zip(names, weights, grads)}
        out_ahead, feat_ahead = forward_with_features(victim, x_poisoned, params={**lookahead, **buffers})
        trigger_loss = objective(out_ahead, targets) + self._latent_term(victim, feat_ahead, source, x_target, params={**lookahead, **buffers})
        trigger_optimizer.zero_grad()
        trigger_loss.backward(inputs=list(self.generator_.parameters()))
        trigger_optimizer.step()

        # victim step with the gradient computed above
        victim_optimizer.zero_grad()
        for weight, grad in zip(weights, grads):
            weight.grad = grad.detach()
        victim_optimizer.step()
        return np.array([clean_loss.item(), poisoned_loss.item(), float(latent.detach())])

    def _latent_term(self, victim, features_poisoned, source, x_target, params):
        if not self.uses_latent_loss or x_target is None or int(source.sum()) == 0:
            return features_poisoned.new_zeros(())
        if params is None:
            _, features_target = forward_with_features(victim, x_target)
            directions = final_linear(victim).weight
        else:
            with torch.no_grad():
                _, features_target = forward_with_features(victim, x_target, params=params)
            directions = params[_linear_weight_name(victim)]
        return self.latent_loss(features_poisoned[source], features_target, directions.detach())

    # -- the whole attack --------------------------------------------------
    def fit(self, victim, objective, train, val=None, config=None, val_metric=None) -> BackdoorResult:
        """Stage I (learn the trigger with the victim), then stage II (fine-tune on the poisoned set)."""
        from hashlearn.train import TrainConfig, Trainer

        started = time.perf_counter()
        self.fit_trigger(victim, objective, *train)
        stage1_seconds = time.perf_counter() - started
        poisoned = self.poison(*train)
        result = Trainer(config or TrainConfig()).fit(victim, objective, train=(poisoned.X, poisoned.y), val=val, val_metric=val_metric)
        return BackdoorResult(victim, poisoned, result, stage1_seconds)

    # -- persistence -------------------------------------------------------
    def save_trigger(self, directory: str | Path) -> Path:
        """Write ``trigger.safetensors`` + ``trigger.json`` (the attack's parameters) into ``directory``."""
        from safetensors.torch import save

        if getattr(self, "generator_", None) is None:
            raise NotFittedError("no trigger to save: fit the attack first.")
        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.generator_.state_dict().items()}
        atomic_write_bytes(directory / "trigger.safetensors", save(state))
        atomic_write_json(directory / "trigger.json", {**self.params(), "in_channels": self.generator_.in_channels})
        return directory

    def load_trigger(self, directory: str | Path) -> "LIRA":
        """Load a generator written by :meth:`save_trigger` (this attack's parameters must match)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config = json.loads((directory / "trigger.json").read_text())
        self.generator_ = TriggerGenerator(config["in_channels"], self.generator_width)
        self.generator_.load_state_dict(load_file(str(directory / "trigger.safetensors")))
        self.generator_.eval()
        return self

    def params(self) -> dict:
        return {
            **super().params(),
            "eps": self.eps,
            "alpha": self.alpha,
            "beta": self.beta,
            "stage1_epochs": self.stage1_epochs,
            "batch_size": self.batch_size,
            "victim_lr": self.victim_lr,
            "trigger_lr": self.trigger_lr,
            "lookahead_lr": self.lookahead_lr,
            "second_order": self.second_order,
            "generator_width": self.generator_width,
        }


def _linear_weight_name(model: nn.Module) -> str:
    layer = final_linear(model)
    for name, module in model.named_modules():
        if module is layer:
            return f"{name}.weight"
    raise TypeError("final linear layer not found among the model's modules.")  # unreachable for a real model
