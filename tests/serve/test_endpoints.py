"""Every endpoint and every request error, against a real ``hashlearn serve`` process."""

from __future__ import annotations

import re
import threading

import httpx
import numpy as np
import pytest

from hashlearn.codes import hamming_distances, reference_search


def test_first_line_names_the_real_port(server):
    assert server.first_line.startswith("serving FlatIndex(n_bits=32, ntotal=1500) on http://127.0.0.1:")
    assert server.port > 0 and server.get("/health").status_code == 200


def test_health_and_info(server):
    assert server.get("/health").json() == {"status": "ok", "ntotal": 1500}
    info = server.get("/info").json()
    assert (info["kind"], info["class"], info["n_bits"], info["n_bytes"], info["ntotal"]) == ("flat", "FlatIndex", 32, 4, 1500)
    assert info["writable"] is False and info["auth"] is False and info["accepts"] == ["queries"]
    assert info["model"] is None and info["file_changed_on_disk"] is False
    assert info["budget"]["max_k"] == 10_000


def test_search_hex_and_byte_lists_match_the_reference(server, digits_codes):
    db, queries = digits_codes["db"], digits_codes["queries"][:20]
    body = {"queries": [q.tobytes().hex() if i % 2 else q.tolist() for i, q in enumerate(queries)], "k": 7}
    response = server.post("/search", body)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    want = reference_search(queries, db, 7)
    np.testing.assert_array_equal(response.json()["ids"], want.ids)
    np.testing.assert_array_equal(response.json()["distances"], want.distances)
    assert "labels" not in response.json()


def test_search_k_defaults_to_10_and_is_clamped_to_the_index(server, digits_codes):
    q = digits_codes["queries"][0].tobytes().hex()
    assert len(server.post("/search", {"queries": [q]}).json()["ids"][0]) == 10
    row = server.post("/search", {"queries": [q], "k": 1600}).json()
    assert len(row["ids"][0]) == len(row["distances"][0]) == 1500  # k is clamped to ntotal (issue 12)
    assert sorted(row["ids"][0]) == list(range(1500))


def test_range_search_matches_the_reference(server, digits_codes):
    db, queries = digits_codes["db"], digits_codes["queries"][:10]
    response = server.post("/range_search", {"queries": [q.tolist() for q in queries], "radius": 6})
    assert response.status_code == 200
    results = response.json()["results"]
    full = hamming_distances(queries, db)
    assert len(results) == len(queries)
    for q, hits in enumerate(results):
        want = np.flatnonzero(full[q] <= 6)
        want = want[np.lexsort((want, full[q, want]))]
        assert hits["ids"] == want.tolist() and hits["distances"] == full[q, want].tolist()
    assert sum(len(h["ids"]) for h in results) > 0  # the radius finds something on these codes


def test_concurrent_clients_get_correct_answers(server, digits_codes):
    db, queries = digits_codes["db"], digits_codes["queries"]
    want = reference_search(queries, db, 5).ids
    failures, done = [], []

    def client(worker: int):
        with httpx.Client(base_url=server.url, timeout=30) as session:  # one keep-alive connection each
            for step in range(15):
                q = (worker * 15 + step) % len(queries)
                got = session.post("/search", json={"queries": [queries[q].tobytes().hex()], "k": 5})
                if got.status_code != 200 or got.json()["ids"] != [want[q].tolist()]:
                    failures.append((q, got.status_code, got.text[:200]))
                done.append(q)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and len(done) == 12 * 15


