"""ProS-GAN: a generative targeted attack on deep hashing, trained once, then one forward pass per query."""

from __future__ import annotations

import copy
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hashlearn._io import atomic_write_bytes, atomic_write_json, is_int, read_safetensors_header, read_versioned_json, sha256_bytes, sha256_file
from hashlearn._progress import progress
from hashlearn._validation import check_labels
from hashlearn.attacks.base import AttackResult, HashAttack, _check_float, _check_int, _EvalMode
from hashlearn.codes import sign_to_codes
from hashlearn.errors import CorruptFileError, NotFittedError

FORMAT_VERSION = 1
#: the two files of a saved generator (a folder of its own, e.g. ``RUN_DIR/attack/prosgan_generator/``)
META_FILE, WEIGHTS_FILE = "prosgan.json", "prosgan.safetensors"
#: options that shape the trained networks or their training; a saved generator is reused only if they match
TRAINING_OPTIONS = ("eps", "norm", "clip", "seed", "epochs", "lr", "train_batch_size", "semantic_dim", "width",
                    "hash_weight", "reconstruction_weight", "gan_weight", "prototype_steps")


# -- the three networks -------------------------------------------------------------------

class PrototypeNet(nn.Module):
    """Target label (one-hot or multi-hot ``(B, C)``) -> semantic representation ``(B, d)``,
    prototype outputs in ``[-1, 1]`` ``(B, n_bits)`` and label logits ``(B, C)`` (the label is
    reconstructed from the semantics, so they keep its content)."""

    def __init__(self, n_classes: int, n_bits: int, semantic_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.semantic = nn.Sequential(nn.Linear(n_classes, hidden), nn.ReLU(), nn.Linear(hidden, semantic_dim))
        self.hash = nn.Linear(semantic_dim, n_bits)
        self.classifier = nn.Linear(semantic_dim, n_classes)

    def forward(self, labels: torch.Tensor):
        semantic = self.semantic(labels)
        return semantic, torch.tanh(self.hash(semantic)), self.classifier(semantic)


def _image_geometry(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(C, H, W)`` for images whose sides the convolutional networks can halve twice, else ``None``."""
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) == 3 and shape[1] % 4 == 0 and shape[2] % 4 == 0 and shape[1] >= 8 and shape[2] >= 8:
        return tuple(shape)
    return None


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.InstanceNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """Image and target semantics -> a raw perturbation in ``(-1, 1)`` of the image's shape.

    Images ``(C, H, W)`` (sides divisible by 4) get an encoder-decoder: the semantics are
    decoded into a label map at the image's size, concatenated with the image, encoded at
    half resolution through residual blocks, decoded, concatenated with the image again and
    squashed by ``tanh``. Other inputs (feature vectors) get an MLP on ``[x, semantics]``.
    The attack scales the output to the budget.
    """

    def __init__(self, input_shape: tuple[int, ...], semantic_dim: int = 64, width: int = 16):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.geometry = _image_geometry(self.input_shape)
        if self.geometry is None:
            n_features = int(np.prod(self.input_shape))
            hidden = max(4 * width, 64)
            self.mlp = nn.Sequential(nn.Linear(n_features + semantic_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, n_features))
            return
        channels, height, width_px = self.geometry
        self.label_map = nn.Sequential(nn.Linear(semantic_dim, width * (height // 4) * (width_px // 4)), nn.ReLU())
        self.label_up = nn.Sequential(nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.InstanceNorm2d(width // 2), nn.ReLU(),
                                      nn.ConvTranspose2d(width // 2, 8, 4, 2, 1, bias=False), nn.InstanceNorm2d(8), nn.ReLU())
        self.encoder = nn.Sequential(nn.Conv2d(channels + 8, width, 3, padding=1), nn.InstanceNorm2d(width), nn.ReLU(),
                                     nn.Conv2d(width, 2 * width, 4, 2, 1), nn.InstanceNorm2d(2 * width), nn.ReLU(),
                                     _Residual(2 * width), _Residual(2 * width))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.InstanceNorm2d(width), nn.ReLU())
        self.out = nn.Conv2d(width + channels, channels, 3, padding=1)
        self.width = width

    def forward(self, x: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        if self.geometry is None:
            return torch.tanh(self.mlp(torch.cat([x.flatten(1), semantic], dim=1))).view_as(x)
        channels, height, width_px = self.geometry
        image = x.reshape(len(x), channels, height, width_px)
        label = self.label_map(semantic).view(len(x), self.width, height // 4, width_px // 4)
        hidden = self.encoder(torch.cat([image, self.label_up(label)], dim=1))
        raw = self.out(torch.cat([self.decoder(hidden), image], dim=1))
        return torch.tanh(raw).view_as(x)


class Discriminator(nn.Module):
    """Input -> ``C + 1`` scores: the class it shows and whether it is real (least-squares GAN targets)."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, width: int = 16):
        super().__init__()
        self.geometry = _image_geometry(tuple(input_shape))
        if self.geometry is None:
            n_features, hidden = int(np.prod(input_shape)), max(4 * width, 64)
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                     nn.LeakyReLU(0.2), nn.Linear(hidden, n_classes + 1))
            return
        channels, height, width_px = self.geometry
        self.net = nn.Sequential(nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 2 * width, 4, 2, 1),
                                 nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * width * (height // 4) * (width_px // 4), n_classes + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.geometry is not None:
            x = x.reshape(len(x), *self.geometry)
        return self.net(x)


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (names, dtypes, shapes, values): which victim a generator was trained on."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        array = value.detach().cpu().contiguous()
        digest.update(f"{name}:{array.dtype}:{tuple(array.shape)};".encode())
        digest.update(array.numpy().tobytes() if array.dtype != torch.bfloat16 else array.float().numpy().tobytes())
    return digest.hexdigest()


# -- the attack ---------------------------------------------------------------------------

class ProSGAN(HashAttack):
    """Prototype-supervised adversarial network: learn once to map (image, target label) to a targeted perturbation.

    X. Wang, Z. Zhang, B. Wu, F. Shen, G. Lu, "Prototype-supervised Adversarial
    Network for Targeted Attack of Deep Hashing", CVPR 2021. Three networks are
    trained against the frozen hash model ``f`` (its weights, ``requires_grad`` and
    modes are left as they were):

    * :class:`PrototypeNet` embeds a target label ``y_t`` into a semantic
      representation ``s`` and a prototype code ``p = sign(h)``, fitted to the
      training codes ``B`` of ``f`` by the pairwise likelihood
      ``sum_j log(1 + exp(theta_j)) - S_j theta_j`` with ``theta_j = <h, b_j> / 2``
      and ``S_j = 1`` when training item ``j`` carries ``y_t``, plus label
      reconstruction from ``s`` and a small quantization term ``|h - sign(h)|^2``;
    * :class:`Generator` ``G(x, s)``: ``x_adv = clip(x + eps * G(x, s))``, so every
      output lies within the L-inf budget (``norm="l2"``: projected onto the L2 ball)
      and in the clip range;
    * :class:`Discriminator` ``D`` scores realism and class (least squares, updated
      every third step).

    The generator minimises ``hash_weight * (1 - <f(x_adv), p> / m)
    + reconstruction_weight * mean((x_adv - x)^2) + gan_weight * |D(x_adv) - [y_t, 1]|^2``
    over the training split, a random other class as target per item per step. With
    a validation split the epoch whose validation codes land closest to their
    prototypes is kept. After :meth:`fit` (or :meth:`load`), :meth:`attack` is one
    forward pass.

    Parameters beyond :class:`~hashlearn.attacks.base.HashAttack` (``steps`` is
    not used): ``n_classes`` (default: from the training labels), ``epochs``,
    ``lr`` (Adam, betas 0.5/0.999), ``train_batch_size``, ``semantic_dim``,
    ``width`` (channels of the networks), the three loss weights and
    ``prototype_steps`` (PrototypeNet updates).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from hashlearn.models import HashModel
    >>> _ = torch.manual_seed(0)
    >>> model = HashModel("mlp", 8, {"in_features": 6, "hidden": (8,)})
    >>> x, y = torch.rand(40, 6), np.arange(40) % 2
    >>> attack = ProSGAN(model, eps=0.1, epochs=2, prototype_steps=5).fit(x, y)
    >>> result = attack.attack(torch.rand(3, 6), target_labels=[1, 0, 1])
    >>> result.x_adv.shape, bool(result.records["linf"].max() <= 0.1 + 1e-6)
    (torch.Size([3, 6]), True)
    """

    name = "prosgan"
    targeted = True
    #: the workflow passes the training split (and a folder to keep the trained networks in) to ``from_options``
    needs_training = True

    def __init__(self, model, *, n_classes: int | None = None, epochs: int = 10, lr: float = 1e-3, train_batch_size: int = 64,
                 semantic_dim: int = 64, width: int = 16, hash_weight: float = 5.0, reconstruction_weight: float = 10.0,
                 gan_weight: float = 1.0, prototype_steps: int = 300, steps: int = 1, **kwargs):
        if steps != 1:
            raise ValueError(f"steps must be 1 for ProSGAN (one forward pass of the generator), got {steps!r}; "
                             "its training length is epochs.")
        super().__init__(model, steps=1, **kwargs)
        self.n_classes = None if n_classes is None else _check_int(n_classes, "n_classes", minimum=2)
        self.epochs = _check_int(epochs, "epochs")
        self.lr = _check_float(lr, "lr", minimum=0.0)
        self.train_batch_size = _check_int(train_batch_size, "train_batch_size")
        self.semantic_dim = _check_int(semantic_dim, "semantic_dim")
        self.width = _check_int(width, "width", minimum=2)
        self.hash_weight = _check_float(hash_weight, "hash_weight", minimum=0.0, strict=False)
        self.reconstruction_weight = _check_float(reconstruction_weight, "reconstruction_weight", minimum=0.0, strict=False)
        self.gan_weight = _check_float(gan_weight, "gan_weight", minimum=0.0, strict=False)
        self.prototype_steps = _check_int(prototype_steps, "prototype_steps")

    def _extra_repr(self) -> list[str]:
        return ["n_classes", "epochs", "lr", "hash_weight", "reconstruction_weight", "gan_weight"]

    # -- building -------------------------------------------------------------------------

    @classmethod
    def from_options(cls, model, *, database_codes=None, database_labels=None, steps=None, train_inputs=None, train_labels=None,
                     val_inputs=None, val_labels=None, save_dir=None, **options) -> "ProSGAN":
        """Reuse the generator saved in ``save_dir`` if it was trained against ``model`` with these options;
        otherwise train on ``train_inputs`` / ``train_labels`` (selecting on the validation pair) and save it there.

        ``database_*`` and ``steps`` are not used (the prototypes are learned, the attack is one pass).
        ``attack.reused_`` says which happened.
        """
        if save_dir is not None and (Path(save_dir) / META_FILE).is_file():
            mismatch = saved_mismatch(save_dir, model, options)
            if mismatch is None:
                attack = cls.load(save_dir, model, batch_size=options.get("batch_size", 256))
                attack.reused_ = True
                return attack
        if train_inputs is None or train_labels is None:
            where = f" or a save_dir holding a generator trained against this model with these options (got {save_dir})" if save_dir else ""
            raise ValueError(f"ProSGAN learns its attack before it attacks: pass train_inputs and train_labels (the training split){where}.")
        attack = cls(model, **options).fit(train_inputs, train_labels, val_inputs, val_labels)
        if save_dir is not None:
            attack.save(save_dir)
        attack.reused_ = False
        return attack

    def _fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise NotFittedError("this ProSGAN is not trained: call fit(train_inputs, train_labels) or ProSGAN.load(directory, model) first.")

    def _build_networks(self, input_shape: tuple[int, ...], n_bits: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.prototype_net_ = PrototypeNet(self.n_classes, n_bits, self.semantic_dim)
            self.generator_ = Generator(input_shape, self.semantic_dim, self.width)
            self.discriminator_ = Discriminator(input_shape, self.n_classes, self.width)
        self.input_shape_, self.n_bits_ = tuple(input_shape), int(n_bits)

    def _networks(self) -> dict[str, nn.Module]:
        return {"prototype": self.prototype_net_, "generator": self.generator_, "discriminator": self.discriminator_}

    # -- training -------------------------------------------------------------------------

    def fit(self, x, labels, x_val=None, labels_val=None) -> "ProSGAN":
        """Train PrototypeNet, generator and discriminator against the frozen model on ``(x, labels)``.

        ``labels`` are class ids ``(n,)`` or multi-hot ``(n, C)``; ``(x_val, labels_val)``, if given,
        select the epoch. Returns ``self``; ``training_`` holds the history and timings.
        """
        started = time.perf_counter()
        device = self._device()
        x = self._check_inputs(x, device)
        labels = check_labels(labels, "labels", n_samples=len(x))
        classes = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1
        if self.n_classes is None:
            self.n_classes = max(classes, 2)
        elif classes > self.n_classes:
            raise ValueError(f"labels hold class {classes - 1}, but n_classes={self.n_classes}.")
        validation = None
        if x_val is not None or labels_val is not None:
            if x_val is None or labels_val is None:
                raise ValueError("pass both x_val and labels_val (the validation split), or neither.")
            x_val = self._check_inputs(x_val, device)
            validation = (x_val, check_labels(labels_val, "labels_val", n_samples=len(x_val)))
        multi_hot = torch.as_tensor(self._multi_hot(labels), device=device)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        with _EvalMode(self.model):
            with torch.no_grad():
                codes = torch.where(self._forward_batches(x) > 0, 1.0, -1.0)
            self._build_networks(tuple(x.shape[1:]), codes.shape[1])
            for network in self._networks().values():
                network.to(device).train()
            prototype_seconds = self._fit_prototypes(codes, multi_hot, generator)
            history, best = self._fit_generator(x, labels, multi_hot, validation, generator)
        for network in self._networks().values():
            network.eval()
        if best is not None:
            self.generator_.load_state_dict(best["state"])
        self.training_ = {
            "n_train": int(len(x)), "n_validation": 0 if validation is None else int(len(validation[0])),
            "seconds": time.perf_counter() - started, "prototype_seconds": prototype_seconds,
            "selected_epoch": best["epoch"] if best is not None else self.epochs,
            "selected_val_bits_to_target": best["score"] if best is not None else None, "history": history,
        }
        return self

    def _multi_hot(self, labels: np.ndarray) -> np.ndarray:
        if labels.ndim == 2:
            out = np.zeros((len(labels), self.n_classes), np.float32)
            out[:, : labels.shape[1]] = labels
            return out
        return np.eye(self.n_classes, dtype=np.float32)[labels]

    def _fit_prototypes(self, codes: torch.Tensor, multi_hot: torch.Tensor, generator: torch.Generator) -> float:
        """Pairwise likelihood of prototype outputs against the model's training codes (+ label and quantization terms)."""
        started = time.perf_counter()
        optimizer = torch.optim.Adam(self.prototype_net_.parameters(), lr=self.lr, betas=(0.5, 0.999))
        eye = torch.eye(self.n_classes, device=codes.device)
        present = torch.nonzero(multi_hot.sum(dim=0) > 0).flatten().cpu()
        for _ in range(self.prototype_steps):
            classes = present[torch.randint(len(present), (64,), generator=generator)].to(codes.device)
            target = eye[classes]
            _, outputs, logits = self.prototype_net_(target)
            theta = outputs @ codes.T / 2
            similar = multi_hot[:, classes].T
            likelihood = (F.softplus(theta) - similar * theta).mean()
            loss = likelihood + F.binary_cross_entropy_with_logits(logits, target) + 0.01 * (outputs - outputs.detach().sign()).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.prototype_net_.eval()
        return time.perf_counter() - started

    def _random_targets(self, labels: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """A random class per item, another than its own (single-label) or any (multi-hot)."""
        if labels.ndim == 1:
            offsets = torch.randint(1, self.n_classes, (len(labels),), generator=generator)
            return (torch.as_tensor(labels) + offsets) % self.n_classes
        return torch.randint(self.n_classes, (len(labels),), generator=generator)

    def _semantics(self, classes: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(one-hot targets, semantics, prototype codes in {-1, +1})`` of class ids, without gradients."""
        target = torch.eye(self.n_classes, device=device)[classes.to(device)]
        with torch.no_grad():
            semantic, outputs, _ = self.prototype_net_(target)
        return target, semantic, torch.where(outputs > 0, 1.0, -1.0)

    def _generate(self, x: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        raw = self.generator_(x, semantic)
        delta = self.eps * raw if self.norm == "linf" else self._project(raw * self.eps)
        return x + self._clip(x, delta)

    def _fit_generator(self, x, labels, multi_hot, validation, generator):
        device = x.device
        opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator_.parameters(), lr=self.lr, betas=(0.5, 0.999))
        parameters = list(self.generator_.parameters())
        real, fake = torch.ones(1, 1, device=device), torch.zeros(1, 1, device=device)
        history, best, step = [], None, 0
        if validation is not None:  # fixed validation targets: the same comparison every epoch
            val_targets = self._random_targets(validation[1], torch.Generator().manual_seed(self.seed + 1))
        epochs = range(self.epochs)
        for epoch in progress(epochs, desc="prosgan training", unit="epoch", total=self.epochs):
            began, sums, n_batches = time.perf_counter(), {"hash": 0.0, "gan_g": 0.0, "gan_d": 0.0, "reconstruction": 0.0}, 0
            self.generator_.train()
            for batch in torch.randperm(len(x), generator=generator).split(self.train_batch_size):
                xb = x[batch.to(device)]
                target_classes = self._random_targets(labels[batch.numpy()], generator)
                target, semantic, prototype = self._semantics(target_classes, device)
                x_adv = self._generate(xb, semantic)
                if step % 3 == 0:
                    true_scores = self.discriminator_(xb)
                    fake_scores = self.discriminator_(x_adv.detach())
                    d_loss = (F.mse_loss(true_scores, torch.cat([multi_hot[batch.to(device)], real.expand(len(xb), 1)], 1))
                              + F.mse_loss(fake_scores, torch.cat([target, fake.expand(len(xb), 1)], 1))) / 2
                    opt_d.zero_grad()
                    d_loss.backward()
                    opt_d.step()
                    sums["gan_d"] += d_loss.item()
                hash_loss = 1 - (self.model(x_adv) * prototype).mean()
                gan_loss = F.mse_loss(self.discriminator_(x_adv), torch.cat([target, real.expand(len(xb), 1)], 1))
                reconstruction = F.mse_loss(x_adv, xb)
                g_loss = self.hash_weight * hash_loss + self.gan_weight * gan_loss + self.reconstruction_weight * reconstruction
                # gradients for the generator only: the victim's (and the discriminator's) .grad stay untouched
                grads = torch.autograd.grad(g_loss, parameters)
                for parameter, grad in zip(parameters, grads):
                    parameter.grad = grad
                opt_g.step()
                sums["hash"] += hash_loss.item()
                sums["gan_g"] += gan_loss.item()
                sums["reconstruction"] += reconstruction.item()
                step, n_batches = step + 1, n_batches + 1
            row = {"epoch": epoch + 1, "seconds": time.perf_counter() - began,
                   **{f"{name}_loss": total / max(n_batches, 1) for name, total in sums.items()}}
            if validation is not None:
                row["val_bits_to_target"] = self._validation_score(validation[0], val_targets)
                if best is None or row["val_bits_to_target"] < best["score"]:
                    best = {"epoch": epoch + 1, "score": row["val_bits_to_target"], "state": copy.deepcopy(self.generator_.state_dict())}
            history.append(row)
        return history, best

    def _validation_score(self, x_val: torch.Tensor, targets: torch.Tensor) -> float:
        """Mean Hamming distance of the validation items' attacked codes to their target prototypes."""
        self.generator_.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(x_val), self.batch_size):
                xb = x_val[start : start + self.batch_size]
                _, semantic, prototype = self._semantics(targets[start : start + self.batch_size], xb.device)
                codes = torch.where(self.model(self._generate(xb, semantic)) > 0, 1.0, -1.0)
                total += float((codes != prototype).sum())
        self.generator_.train()
        return total / len(x_val)

    # -- attacking ------------------------------------------------------------------------

    def target_codes_for(self, target_labels) -> np.ndarray:
        """The learned prototype codes (packed, ``(n, n_bits // 8)``) of class ids ``(n,)``."""
        self._fitted()
        classes = self._check_classes(target_labels)
        device = self._device()
        with _EvalMode(self.prototype_net_):
            _, _, prototype = self._semantics(torch.as_tensor(classes), device)
        return sign_to_codes(prototype.cpu())

    def _check_classes(self, target_labels) -> np.ndarray:
        classes = check_labels(target_labels, "target_labels")
        if classes.ndim != 1:
            raise ValueError(f"target_labels must be 1-D class ids, got shape {classes.shape}.")
        if len(classes) and (classes.min() < 0 or classes.max() >= self.n_classes):
            raise ValueError(f"target_labels must be class ids in [0, {self.n_classes}), got values in [{classes.min()}, {classes.max()}].")
        return classes

    def generate(self, x, target_labels) -> torch.Tensor:
        """Only the adversarial inputs: one generator pass, no records (what an attacker runs)."""
        self._fitted()
        with _EvalMode(nn.ModuleList(self._networks().values())), torch.no_grad():
            return self._generate_all(self._check_inputs(x, self._device()), target_labels)[0]

    def _generate_all(self, x: torch.Tensor, target_labels) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_adv, prototype codes in {-1, +1})`` of checked inputs, batch by batch."""
        if tuple(x.shape[1:]) != self.input_shape_:
            raise ValueError(f"x must have items of shape {self.input_shape_} (what the generator was trained on), got {tuple(x.shape[1:])}.")
        classes = torch.as_tensor(self._check_classes(target_labels))
        if len(classes) != len(x):
            raise ValueError(f"target_labels must have one class id per query ({len(x)}), got {len(classes)}.")
        _, semantic, prototype = self._semantics(classes, x.device)
        x_adv = torch.cat([self._generate(x[i : i + self.batch_size], semantic[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])
        return x_adv, prototype

    def attack(self, x, target_codes=None, target_labels=None) -> AttackResult:
        """Perturb ``x`` ``(n, ...)`` toward the prototypes of ``target_labels`` ``(n,)`` in one generator pass.

        The generator is conditioned on labels, not codes: ``target_codes`` are refused.
        ``records["bits_to_target"]`` counts bits to the learned prototype codes.
        """
        self._fitted()
        if target_codes is not None:
            raise ValueError("ProSGAN conditions its generator on target labels: pass target_labels (class ids), not target_codes.")
        if target_labels is None:
            raise ValueError("ProSGAN is targeted: pass target_labels (one class id per query).")
        started = time.perf_counter()
        networks = nn.ModuleList(self._networks().values())
        with _EvalMode(self.model), _EvalMode(networks), torch.no_grad():
            device = self._device()
            x = self._check_inputs(x, device)
            x_adv, prototype = self._generate_all(x, target_labels)
            clean_sign = torch.where(self._forward_batches(x) > 0, 1.0, -1.0)
            adv_outputs = self._forward_batches(x_adv)
        seconds = time.perf_counter() - started
        return AttackResult(x_adv, self._records(x, x_adv, clean_sign, adv_outputs, prototype), seconds)

    # -- persistence ----------------------------------------------------------------------

    def _config(self) -> dict:
        config = {name: getattr(self, name) for name in TRAINING_OPTIONS}
        config["clip"] = None if self.clip is None else list(self.clip)
        return {**config, "n_classes": self.n_classes, "input_shape": list(self.input_shape_), "n_bits": self.n_bits_}

    def save(self, directory: str | Path) -> Path:
        """Write ``prosgan.safetensors`` (the three networks) and ``prosgan.json`` (options, victim fingerprint,
        training record, checksum) into ``directory``, atomically; no pickle."""
        from safetensors.torch import save

        self._fitted()
        directory = Path(directory)
        state = {f"{part}.{key}": value.detach().cpu().contiguous()
                 for part, network in self._networks().items() for key, value in network.state_dict().items()}
        payload = save(state)
        atomic_write_bytes(directory / WEIGHTS_FILE, payload)
        meta = {"format_version": FORMAT_VERSION, "class": "ProSGAN", "config": self._config(),
                "victim_sha256": model_fingerprint(self.model), "training": getattr(self, "training_", None), "sha256": sha256_bytes(payload)}
        atomic_write_json(directory / META_FILE, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, model: nn.Module, *, batch_size: int = 256) -> "ProSGAN":
        """The attack saved by :meth:`save`, against ``model`` -- which must be the model it was trained on.

        ``CorruptFileError`` for damaged, foreign or tampered files (checked before the weights are read);
        ``ValueError`` when ``model`` is not the victim the generator was trained against.
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"no {path.name} in {directory}; expected a folder written by ProSGAN.save.")
        meta = read_versioned_json(meta_path, FORMAT_VERSION)
        config = _check_saved_config(meta, meta_path)
        if meta["victim_sha256"] != model_fingerprint(model):
            raise ValueError(f"the generator in {directory} was trained against another model (its weights differ from the "
                             "model passed); train a new one with ProSGAN(model).fit(...).")
        options = {name: config[name] for name in TRAINING_OPTIONS}
        options["clip"] = None if options["clip"] is None else tuple(options["clip"])
        try:
            attack = cls(model, n_classes=config["n_classes"], batch_size=batch_size, **options)
            with torch.device("meta"):
                attack._build_networks(tuple(config["input_shape"]), config["n_bits"])
                expected = {f"{part}.{key}": ("F32", tuple(value.shape))
                            for part, network in attack._networks().items() for key, value in network.state_dict().items()}
        except (TypeError, ValueError, RuntimeError) as error:
            raise CorruptFileError(f"{meta_path} holds an invalid ProSGAN configuration: {error}") from error
        if read_safetensors_header(weights_path) != expected:
            raise CorruptFileError(f"weights in {weights_path} do not fit the networks described in {meta_path}.")
        if sha256_file(weights_path) != meta["sha256"]:
            raise CorruptFileError(f"{weights_path} does not match the checksum in {meta_path}: the file was changed or truncated.")
        try:
            state = load_file(str(weights_path))
        except Exception as error:  # safetensors raises its own error types
            raise CorruptFileError(f"cannot read weights {weights_path}: {error}") from error
        attack._build_networks(tuple(config["input_shape"]), config["n_bits"])
        device = attack._device()
        for part, network in attack._networks().items():
            network.load_state_dict({key[len(part) + 1 :]: value for key, value in state.items() if key.startswith(part + ".")})
            network.to(device).eval()
        attack.training_ = meta.get("training")
        return attack


def _check_saved_config(meta: dict, path: Path) -> dict:
    if meta.get("class") != "ProSGAN":
        raise CorruptFileError(f"{path} does not describe a ProSGAN (class={meta.get('class')!r:.80}).")
    config = meta.get("config")
    if not isinstance(config, dict) or not isinstance(meta.get("victim_sha256"), str) or not isinstance(meta.get("sha256"), str):
        raise CorruptFileError(f"{path} lacks its config object, victim_sha256 or sha256 string.")
    missing = [name for name in (*TRAINING_OPTIONS, "n_classes", "input_shape", "n_bits") if name not in config]
    if missing:
        raise CorruptFileError(f"{path} lacks the config key(s) {missing}.")
    shape = config["input_shape"]
    if not (isinstance(shape, list) and 1 <= len(shape) <= 4 and all(is_int(v) and 0 < v <= 1 << 16 for v in shape)
            and math.prod(shape) <= 1 << 24 and is_int(config["n_bits"]) and 0 < config["n_bits"] <= 1 << 14
            and is_int(config["n_classes"]) and 1 < config["n_classes"] <= 1 << 16
            and all(is_int(config[name]) and 0 < config[name] <= 1 << 12 for name in ("semantic_dim", "width"))):
        raise CorruptFileError(f"{path} holds an invalid ProSGAN configuration (input_shape, n_bits, n_classes, semantic_dim or width).")
    return config


def saved_mismatch(directory: str | Path, model: nn.Module, options: dict) -> str | None:
    """Why the generator saved in ``directory`` cannot serve ``model`` with ``options`` (``None``: it can).

    Compares the victim fingerprint and every training option given in ``options``
    (the others must equal their defaults); a damaged file raises ``CorruptFileError``.
    """
    meta_path = Path(directory) / META_FILE
    meta = read_versioned_json(meta_path, FORMAT_VERSION)
    config = _check_saved_config(meta, meta_path)
    if meta["victim_sha256"] != model_fingerprint(model):
        return "it was trained against another model"
    defaults = ProSGAN(model)
    for name in TRAINING_OPTIONS:
        wanted = options.get(name, getattr(defaults, name))
        if name == "clip":
            wanted = None if wanted is None else [float(v) for v in wanted]
        saved = config[name]
        if isinstance(wanted, float) or isinstance(saved, float):
            same = isinstance(saved, (int, float)) and isinstance(wanted, (int, float)) and math.isclose(saved, wanted, rel_tol=1e-9)
        else:
            same = saved == wanted
        if not same:
            return f"it was trained with {name}={saved!r}, not {wanted!r}"
    if "n_classes" in options and options["n_classes"] is not None and options["n_classes"] != config["n_classes"]:
        return f"it was trained for n_classes={config['n_classes']}, not {options['n_classes']}"
    return None


__all__ = ["Discriminator", "Generator", "ProSGAN", "PrototypeNet", "model_fingerprint", "saved_mismatch"]
