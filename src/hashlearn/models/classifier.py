"""Classifier = backbone + linear head; the victim of backdoor attacks on classifiers.

Saved like :class:`~hashlearn.models.HashModel`: safetensors weights + JSON config.

>>> import torch
>>> model = Classifier("mlp", 3, {"in_features": 4, "hidden": [8]})
>>> model(torch.zeros(2, 4)).shape, model.features(torch.zeros(2, 4)).shape
(torch.Size([2, 3]), torch.Size([2, 8]))
"""

from __future__ import annotations


import numpy as np
from torch import nn

from hashlearn._validation import check_positive_int
from hashlearn.models.inference import batched_outputs
from hashlearn.models.base import BackboneModel



class Classifier(BackboneModel):
    """A backbone followed by one linear layer ``head`` giving class logits.

    ``forward(x)`` returns logits ``(B, n_classes)``; ``features(x)`` the
    penultimate (latent) features ``(B, backbone.out_features)``; the rows of
    ``head.weight`` are one direction per class in that latent space (used by
    the Wasserstein backdoor and by latent-space defenses).

    Parameters
    ----------
    backbone : str
        Registered backbone name (``"mlp"``, ``"small_cnn"``).
    n_classes : int
        Number of classes, at least 2.
    backbone_kwargs : dict
        Arguments of the backbone (JSON-serialisable: they are saved with the weights).
    """

    size_key = "n_classes"

    def __init__(self, backbone: str, n_classes: int, backbone_kwargs: dict | None = None):
        n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
        super().__init__(backbone, backbone_kwargs)
        self.n_classes = n_classes
        self.head = nn.Linear(self.backbone.out_features, self.n_classes)

    def predict_logits(self, x, batch_size: int = 1024) -> np.ndarray:
        """Logits for a numpy array or tensor, in eval mode (the caller's mode is restored)."""
        return batched_outputs(self, x, self.n_classes, batch_size)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Predicted class ids ``(n,)`` int64."""
        return self.predict_logits(x, batch_size=batch_size).argmax(1).astype(np.int64)
