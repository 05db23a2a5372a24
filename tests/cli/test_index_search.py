"""``hashlearn index build|info`` and ``hashlearn search`` end to end, through main()."""

from __future__ import annotations

import numpy as np
import pytest

from hashlearn.cli.main import main
from hashlearn.codes import hamming_distances, reference_search, sign_to_codes
from hashlearn.index.io import load_index


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(41)
    codes = rng.integers(0, 256, size=(300, 8), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(9, 8), dtype=np.uint8)
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "queries.npy", queries)
    return tmp_path, codes, queries


@pytest.mark.parametrize("factory", ["Flat", "MIH4", "TwoStage(Flat,Flat)", "Shard2(Flat)"])
def test_build_then_search(files, factory, capsys):
    tmp, codes, queries = files
    out = tmp / "index.hlx"
    assert main(["index", "build", "--codes", str(tmp / "codes.npy"), "--factory", factory, "-o", str(out), "-q"]) == 0
    assert load_index(out).ntotal == 300
    assert main(["search", "--index", str(out), "--queries", str(tmp / "queries.npy"), "-k", "5", "-o", str(tmp / "r.npz"), "-q"]) == 0
    with np.load(tmp / "r.npz", allow_pickle=False) as result:
        if factory.startswith("TwoStage"):  # approximate: check the distances it reports
            full = hamming_distances(queries, codes)
            np.testing.assert_array_equal(result["distances"], np.take_along_axis(full, result["ids"], axis=1))
        else:
            want = reference_search(queries, codes, 5)
            np.testing.assert_array_equal(result["ids"], want.ids)
            np.testing.assert_array_equal(result["distances"], want.distances)


def test_build_from_outputs_with_ids_and_radius_search(files, capsys):
    tmp, _, _ = files
    rng = np.random.default_rng(42)
    outputs = np.tanh(rng.normal(size=(120, 16))).astype(np.float32)
    ids = np.arange(120, dtype=np.int64) * 10
    np.save(tmp / "outputs.npy", outputs)
    np.save(tmp / "ids.npy", ids)
    np.save(tmp / "qout.npy", outputs[:4])
    out = tmp / "o.hlx"
    assert main(["index", "build", "--outputs", str(tmp / "outputs.npy"), "--ids", str(tmp / "ids.npy"), "-o", str(out)]) == 0
    assert "120 codes x 16 bits" in capsys.readouterr().out
    assert main(["search", "--index", str(out), "--query-outputs", str(tmp / "qout.npy"), "--radius", "3", "-o", str(tmp / "r.npz")]) == 0
    codes = sign_to_codes(outputs)
    full = hamming_distances(codes[:4], codes)
    with np.load(tmp / "r.npz") as result:
        lims, found = result["lims"], result["ids"]
        for q in range(4):
            hit = np.flatnonzero(full[q] <= 3)
            assert sorted(found[lims[q] : lims[q + 1]]) == sorted(ids[hit])
    capsys.readouterr()
    assert main(["search", "--index", str(out), "--query-outputs", str(tmp / "qout.npy"), "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("0\t0:0")  # query 0 finds itself (id 0) at distance 0


def test_info(files, capsys):
    tmp, _, _ = files
    out = tmp / "index.hlx"
    main(["index", "build", "--codes", str(tmp / "codes.npy"), "-o", str(out), "-q"])
    assert main(["index", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kind:            flat" in text and "n_bits:          64" in text and "checksums:       ok" in text


def test_errors_are_reported_not_raised(files, capsys):
    tmp, _, _ = files
    out = tmp / "index.hlx"
    assert main(["index", "build", "--codes", str(tmp / "codes.npy"), "--factory", "Nope", "-o", str(out)]) == 2
    assert "unknown index description 'Nope'" in capsys.readouterr().err and not out.exists()
    np.save(tmp / "bad.npy", np.zeros((3, 8), dtype=np.float64))
    assert main(["index", "build", "--codes", str(tmp / "bad.npy"), "-o", str(out)]) == 2
    assert "dtype uint8" in capsys.readouterr().err
    (tmp / "broken.hlx").write_bytes(b"\x89HLX\r\n\x1a\n" + b"\0" * 20)
    assert main(["index", "info", str(tmp / "broken.hlx")]) == 2
    assert main(["search", "--index", str(tmp / "missing.hlx"), "--queries", str(tmp / "queries.npy")]) == 2
    assert "not found" in capsys.readouterr().err
