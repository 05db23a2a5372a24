"""The vertical split: each party's columns, what it sends, gradients through the hashed embeddings."""

import pytest
import torch

from hashlearn.models.vertical import VerticalSplitModel, straight_through_sign


def test_party_slices_tile_the_image_left_to_right():
    model = VerticalSplitModel(image_shape=(6, 7), n_classes=3, n_parties=3, embedding_dim=4)
    x = torch.arange(2 * 6 * 7, dtype=torch.float32).view(2, 6, 7)
    parts = model.party_inputs(x)
    assert model.party_columns == [(0, 2), (2, 5), (5, 7)]
    assert [tuple(p.shape) for p in parts] == [(2, 6, 2), (2, 6, 3), (2, 6, 2)]
    assert torch.equal(torch.cat(parts, dim=2), x)
    for layout in (x.view(2, 1, 6, 7), x.view(2, 42)):  # channel and flat layouts give the same slices
        assert all(torch.equal(a, b) for a, b in zip(model.party_inputs(layout), parts))


@pytest.mark.parametrize("hashed", [False, True])
def test_shapes_and_what_is_sent(hashed):
    torch.manual_seed(0)
    model = VerticalSplitModel(image_shape=(8, 8), n_classes=5, embedding_dim=6, bottom_hidden=(10,), top_hidden=(), hash_embeddings=hashed)
    x = torch.rand(4, 8, 8)
    sent = model.embeddings(x)
    assert [tuple(s.shape) for s in sent] == [(4, 6), (4, 6)] and tuple(model(x).shape) == (4, 5)
    values = torch.cat(sent).flatten()
    if hashed:
        assert set(values.tolist()) <= {-1.0, 1.0}
    else:
        assert values.abs().max() < 1 and len(set(values.tolist())) > 2
    # the top model sees the parties' messages and nothing else
    with torch.no_grad():
        assert torch.equal(model(x), model.top(torch.cat(sent, dim=1)))


def test_party_b_embedding_depends_only_on_party_b_columns():
    torch.manual_seed(0)
    model = VerticalSplitModel(image_shape=(8, 8), n_classes=3, embedding_dim=4)
    x = torch.rand(3, 8, 8)
    changed = x.clone()
    changed[:, :, :4] = torch.rand(3, 8, 4)  # party A's half only
    a, b = model.embeddings(x), model.embeddings(changed)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[0], b[0])


def test_straight_through_sign_passes_gradients_to_the_bottom_models():
    x = torch.tensor([-0.3, 0.0, 0.4], requires_grad=True)
    out = straight_through_sign(x)
    assert out.tolist() == [-1.0, -1.0, 1.0]
    out.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    torch.manual_seed(0)
    model = VerticalSplitModel(image_shape=(8, 8), n_classes=3, embedding_dim=4, hash_embeddings=True)
    torch.nn.functional.cross_entropy(model(torch.rand(5, 8, 8)), torch.tensor([0, 1, 2, 0, 1])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.bottoms[1].parameters())


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="image_shape"):
        VerticalSplitModel(image_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="n_parties"):
        VerticalSplitModel(image_shape=(4, 3), n_parties=4)
    with pytest.raises(ValueError, match="n_parties"):
        VerticalSplitModel(n_parties=1)
    with pytest.raises(ValueError, match="bottom_hidden"):
        VerticalSplitModel(bottom_hidden=(0,))
    with pytest.raises(TypeError, match="hash_embeddings"):
        VerticalSplitModel(hash_embeddings="yes")
    with pytest.raises(ValueError, match=r"inputs must be images \(B, 28, 28\)"):
        VerticalSplitModel()(torch.rand(2, 27, 28))
