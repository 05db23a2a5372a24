"""scikit-learn compatibility of the shallow hashers: estimator checks, clone,
Pipeline, fit_transform, and the pickle-free save / load."""

import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from hashlearn.codes import unpack_bits
from hashlearn.errors import CorruptFileError, NotFittedError
from hashlearn.methods import ITQ, LSH, PCAH, SHALLOW_METHODS, SignHasher, SpectralHashing, build_shallow, load_estimator
from hashlearn.methods.base import ESTIMATOR_ARRAYS, ESTIMATOR_JSON

# sklearn's checks fit on data with 1 to 5 features (make_blobs with 2-3 centres'
# dimensions, 4-column normals). ITQ, PCAH and sign give at most one bit per feature
# and n_bits is a whole number of bytes (>= 8), so on that data they refuse to fit
# with a ValueError by design. Those checks are listed here; the same properties are
# tested below on 20-feature data for every method (test_check_properties_on_wide_data).
_NEEDS_8_FEATURES = "sklearn's check data has < 8 features; this method gives at most n_features bits and n_bits >= 8"
_PCA_LIMITED_FAILURES = {
    name: _NEEDS_8_FEATURES
    for name in [
        "check_dict_unchanged", "check_dont_overwrite_parameters", "check_estimators_dtypes",
        "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
        "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_predict1d",
        "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
        "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
        "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input", "check_transformer_data_not_an_array", "check_transformer_general",
        "check_transformer_preserve_dtypes",
    ]
}


def _expected_failures(estimator):
    return _PCA_LIMITED_FAILURES if isinstance(estimator, (ITQ, PCAH, SignHasher)) else {}


# LSH and SH pass every check (array-API checks skip without SCIPY_ARRAY_API);
# xfail_strict makes a listed check that starts passing fail here, so the list stays honest.
@parametrize_with_checks(
    [LSH(n_bits=8), SpectralHashing(n_bits=8), ITQ(n_bits=8), PCAH(n_bits=8), SignHasher(n_bits=8)],
    expected_failed_checks=_expected_failures,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def wide_data(seed=0, n=200, d=20):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(4, d))
    return (centres[rng.integers(0, 4, n)] + rng.normal(size=(n, d))).astype(np.float32)


def all_estimators(n_bits=16):
    return [build_shallow(name, n_bits=n_bits, random_state=0) for name in SHALLOW_METHODS]


@pytest.mark.parametrize("estimator", all_estimators(), ids=list(SHALLOW_METHODS))
def test_check_properties_on_wide_data(estimator):
    """The properties of the checks listed above, on data wide enough for every method."""
    X = wide_data()
    before = estimator.get_params()
    fitted = clone(estimator).fit(X)
    assert estimator.get_params() == before and not hasattr(estimator, "n_features_in_")  # fit works on a copy
    assert fitted.get_params() == before  # fit does not change parameters
    assert fitted.n_features_in_ == 20
    out = fitted.transform(X)
    assert out.dtype == np.float32 and out.shape == (200, 16)
    # idempotent fit, and the same result for float64 / Fortran-ordered / read-only input
    again = clone(estimator).fit(np.asfortranarray(X.astype(np.float64)))
    np.testing.assert_allclose(again.transform(X), out, rtol=1e-4, atol=1e-4)
    readonly = X.copy()
    readonly.setflags(write=False)
    np.testing.assert_array_equal(fitted.transform(readonly), out)
    # transform is row-wise: subsets and permutations give the same rows (to float32 rounding: BLAS
    # blocks a matrix product by its row count, so the last bits may differ with the batch's size)
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(fitted.transform(X[order]), out[order], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([fitted.transform(X[:70]), fitted.transform(X[70:])]), out,
                               rtol=1e-5, atol=1e-5)
    # pickle (for joblib / multiprocessing use) keeps the transform
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(X), out)
    with pytest.raises(ValueError, match=f"X has 3 features, but {type(estimator).__name__} is expecting 20"):
        fitted.transform(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        fitted.transform(np.full((2, 20), np.nan))


def test_get_set_params_and_clone():
    itq = ITQ(n_bits=16, n_iter=7, random_state=3)
    assert itq.get_params() == {"n_bits": 16, "n_iter": 7, "random_state": 3}
    assert itq.set_params(n_iter=9) is itq and itq.n_iter == 9
    with pytest.raises(ValueError, match="Invalid parameter 'bits'"):
        itq.set_params(bits=8)
    copy = clone(itq.fit(wide_data()))
    assert copy.get_params() == itq.get_params() and not hasattr(copy, "rotation_")
    assert repr(LSH(n_bits=8)) == "LSH(n_bits=8)"  # sklearn repr: only non-default parameters


@pytest.mark.parametrize("name", list(SHALLOW_METHODS))
def test_fit_transform_equals_fit_then_transform(name):
    X = wide_data(2)
    a = build_shallow(name, n_bits=16, random_state=0).fit_transform(X)
    b = build_shallow(name, n_bits=16, random_state=0).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def test_pipeline_with_scaler_and_grid_of_params():
    X = wide_data(3)
    pipe = make_pipeline(StandardScaler(), ITQ(n_bits=16, random_state=0)).fit(X)
    scaled = StandardScaler().fit_transform(X)
    np.testing.assert_allclose(pipe.transform(X), ITQ(n_bits=16, random_state=0).fit(scaled).transform(scaled), atol=1e-5)
    pipe.set_params(itq__n_bits=8).fit(X)
    assert pipe.transform(X).shape == (200, 8)
    assert pipe[-1].encode(scaled).shape == (200, 1)


@pytest.mark.parametrize("name", list(SHALLOW_METHODS))
def test_save_load_round_trip_gives_identical_codes(tmp_path, name):
    X = wide_data(4)
    est = build_shallow(name, n_bits=16, random_state=0).fit(X)
    assert est.save(tmp_path / "model") == tmp_path / "model"
    loaded = load_estimator(tmp_path / "model")
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.encode(X), est.encode(X))
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    meta = json.loads((tmp_path / "model" / ESTIMATOR_JSON).read_text())
    assert meta["method"] == name and meta["format_version"] == 1 and meta["fitted"]["n_features_in_"] == 20
    # no pickle anywhere: the arrays file is safetensors (8-byte header length, then a JSON header)
    raw = (tmp_path / "model" / ESTIMATOR_ARRAYS).read_bytes()
    assert raw[8:9] == b"{" and b"pickle" not in raw and sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(
        [ESTIMATOR_ARRAYS, ESTIMATOR_JSON]
    )


