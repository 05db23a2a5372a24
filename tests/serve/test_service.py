"""The request logic without a subprocess: parsing, limits' validation, and indexes that
need more than codes (two-stage float re-ranking) served in process."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from hashlearn.index import FlatIndex
from hashlearn.serve import Budget, Limits, SearchService, ServiceError, make_server
from hashlearn.serve.service import parse_codes


def test_parse_codes_hex_bytes_and_errors():
    codes = parse_codes(["00ff10ab", [1, 2, 3, 4]], 4)
    assert codes.dtype == np.uint8 and codes.tolist() == [[0, 255, 16, 171], [1, 2, 3, 4]]
    assert parse_codes(["00ff10ab"] * 3, 4).tolist() == [[0, 255, 16, 171]] * 3
    with pytest.raises(ServiceError, match=r"queries\[1\]: is not a valid hex string") as error:
        parse_codes(["00ff10ab", "00ff10ag"], 4)
    assert error.value.status == 422 and error.value.loc == ("queries", 1)
    with pytest.raises(ServiceError, match=r"codes\[0\]: has 3 bytes; this index holds 4-byte"):
        parse_codes([[1, 2, 3]], 4, "codes")
    with pytest.raises(ServiceError, match="non-empty"):
        parse_codes([], 4)


@pytest.mark.parametrize("bad", [{"max_k": 0}, {"max_queries": -1}, {"max_scan": 1.5}, {"max_results": True}])
def test_budget_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match=f"Budget.{next(iter(bad))} must be a positive integer"):
        Budget(**bad)


@pytest.mark.parametrize("bad", [{"header_timeout": 0}, {"max_body_bytes": -5}, {"max_connections": "9"}])
def test_limits_reject_non_positive_numbers(bad):
    with pytest.raises(ValueError, match=f"Limits.{next(iter(bad))} must be a positive number"):
        Limits(**bad)


def test_service_and_server_argument_checks():
    with pytest.raises(TypeError, match="BinaryIndex"):
        SearchService(np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="writable=True needs the index file"):
        SearchService(FlatIndex(32), writable=True)
    with pytest.raises(TypeError, match="BinaryIndex or a SearchService"):
        make_server([1, 2], "127.0.0.1", 0)
    with pytest.raises(ValueError, match="port must be an integer in 0..65535"):
        make_server(FlatIndex(32), "127.0.0.1", 70000)


def test_float_reranking_index_over_http():
    """A TwoStageIndex re-ranking by cosine takes query_vectors; missing results come back as null."""
    from hashlearn.index.two_stage import TwoStageIndex

    rng = np.random.default_rng(32)
    codes, queries = rng.integers(0, 256, size=(300, 4), dtype=np.uint8), rng.integers(0, 256, size=(6, 4), dtype=np.uint8)
    vectors, query_vectors = rng.normal(size=(len(codes), 6)), rng.normal(size=(len(queries), 6))
    index = TwoStageIndex(32, FlatIndex(16), n_candidates=50, rerank="cosine")
    index.add(codes, vectors=vectors)
    small = TwoStageIndex(32, FlatIndex(16), rerank="l2")
    small.add(codes[:2], vectors=vectors[:2])
    for served, k in ((index, 5), (small, 4)):
        server = make_server(served, "127.0.0.1", 0)
        thread = server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                body = {"queries": [q.tolist() for q in queries], "k": k, "query_vectors": query_vectors.tolist()}
                result = client.post("/search", json=body).json()
                want = served.search(queries, k, query_vectors=query_vectors)
                assert result["ids"] == want.ids.tolist()
                got = np.array([[np.inf if d is None else d for d in row] for row in result["distances"]])
                np.testing.assert_allclose(got, want.distances, rtol=1e-6)
                missing = client.post("/search", json={"queries": [queries[0].tolist()]})
                assert missing.status_code == 422 and "query_vectors is required" in missing.json()["error"]
                bad = client.post("/search", json={"queries": [queries[0].tolist()], "query_vectors": [[1, "x"]]})
                assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][0] == "query_vectors"
                short = client.post("/search", json={"queries": [queries[0].tolist()], "query_vectors": []})
                assert short.status_code == 422 and "one vector per query" in short.json()["error"]
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()
    assert (small.search(queries, 4, query_vectors=query_vectors).ids[:, 2:] == -1).all()
