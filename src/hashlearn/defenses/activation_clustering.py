"""Activation clustering (Chen et al., 2018): poisoned samples form their own cluster in latent space.

Per class, reduce the latent features to ``n_components`` dimensions, split
them with 2-means, and decide whether the class is poisoned with a rule:

- ``"smaller"``: always flag the smaller cluster (the paper's basic assumption);
- ``"size"``: flag the smaller cluster when its share of the class is below
  ``size_threshold`` (the paper uses 0.35 .. 0.15);
- ``"silhouette"``: flag the smaller cluster when the 2-means silhouette score
  is above ``silhouette_threshold`` (a clean class does not split well).

Reduction is PCA by default: deterministic and, unlike ICA (the paper's
choice, ``reduction="ica"``), it does not whiten, so small noisy directions do
not weigh as much as the dominant one in k-means.
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_features, check_labels, check_positive_int, check_rate

RULES = ("smaller", "size", "silhouette")
REDUCTIONS = ("pca", "ica")


class ActivationClustering:
    """Flag the suspicious cluster of each class (see the module docstring).

    Parameters
    ----------
    n_components : int
        Dimensions after reduction (10 in the paper).
    reduction : {"pca", "ica"}
    rule : {"smaller", "size", "silhouette"}
    size_threshold : float
        For ``rule="size"``: the smaller cluster is poison if its share is below this.
    silhouette_threshold : float
        For ``rule="silhouette"``: the class is poisoned if the silhouette is above this.
    random_state : int
        Seed of k-means (and ICA).

    Attributes
    ----------
    flagged_ : ndarray
        Sorted indices of the flagged samples.
    class_report_ : dict
        Per class: cluster sizes, relative size of the smaller one, silhouette, flagged or not.
    """

    def __init__(self, n_components: int = 10, reduction: str = "pca", rule: str = "size", size_threshold: float = 0.35, silhouette_threshold: float = 0.15, random_state: int = 0):
        self.n_components = n_components
        self.reduction = reduction
        self.rule = rule
        self.size_threshold = size_threshold
        self.silhouette_threshold = silhouette_threshold
        self.random_state = random_state

    def _check_params(self) -> int:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}.")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}.")
        check_rate(self.size_threshold, "size_threshold")
        if not -1.0 <= float(self.silhouette_threshold) <= 1.0:
            raise ValueError(f"silhouette_threshold must be in [-1, 1], got {self.silhouette_threshold}.")
        return check_positive_int(self.n_components, "n_components")

    def _reduce(self, features: np.ndarray, n_components: int) -> np.ndarray:
        from sklearn.decomposition import PCA, FastICA

        n_components = min(n_components, features.shape[1], len(features) - 1)
        if self.reduction == "pca":
            return PCA(n_components, random_state=self.random_state).fit_transform(features)
        # ICA whitens: asking for more components than the centred features' rank divides by zero
        # eigenvalues (dead ReLU units make whole columns constant) and FastICA returns NaN
        singular = np.linalg.svd(features - features.mean(axis=0), compute_uv=False)
        rank = int(np.sum(singular > singular[0] * max(features.shape) * np.finfo(features.dtype).eps)) if singular.size else 0
        if rank == 0:
            return np.zeros((len(features), 1))
        n_components = min(n_components, rank)
        return FastICA(n_components, random_state=self.random_state, max_iter=500, whiten="unit-variance").fit_transform(features)

    def fit(self, features, labels) -> "ActivationClustering":
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        n_components = self._check_params()
        features = check_features(features, "features", dtype=np.float64)
        labels = check_labels(labels, "labels", n_samples=len(features))
        flagged, self.class_report_ = [], {}
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            if len(members) < 4:
                continue
            reduced = self._reduce(features[members], n_components)
            assignment = KMeans(2, n_init=10, random_state=self.random_state).fit_predict(reduced)
            sizes = np.bincount(assignment, minlength=2)
            if sizes.min() == 0:
                continue
            smaller = int(np.argmin(sizes))
            relative = sizes[smaller] / len(members)
            silhouette = float(silhouette_score(reduced, assignment))
            poisoned = {"smaller": True, "size": relative < self.size_threshold, "silhouette": silhouette > self.silhouette_threshold}[self.rule]
            self.class_report_[int(label)] = {
                "sizes": sizes.tolist(), "relative_size": float(relative), "silhouette": silhouette, "flagged": bool(poisoned),
            }
            if poisoned:
                flagged.append(members[assignment == smaller])
        self.flagged_ = np.sort(np.concatenate(flagged)).astype(np.int64) if flagged else np.zeros(0, np.int64)
        return self

    def __repr__(self) -> str:
        return (
            f"ActivationClustering(n_components={self.n_components!r}, reduction={self.reduction!r}, rule={self.rule!r}, "
            f"size_threshold={self.size_threshold!r}, silhouette_threshold={self.silhouette_threshold!r})"
        )
