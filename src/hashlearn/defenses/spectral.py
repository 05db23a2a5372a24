"""Spectral signatures (Tran, Li & Madry, NeurIPS 2018): poison shows up along the top singular vector.

Per class, centre the latent features, take the top right singular vector
``v`` and score each sample by ``((f_i - mean) . v)^2``; flag the
highest-scoring ``multiplier * poison_fraction`` of every class (the paper
removes 1.5 epsilon).

``poison_fraction`` is the defender's guess of the share of poisoned samples in
an attacked class (Tran et al.'s epsilon). The method is meant for a
minority of poison in a class: when a class is about half poison, both
clusters lie equally far from the centre and the scores cannot tell them apart.
"""

from __future__ import annotations

import numpy as np

from hashlearn._validation import check_features, check_labels, check_positive_float, check_rate


def spectral_scores(features) -> np.ndarray:
    """Squared projection of the centred ``features (n, d)`` on their top right singular vector.

    >>> f = np.array([[0.0, 0.0], [0.0, 0.1], [0.0, -0.1], [5.0, 0.0]])
    >>> int(np.argmax(spectral_scores(f)))
    3
    """
    features = np.asarray(features, dtype=np.float64)
    centred = features - features.mean(0)
    if len(features) < 2 or not np.any(centred):
        return np.zeros(len(features))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


class SpectralSignature:
    """Flag, per class, the samples with the largest spectral-signature score.

    Parameters
    ----------
    poison_fraction : float
        Expected share of poisoned samples in an attacked class, in ``(0, 1]``.
    multiplier : float
        How many times ``poison_fraction`` of each class to flag (1.5 in the paper).

    Attributes
    ----------
    scores_ : ndarray (n,)
        The score of every sample within its class.
    flagged_ : ndarray
        Sorted indices of the flagged samples.
    """

    def __init__(self, poison_fraction: float = 0.1, multiplier: float = 1.5):
        self.poison_fraction = poison_fraction
        self.multiplier = multiplier

    def fit(self, features, labels) -> "SpectralSignature":
        fraction = check_rate(self.poison_fraction, "poison_fraction")
        multiplier = check_positive_float(self.multiplier, "multiplier")
        features = check_features(features, "features", dtype=np.float64)
        labels = check_labels(labels, "labels", n_samples=len(features))
        self.scores_ = np.zeros(len(features))
        flagged = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            scores = spectral_scores(features[members])
            self.scores_[members] = scores
            n_flag = min(len(members), int(round(multiplier * fraction * len(members))))
            order = np.lexsort((members, -scores))  # highest score first, ties by index
            flagged.append(members[order[:n_flag]])
        self.flagged_ = np.sort(np.concatenate(flagged)).astype(np.int64)
        return self

    def __repr__(self) -> str:
        return f"SpectralSignature(poison_fraction={self.poison_fraction!r}, multiplier={self.multiplier!r})"
