import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hashlearn.attacks.backdoor import ATTACKS, BadNets, PoisonedSet, TargetMapping, make_attack, select_poison_indices


def _data(n=50, n_classes=5, side=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, side, side), dtype=np.float32), np.arange(n) % n_classes


def test_all_to_one_maps_every_label_to_the_target():
    mapping = TargetMapping("all-to-one", target_class=3)
    assert mapping(np.array([0, 3, 4])).tolist() == [3, 3, 3]
    assert mapping(torch.tensor([0, 1])).tolist() == [3, 3]
    assert mapping.source_mask(np.array([0, 3, 4])).tolist() == [True, False, True]


def test_all_to_all_maps_to_next_class_modulo():
    mapping = TargetMapping("all-to-all", n_classes=4)
    assert mapping(np.array([0, 1, 2, 3])).tolist() == [1, 2, 3, 0]
    assert mapping(torch.tensor([3, 0])).tolist() == [0, 1]
    assert mapping.source_mask(np.array([0, 1])).all()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"kind": "one-to-one"}, ValueError),
        ({"kind": "all-to-one", "target_class": -1}, ValueError),
        ({"kind": "all-to-one", "target_class": 5, "n_classes": 5}, ValueError),
        ({"kind": "all-to-one", "target_class": 1.5}, TypeError),
    ],
)
def test_bad_mapping_parameters_raise_typed_errors(kwargs, error):
    with pytest.raises(error):
        TargetMapping(**kwargs)


def test_all_to_all_needs_n_classes_and_labels_below_it():
    with pytest.raises(ValueError, match="n_classes"):
        TargetMapping("all-to-all")(np.array([0, 1]))
    with pytest.raises(ValueError, match="n_classes=2"):
        TargetMapping("all-to-all", n_classes=2)(np.array([0, 2]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(10, 200), rate=st.floats(0.01, 0.5), seed=st.integers(0, 1000))
def test_poisoning_rate_is_exact_and_avoids_the_target_class(n, rate, seed):
    labels = np.arange(n) % 4
    mapping = TargetMapping("all-to-one", target_class=2)
    n_poison = int(round(rate * n))
    if n_poison == 0 or n_poison > (labels != 2).sum():
        with pytest.raises(ValueError):
            select_poison_indices(labels, rate, mapping, seed)
        return
    indices = select_poison_indices(labels, rate, mapping, seed)
    assert len(indices) == n_poison == len(np.unique(indices))
    assert (labels[indices] != 2).all()
    assert np.array_equal(indices, np.sort(indices))
    assert np.array_equal(indices, select_poison_indices(labels, rate, mapping, seed))  # seeded


def test_poison_replaces_exactly_the_chosen_rows():
    X, y = _data()
    attack = BadNets(target_class=1, rate=0.2, seed=3)
    poisoned = attack.poison(X, y)
    assert isinstance(poisoned, PoisonedSet)
    assert len(poisoned.poison_indices) == 10
    mask = poisoned.poison_mask
    assert (poisoned.y[mask] == 1).all() and (poisoned.clean_labels[mask] != 1).all()
    assert np.array_equal(poisoned.y[~mask], y[~mask])
    assert np.array_equal(poisoned.X[~mask], X[~mask])
    assert np.array_equal(poisoned.X[mask], attack.apply_trigger(X[mask]))
    assert not np.array_equal(poisoned.X[mask], X[mask])
    assert np.array_equal(X, _data()[0])  # the caller's arrays are untouched


def test_all_to_all_poisoning_relabels_to_the_next_class():
    X, y = _data(n_classes=5)
    poisoned = BadNets(target="all-to-all", n_classes=5, rate=1.0).poison(X, y)
    assert len(poisoned.poison_indices) == len(y)
    assert np.array_equal(poisoned.y, (y + 1) % 5)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.01, float("nan")])
def test_rate_outside_unit_interval_is_a_value_error(rate):
    with pytest.raises(ValueError, match="rate"):
        BadNets(rate=rate)


def test_rate_of_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="rate"):
        BadNets(rate="0.1")


def test_rate_asking_for_more_than_the_non_target_samples_fails():
    X, y = _data(n_classes=2)
    with pytest.raises(ValueError, match="lower the rate"):
        BadNets(rate=0.9).poison(X, y)


def test_images_outside_unit_range_are_refused():
    X, y = _data()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BadNets().poison(X * 255, y)


def test_unknown_attack_is_a_value_error():
    with pytest.raises(ValueError, match="badnets"):
        make_attack("trojannn")
    assert set(ATTACKS) == {"badnets", "blended", "lira", "wanet", "wb"}


def test_params_and_repr_name_the_settings():
    attack = make_attack("badnets", target_class=2, rate=0.05)
    assert attack.params()["target_class"] == 2
    assert "rate=0.05" in repr(attack)