@pytest.mark.parametrize(
    "body, status, message, loc",
    [
        ({"k": 3}, 422, r"^queries: is required", ["queries"]),
        ({"queries": [], "k": 3}, 422, r"^queries: must be a non-empty list", ["queries"]),
        ({"queries": ["zz00aa11"]}, 422, r"^queries\[0\]: is not a valid hex string", ["queries", 0]),
        ({"queries": ["00ff"]}, 422, r"^queries\[0\]: has 2 bytes; this index holds 4-byte \(32-bit\) codes", ["queries", 0]),
        ({"queries": [[1, 2, 3, 4], [1, 2, 3, 300]]}, 422, r"^queries\[1\]: byte values must be integers in 0..255", ["queries", 1]),
        ({"queries": [[1, 2, 3, 4], 7]}, 422, r"^queries\[1\]: must be a hex string or a list of integers", ["queries", 1]),
        ({"queries": [[1, 2, 3, 4]], "k": 0}, 422, r"^k: must be an integer in 1..10000, got 0", ["k"]),
        ({"queries": [[1, 2, 3, 4]], "k": 10001}, 422, r"^k: must be an integer in 1..10000", ["k"]),
        ({"queries": [[1, 2, 3, 4]], "k": "5"}, 422, r"^k: Input should be a valid integer", ["k"]),
        ({"queries": [[1, 2, 3, 4]], "k": True}, 422, r"^k: Input should be a valid integer", ["k"]),
        ({"queries": [[1, 2, 3, 4]], "topk": 3}, 422, r"^topk: unknown key; SearchRequest takes queries, .*k", ["topk"]),
        ({"inputs": [[0.5] * 64]}, 422, r"^inputs: this server has no model", ["inputs"]),
        ({"texts": ["a cat"]}, 422, r"^texts: this server has no model", ["texts"]),
        ({"queries": ["00000000"], "texts": ["x"]}, 422, r"^texts: send only one of queries, texts", ["texts"]),
    ],
)
def test_search_validation_errors_name_the_field(server, body, status, message, loc):
    response = server.post("/search", body)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    error = response.json()
    assert re.search(message, error["error"]), error["error"]
    assert error["detail"][0]["loc"] == loc


def test_range_search_validation(server):
    missing = server.post("/range_search", {"queries": [[0, 0, 0, 0]]})
    assert missing.status_code == 422 and missing.json()["error"] == "radius: Field required"
    too_far = server.post("/range_search", {"queries": [[0, 0, 0, 0]], "radius": 33})
    assert too_far.status_code == 422 and too_far.json()["error"] == "radius: must be an integer in 0..32, got 33."
    negative = server.post("/range_search", {"queries": [[0, 0, 0, 0]], "radius": -1})
    assert negative.status_code == 422 and "0..32" in negative.json()["error"]
    assert server.post("/range_search", {"queries": [[0, 0, 0, 0]], "radius": 3, "k": 2}).json()["error"].startswith("k: unknown key")


def test_http_level_errors_are_json(server):
    not_json = server.client.post("/search", content=b"{not json")
    assert not_json.status_code == 400 and not_json.json()["error"].startswith("the request body is not valid JSON")
    array = server.client.post("/search", content=b"[1, 2]")
    assert array.status_code == 422 and array.json()["error"] == "body: the request body must be a JSON object"
    empty = server.client.post("/search", content=b"")
    assert empty.status_code == 400
    form = server.client.post("/search", content=b'{"queries": ["00000000"], "k": 1}',
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 200  # like the previous service: any content type is read as JSON
    nowhere = server.get("/nowhere")
    assert nowhere.status_code == 404 and "POST /search" in nowhere.json()["error"]
    wrong_method = server.get("/search")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "/search does not accept GET; allowed: POST."
    assert server.post("/health", {}).status_code == 405
    for response in (not_json, array, nowhere, wrong_method):
        assert response.headers["content-type"] == "application/json"


def test_encode_without_a_model(server):
    response = server.post("/encode", {"inputs": [[0.0] * 64]})
    assert response.status_code == 422 and "no model" in response.json()["error"]
    assert server.post("/encode", {"queries": ["00000000"]}).status_code == 422


def test_writes_refused_on_a_read_only_server(server):
    assert server.post("/add", {"codes": ["00000000"]}).status_code == 403
    refused = server.post("/remove", {"ids": [1]})
    assert refused.status_code == 403 and "--writable" in refused.json()["error"]
    assert server.get("/health").json()["ntotal"] == 1500


def test_openapi_describes_every_request_and_response(server):
    schema = server.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/health", "/info", "/search", "/range_search", "/encode", "/add", "/remove"}
    body = paths["/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "SearchRequest" and body["additionalProperties"] is False
    assert set(body["properties"]) == {"queries", "inputs", "texts", "images", "k", "query_vectors"}
    assert "SearchResponse" in schema["components"]["schemas"] and "ErrorResponse" in schema["components"]["schemas"]
    docs = server.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
