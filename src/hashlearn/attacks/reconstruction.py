"""Data reconstruction from released representations: a decoder learned from (representation, input) pairs.

The threat (HashVFL, Qiu et al. 2023; "model inversion" by a learned decoder):
whoever receives a model's representations of private inputs -- the float
features or embeddings a party sends, or the binary codes a hash index stores
-- and holds some *auxiliary* pairs of inputs and their representations trains
a decoder from representations back to inputs, then applies it to the
representations of inputs it never saw. :class:`ReconstructionAttack` is that
decoder (an MLP, trained by the one :class:`~hashlearn.train.Trainer` on mean
squared error, the epoch kept by the validation part of the auxiliary pairs);
:func:`reconstruction_quality` scores its reconstructions (MSE, PSNR, SSIM) and
:func:`released_representations` computes what a hash model releases: backbone
``features`` (floats), continuous ``outputs`` (floats in ``[-1, 1]``) and
``codes`` (the +-1 bits of the packed codes an index stores).

Two baselines say what a score means: :func:`mean_reconstruction` (the mean
auxiliary input, what an attacker knows without any representation) and
:func:`class_mean_reconstruction` (the mean auxiliary input of the item's true
class, what an attacker knows from the label alone -- codes that reveal the class
reveal at least this much).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(600, 4)).astype(np.float32)
>>> x = (0.5 + 0.1 * z @ rng.normal(size=(4, 64))).clip(0, 1).reshape(-1, 8, 8).astype(np.float32)
>>> attack = ReconstructionAttack(hidden=(64,), epochs=40, seed=0).fit(z[:500], x[:500])
>>> quality = attack.score(z[500:], x[500:])
>>> quality["psnr"] > reconstruction_quality(x[500:], mean_reconstruction(x[:500], 100))["psnr"] + 10
True
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from hashlearn._validation import check_features, check_labels, check_positive_int, check_real
from hashlearn.attacks.backdoor.metrics import psnr, ssim
from hashlearn.errors import NotFittedError
from hashlearn.models.backbones import mlp

#: what a hash model releases, in the order reports list them
REPRESENTATIONS = ("features", "outputs", "codes")
#: window of SSIM (the SSIM paper's 11x11 Gaussian, shrunk for images under 11 pixels)
SSIM_WINDOW = 11


def released_representations(model: nn.Module, x, kinds=REPRESENTATIONS, batch_size: int = 512) -> dict[str, np.ndarray]:
    """What ``model`` (a :class:`~hashlearn.models.HashModel`) releases for inputs ``x``, as float32 ``(n, d)``.

    ``features``: the backbone's latent features; ``outputs``: the continuous hash
    outputs in ``[-1, 1]``; ``codes``: the +-1 bits of the packed codes (what a
    Hamming index stores). Computed in eval mode without gradients; the mode of
    every submodule is restored afterwards.
    """
    from hashlearn.codes import codes_to_pm1, sign_to_codes

    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in REPRESENTATIONS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {REPRESENTATIONS}, got {kinds!r}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    x = x.detach().cpu().float() if torch.is_tensor(x) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    if len(x) == 0:
        raise ValueError("x must hold at least one input, got 0.")
    modes = [(module, module.training) for module in model.modules()]
    parts: dict[str, list[torch.Tensor]] = {"features": [], "outputs": []}
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                features = model.features(x[start : start + batch_size].to(device))
                parts["features"].append(features.flatten(1).float().cpu())
                parts["outputs"].append(model.head(features).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    features, outputs = (torch.cat(parts[name]).numpy() for name in ("features", "outputs"))
    released = {"features": features, "outputs": outputs}
    if "codes" in kinds:
        released["codes"] = codes_to_pm1(sign_to_codes(outputs), outputs.shape[1])
    return {kind: np.ascontiguousarray(released[kind], dtype=np.float32) for kind in kinds}


def _image_batch(x: np.ndarray) -> np.ndarray | None:
    """``x`` as grey or multi-channel images ``(n, H, W)`` / ``(n, C, H, W)``, or ``None`` for vectors."""
    if x.ndim == 2:
        side = int(round(x.shape[1] ** 0.5))
        return x.reshape(len(x), side, side) if side * side == x.shape[1] and side > 1 else None
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    return x if x.ndim in (3, 4) else None


def reconstruction_quality(x, x_reconstructed, data_range: float = 1.0) -> dict[str, float]:
    """MSE, PSNR (dB, averaged per item) and -- for images -- SSIM of reconstructions against the originals.

    ``x`` and ``x_reconstructed`` have the same shape ``(n, ...)``; flat square
    vectors count as images. SSIM uses an 11x11 Gaussian window (the largest odd
    window that fits smaller images); it is ``None`` for plain vectors.
    """
    x = np.asarray(x, dtype=np.float64)
    x_reconstructed = np.asarray(x_reconstructed, dtype=np.float64)
    if x.shape != x_reconstructed.shape:
        raise ValueError(f"x and x_reconstructed must have the same shape, got {x.shape} and {x_reconstructed.shape}.")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must have shape (n_items, ...) with n_items >= 1, got {x.shape}.")
    data_range = check_real(data_range, "data_range", minimum=0.0)
    out = {"mse": float(((x - x_reconstructed) ** 2).mean()), "psnr": psnr(x, x_reconstructed, data_range=data_range), "ssim": None}
    images, rebuilt = _image_batch(x), _image_batch(x_reconstructed)
    if images is not None:
        side = min(images.shape[-2:])
        window = min(SSIM_WINDOW, side if side % 2 else side - 1)
        if window >= 3:
            out["ssim"] = ssim(images, rebuilt, data_range=data_range, window_size=window)
    return out


def mean_reconstruction(auxiliary_inputs, n: int) -> np.ndarray:
    """``n`` copies of the mean auxiliary input: the reconstruction of an attacker who sees no representation."""
    auxiliary_inputs = np.asarray(auxiliary_inputs, dtype=np.float32)
    n = check_positive_int(n, "n")
    return np.repeat(auxiliary_inputs.mean(axis=0, keepdims=True), n, axis=0)


def class_mean_reconstruction(auxiliary_inputs, auxiliary_labels, labels) -> np.ndarray:
    """The mean auxiliary input of each item's class: what the label alone reveals (single-label data)."""
    auxiliary_inputs = np.asarray(auxiliary_inputs, dtype=np.float32)
    auxiliary_labels = check_labels(auxiliary_labels, "auxiliary_labels", n_samples=len(auxiliary_inputs))
    labels = check_labels(labels, "labels")
    if auxiliary_labels.ndim != 1 or labels.ndim != 1:
        raise ValueError("class_mean_reconstruction needs single-label data (1-D class ids).")
    missing = sorted(set(np.unique(labels).tolist()) - set(np.unique(auxiliary_labels).tolist()))
    if missing:
        raise ValueError(f"labels holds classes {missing} that auxiliary_labels never shows; no class mean for them.")
    means = {c: auxiliary_inputs[auxiliary_labels == c].mean(axis=0) for c in np.unique(labels)}
    return np.stack([means[c] for c in labels]).astype(np.float32)