def test_save_load_keeps_list_state_and_generator_seed(tmp_path):
    X = wide_data(5)
    itq = ITQ(n_bits=8, n_iter=5, random_state=np.random.default_rng(0)).fit(X)
    loaded = load_estimator(itq.save(tmp_path))
    assert loaded.quantization_errors_ == pytest.approx(itq.quantization_errors_)
    assert loaded.random_state is None  # a Generator is not JSON; the fitted state does not need it
    assert json.loads((tmp_path / ESTIMATOR_JSON).read_text())["params_not_saved"] == ["random_state"]
    np.testing.assert_array_equal(unpack_bits(loaded.encode(X)), unpack_bits(itq.encode(X)))


def test_save_refuses_unfitted_and_file_target(tmp_path):
    with pytest.raises(NotFittedError):
        LSH(n_bits=8).save(tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="must be a folder"):
        LSH(n_bits=8).fit(wide_data()).save(tmp_path / "file")


def test_save_overwrites_atomically_and_leaves_no_temp_files(tmp_path):
    X = wide_data(6)
    LSH(n_bits=8, random_state=0).fit(X).save(tmp_path)
    second = LSH(n_bits=16, random_state=1).fit(X)
    second.save(tmp_path)
    np.testing.assert_array_equal(load_estimator(tmp_path).encode(X), second.encode(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ESTIMATOR_ARRAYS, ESTIMATOR_JSON])


def test_load_errors_are_typed(tmp_path):
    X = wide_data(7)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_estimator(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no estimator.json"):
        load_estimator(tmp_path)
    folder = LSH(n_bits=8, random_state=0).fit(X).save(tmp_path / "m")
    arrays = folder / ESTIMATOR_ARRAYS
    good = arrays.read_bytes()
    arrays.write_bytes(good[:-4] + b"\0\0\0\0")  # tampered weights
    with pytest.raises(CorruptFileError, match="checksum"):
        load_estimator(folder)
    arrays.unlink()
    with pytest.raises(FileNotFoundError, match="no estimator.safetensors"):
        load_estimator(folder)
    arrays.write_bytes(good)
    meta_path = folder / ESTIMATOR_JSON
    meta = json.loads(meta_path.read_text())
    for change, message in [
        ({"method": "os.system"}, "names the method 'os.system'"),
        ({"kind": "model"}, "does not describe a shallow estimator"),
        ({"format_version": 99}, "newer than this hashlearn reads"),
        ({"params": {"n_bits": 8, "evil": 1}}, "parameters LSH does not take"),
        ({"fitted": {"__class__": 1, "n_features_in_": 20}}, "fitted attribute '__class__'"),
        ({"fitted": {}}, "n_features_in_"),
        ({"arrays": {"mean_": {"dtype": "float32", "shape": [3]}}}, "lists"),
    ]:
        meta_path.write_text(json.dumps({**meta, **change}))
        with pytest.raises(CorruptFileError, match=message):
            load_estimator(folder)
    meta_path.write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        load_estimator(folder)
