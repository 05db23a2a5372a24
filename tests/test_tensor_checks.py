import numpy as np
import pytest
import torch

from hashlearn._tensor_checks import as_tensor, check_feature_targets, check_outputs, labels_to_multi_hot


def test_check_outputs_passes_good_tensors_through():
    outputs = torch.zeros(3, 8, dtype=torch.float64)
    assert check_outputs(outputs, 8) is outputs
    assert check_outputs(outputs) is outputs  # n_bits unknown: any width


def test_labels_become_multi_hot_in_the_outputs_dtype():
    like = torch.zeros(3, 4, dtype=torch.float64)
    from_ids = labels_to_multi_hot(torch.tensor([2, 0, 2]), 3, like)
    assert from_ids.dtype == torch.float64
    assert from_ids.tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 1]]
    from_numpy = labels_to_multi_hot(np.array([[1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=np.uint8), 3, like)
    assert from_numpy.tolist() == [[1, 1, 0], [0, 0, 0], [0, 1, 1]]
    assert labels_to_multi_hot(torch.tensor([1, 0, 1], dtype=torch.int32), 2, like).sum().item() == 3


def test_as_tensor_refuses_lists():
    with pytest.raises(TypeError, match="labels must be a torch.Tensor"):
        as_tensor([1, 2], "labels")


def test_feature_targets_are_cast_and_checked():
    like = torch.zeros(2, 8, dtype=torch.float64)
    features = check_feature_targets(np.ones((2, 3), dtype=np.float32), like)
    assert features.dtype == torch.float64 and features.shape == (2, 3)
    with pytest.raises(TypeError, match="float feature vectors"):
        check_feature_targets(torch.ones(2, 3, dtype=torch.int64), like)
    with pytest.raises(ValueError, match="infinite"):
        check_feature_targets(torch.tensor([[1.0], [float("inf")]]), like)
