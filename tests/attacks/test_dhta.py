import numpy as np
import pytest
import torch

from hashlearn.attacks import DHTA, P2P
from hashlearn.attacks.dhta import majority_code
from hashlearn.codes import codes_to_pm1, hamming_distances, pack_bits, unpack_bits


def test_majority_code_against_a_loop():
    rng = np.random.default_rng(0)
    codes = rng.choice([-1.0, 1.0], size=(4, 24))
    expected = [1 if sum(codes[:, j]) >= 0 else 0 for j in range(24)]
    assert majority_code(codes).tolist() == expected
    assert majority_code(np.array([[1.0, -1.0], [-1.0, 1.0]])).tolist() == [1, 1]  # ties give bit 1


def test_anchor_is_the_majority_of_k_items_of_the_target_label(database):
    db_codes, db_labels = database
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh())
    attack = DHTA(model, db_codes, db_labels, k=5, seed=2)
    targets = np.array([3, 3, 7])
    anchors = unpack_bits(attack.target_codes_for(targets))
    # reference: replay the same draws and vote by a loop
    rng = np.random.default_rng(2)
    pm1 = codes_to_pm1(db_codes)
    for row, label in enumerate(targets):
        chosen = rng.choice(np.flatnonzero(db_labels == label), size=5, replace=False)
        assert (db_labels[chosen] == label).all()
        votes = pm1[chosen].sum(0)
        assert anchors[row].tolist() == [int(v >= 0) for v in votes]


def test_p2p_anchor_is_a_database_code_of_the_target_label(database):
    db_codes, db_labels = database
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh())
    anchors = P2P(model, db_codes, db_labels).target_codes_for([4, 9])
    distances = hamming_distances(anchors, db_codes)
    for row, label in enumerate([4, 9]):
        assert (db_labels[distances[row] == 0] == label).any()


def test_dhta_moves_codes_toward_the_target(trained_model, queries, database):
    x, y = queries
    db_codes, db_labels = database
    targets = (y + 1) % 10
    attack = DHTA(trained_model, db_codes, db_labels, k=5, eps=0.2, steps=30)
    anchors = attack.target_codes_for(targets)
    before = hamming_distances(trained_model.encode(x), anchors).diagonal()
    result = attack.attack(x, target_codes=anchors)
    after = hamming_distances(trained_model.encode(result.x_adv), anchors).diagonal()
    np.testing.assert_array_equal(result.records["bits_to_target"], after)
    assert after.mean() < 0.5 * before.mean()
    assert (result.x_adv - x).abs().max() <= 0.2 + 1e-6


def test_multi_hot_database_labels(database):
    db_codes, db_labels = database
    multi_hot = np.eye(10, dtype=np.uint8)[db_labels]
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh())
    single = DHTA(model, db_codes, db_labels, k=3, seed=1).target_codes_for([2, 5])
    multi = DHTA(model, db_codes, multi_hot, k=3, seed=1).target_codes_for([2, 5])
    np.testing.assert_array_equal(single, multi)


def test_targeted_errors(trained_model, queries, database):
    x, _ = queries
    db_codes, db_labels = database
    attack = DHTA(trained_model, db_codes, db_labels, steps=1)
    with pytest.raises(ValueError, match="exactly one"):
        attack.attack(x)
    with pytest.raises(ValueError, match="exactly one"):
        attack.attack(x, target_codes=db_codes[: len(x)], target_labels=np.zeros(len(x), int))
    with pytest.raises(ValueError, match="no database item"):
        attack.attack(x, target_labels=np.full(len(x), 42))
    with pytest.raises(ValueError, match="k"):
        DHTA(trained_model, db_codes, db_labels, k=0)
    with pytest.raises(ValueError, match="k must be 1"):
        P2P(trained_model, db_codes, db_labels, k=3)
    with pytest.raises(ValueError, match="database_labels"):
        DHTA(trained_model, db_codes, db_labels[:-1])
    with pytest.raises(TypeError, match="database_codes"):
        DHTA(trained_model, db_codes.astype(np.int32), db_labels)
    with pytest.raises(ValueError, match="target_codes"):
        attack.attack(x, target_codes=pack_bits(np.zeros((len(x), 8), np.uint8)))  # 8 bits, model has 16
