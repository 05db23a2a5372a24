import numpy as np
import pytest

from hashlearn.defenses import ActivationClustering, detection_rates


@pytest.mark.parametrize("rule, reduction", [("size", "pca"), ("silhouette", "pca"), ("size", "ica")])
def test_flags_a_planted_separable_cluster(rule, reduction, planted_features):
    features, labels, poison = planted_features(poison_share=0.25, shift=6.0, d=20)
    detector = ActivationClustering(rule=rule, reduction=reduction, size_threshold=0.35, silhouette_threshold=0.25).fit(features, labels)
    tpr, fpr = detection_rates(detector.flagged_, poison, len(labels))
    assert tpr >= 0.95 and fpr <= 0.02
    assert detector.class_report_[0]["flagged"] and not detector.class_report_[1]["flagged"]


def test_smaller_rule_flags_a_cluster_in_every_class(planted_features):
    features, labels, poison = planted_features(poison_share=0.25, shift=6.0, d=20)
    detector = ActivationClustering(rule="smaller").fit(features, labels)
    tpr, _ = detection_rates(detector.flagged_, poison, len(labels))
    assert tpr >= 0.95
    assert set(np.unique(labels[detector.flagged_])) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "kwargs, error",
    [({"rule": "largest"}, ValueError), ({"reduction": "tsne"}, ValueError), ({"n_components": 0}, ValueError), ({"size_threshold": 0}, ValueError), ({"silhouette_threshold": 2}, ValueError)],
)
def test_bad_parameters(kwargs, error, planted_features):
    features, labels, _ = planted_features(n_per_class=10)
    with pytest.raises(error):
        ActivationClustering(**kwargs).fit(features, labels)


def test_tiny_classes_are_skipped():
    detector = ActivationClustering().fit(np.random.default_rng(0).normal(size=(3, 4)), np.array([0, 0, 1]))
    assert detector.flagged_.size == 0


def test_ica_on_rank_deficient_features_with_dead_units(planted_features):
    # dead ReLU units (constant-zero columns) and duplicated columns made FastICA whiten by zero
    # eigenvalues and fail with NaN; the components are capped to the features' rank
    features, labels, poison = planted_features(poison_share=0.25, shift=6.0, d=6)
    features = np.hstack([features, np.zeros((len(features), 30)), features[:, :3]])
    detector = ActivationClustering(rule="size", reduction="ica", size_threshold=0.35).fit(features, labels)
    tpr, fpr = detection_rates(detector.flagged_, poison, len(labels))
    assert tpr >= 0.95 and fpr <= 0.02