class _Decoder(nn.Module):
    """MLP from a standardised representation to a flat input, squashed into ``output_range`` (if any)."""

    def __init__(self, in_features: int, out_features: int, hidden: tuple[int, ...], output_range):
        super().__init__()
        self.net = mlp(in_features, hidden, out_features)
        self.output_range = output_range

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        out = self.net(representation)
        if self.output_range is None:
            return out
        low, high = self.output_range
        return low + (high - low) * torch.sigmoid(out)


class _MeanSquaredError(nn.Module):
    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (reconstruction - target).pow(2).mean()


class ReconstructionAttack:
    """A decoder from released representations back to the inputs they were computed from.

    Parameters
    ----------
    hidden : tuple of int
        Hidden layer widths of the MLP decoder (``()``: a linear decoder).
    epochs, batch_size, lr, weight_decay :
        Training of the decoder (Adam on mean squared error, by the one Trainer).
    val_fraction : float
        Share of the auxiliary pairs held out to pick the best epoch (lowest
        validation MSE); the attacked items are never used for that.
    output_range : (float, float) or None
        Range of the inputs (``(0, 1)`` for images): the decoder's output is a
        sigmoid scaled into it. ``None``: an unbounded linear output.
    seed : int
        Seed of the decoder's initial weights, the validation hold-out and the batch order.

    ``fit(representations, inputs)`` takes auxiliary pairs (``(n, d)`` floats and
    ``(n, ...)`` inputs); ``reconstruct(representations)`` returns inputs of the
    fitted shape; ``score(representations, inputs)`` their
    :func:`reconstruction_quality`. Representations are standardised with the
    auxiliary pairs' mean and standard deviation.
    """

    name = "reconstruction"

    def __init__(self, hidden=(512, 512), epochs: int = 30, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 0.0,
                 val_fraction: float = 0.1, output_range=(0.0, 1.0), seed: int = 0, device: str = "cpu"):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.output_range = output_range
        self.seed = seed
        self.device = device

    def __repr__(self) -> str:
        return (f"ReconstructionAttack(hidden={tuple(self.hidden)}, epochs={self.epochs}, batch_size={self.batch_size}, "
                f"lr={self.lr:g}, val_fraction={self.val_fraction:g}, output_range={self.output_range}, seed={self.seed})")

    def _check_params(self) -> None:
        if isinstance(self.hidden, (str, bytes)) or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in self.hidden):
            raise ValueError(f"hidden must be a sequence of integers >= 1, got {self.hidden!r}.")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_real(self.lr, "lr", minimum=0.0)
        check_real(self.weight_decay, "weight_decay", minimum=0.0, strict=False)
        if not (isinstance(self.val_fraction, numbers.Real) and 0 < self.val_fraction < 1):
            raise ValueError(f"val_fraction must be a number in (0, 1), got {self.val_fraction!r}.")
        if self.output_range is not None:
            low, high = (float(v) for v in self.output_range)
            if not low < high:
                raise ValueError(f"output_range must be (low, high) with low < high, or None, got {self.output_range!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}.")

    def fit(self, representations, inputs) -> "ReconstructionAttack":
        """Train the decoder on auxiliary pairs ``(representations[i], inputs[i])``; returns ``self``."""
        from hashlearn.train import TrainConfig, Trainer

        self._check_params()
        representations = check_features(representations, "representations", min_samples=2)
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.ndim < 2 or len(inputs) != len(representations):
            raise ValueError(f"inputs must have shape (n_items, ...) with one item per representation ({len(representations)}), got {inputs.shape}.")
        flat = check_features(inputs.reshape(len(inputs), -1), "inputs")
        self.input_shape_ = tuple(inputs.shape[1:])
        self.n_features_in_ = representations.shape[1]
        self.mean_ = representations.mean(axis=0)
        self.scale_ = np.maximum(representations.std(axis=0), 1e-6)
        z = (representations - self.mean_) / self.scale_

        order = np.random.default_rng(self.seed).permutation(len(z))
        n_val = max(1, int(round(self.val_fraction * len(z))))
        if n_val >= len(z):
            raise ValueError(f"fit needs more auxiliary pairs: {len(z)} leave none for training after a {self.val_fraction:g} hold-out.")
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        output_range = None if self.output_range is None else tuple(float(v) for v in self.output_range)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.decoder_ = _Decoder(z.shape[1], flat.shape[1], tuple(int(h) for h in self.hidden), output_range)
        config = TrainConfig(epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
                             weight_decay=float(self.weight_decay), seed=int(self.seed), device=self.device)

        def negative_mse(model, X_val, y_val) -> float:
            with torch.no_grad():
                return -float((model(X_val.to(config.device)).cpu() - y_val).pow(2).mean())

        with torch.random.fork_rng(devices=[]):  # the Trainer seeds torch's global generator: keep the caller's
            self.train_result_ = Trainer(config).fit(self.decoder_, _MeanSquaredError(), train=(z[train], flat[train]),
                                                     val=(z[val], flat[val]), val_metric=negative_mse)
        self.decoder_.eval()
        return self

    def reconstruct(self, representations) -> np.ndarray:
        """Reconstructed inputs ``(n, *input_shape)`` (float32) of released ``representations`` ``(n, d)``."""
        if not hasattr(self, "decoder_"):
            raise NotFittedError("this ReconstructionAttack is not fitted yet; call fit(representations, inputs) first.")
        representations = check_features(representations, "representations", n_features=self.n_features_in_, owner="this ReconstructionAttack")
        z = torch.from_numpy((representations - self.mean_) / self.scale_).float()
        with torch.no_grad():
            out = torch.cat([self.decoder_(z[i : i + 1024].to(self.device)).cpu() for i in range(0, len(z), 1024)])
        return out.numpy().reshape(len(z), *self.input_shape_)

    def score(self, representations, inputs, data_range: float | None = None) -> dict[str, float]:
        """:func:`reconstruction_quality` of the reconstructions of ``representations`` against ``inputs``.

        ``data_range`` defaults to the width of ``output_range`` (1 when unbounded)."""
        if data_range is None:
            data_range = 1.0 if self.output_range is None else float(self.output_range[1]) - float(self.output_range[0])
        return reconstruction_quality(np.asarray(inputs, dtype=np.float32), self.reconstruct(representations), data_range=data_range)


__all__ = [
    "REPRESENTATIONS",
    "ReconstructionAttack",
    "class_mean_reconstruction",
    "mean_reconstruction",
    "reconstruction_quality",
    "released_representations",
]
