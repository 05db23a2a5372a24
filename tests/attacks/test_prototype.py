import numpy as np
import torch

from hashlearn.attacks import PrototypeAttack
from hashlearn.codes import codes_to_pm1, hamming_distances, unpack_bits


def test_prototype_is_the_sign_of_the_class_mean(database):
    db_codes, db_labels = database
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh())
    attack = PrototypeAttack(model, db_codes, db_labels)
    targets = np.array([0, 5, 0, 9])
    bits = unpack_bits(attack.target_codes_for(targets))
    pm1 = codes_to_pm1(db_codes)
    for row, label in enumerate(targets):
        mean = pm1[db_labels == label].mean(axis=0)
        assert bits[row].tolist() == [int(m >= 0) for m in mean]
    assert attack.target_codes_for(np.zeros(0, int)).shape == (0, 2)


def test_prototype_attack_moves_codes_toward_the_target(trained_model, queries, database):
    x, y = queries
    db_codes, db_labels = database
    targets = (y + 3) % 10
    attack = PrototypeAttack(trained_model, db_codes, db_labels, eps=0.2, steps=30)
    prototypes = attack.target_codes_for(targets)
    before = hamming_distances(trained_model.encode(x), prototypes).diagonal()
    result = attack.attack(x, target_labels=targets)
    after = result.records["bits_to_target"]
    assert after.mean() < 0.5 * before.mean()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert "PrototypeAttack(eps=0.2" in repr(attack)
