"""API key, request budget, binding rules, and an index file changed under a live server."""

from __future__ import annotations

import os
import shutil

import httpx
import numpy as np
import pytest

from hashlearn.codes import reference_search


# --- the API key -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed(index_file, start_server, helpers):
    return start_server("--index", str(index_file), "--api-key", helpers.API_KEY)


def test_api_key_is_required_except_for_health(keyed, helpers):
    body = {"queries": ["00000000"], "k": 1}
    with httpx.Client(base_url=keyed.url, timeout=30) as anonymous:
        assert anonymous.get("/health").status_code == 200
        for response in (anonymous.post("/search", json=body), anonymous.get("/info"),
                         anonymous.post("/search", json=body, headers={"X-API-Key": helpers.API_KEY + "x"}),
                         anonymous.post("/search", json=body, headers={"Authorization": "Basic " + helpers.API_KEY})):
            assert response.status_code == 401 and "API key" in response.json()["error"]
            assert response.headers["www-authenticate"] == "Bearer"
        assert anonymous.post("/search", json=body, headers={"X-API-Key": helpers.API_KEY}).status_code == 200
        assert anonymous.post("/search", json=body, headers={"Authorization": f"Bearer {helpers.API_KEY}"}).status_code == 200
        info = anonymous.get("/info", headers={"X-API-Key": helpers.API_KEY}).json()
        assert info["auth"] is True


def test_unauthenticated_request_is_refused_before_its_body_is_parsed(keyed):
    with httpx.Client(base_url=keyed.url, timeout=30) as anonymous:
        response = anonymous.post("/search", content=b"{not json at all")
    assert response.status_code == 401


def test_api_key_from_the_environment(index_file, start_server, helpers):
    server = start_server("--index", str(index_file), env={"HASHLEARN_API_KEY": helpers.API_KEY})
    assert server.post("/search", {"queries": ["00000000"]}).status_code == 401
    assert server.post("/search", {"queries": ["00000000"]}, headers={"X-API-Key": helpers.API_KEY}).status_code == 200


def test_non_loopback_address_needs_a_key(index_file, helpers):
    result = helpers.cli("serve", "--index", str(index_file), "--host", "0.0.0.0", "--port", "0", "-q", timeout=60)
    assert result.returncode != 0 and result.stdout == ""
    assert "not a loopback address) needs an API key" in result.stderr and "Traceback" not in result.stderr


def test_short_api_key_is_refused(index_file, helpers):
    result = helpers.cli("serve", "--index", str(index_file), "--port", "0", "--api-key", "short", timeout=60)
    assert result.returncode != 0 and "at least 12 characters" in result.stderr


def test_port_in_use_is_one_line(server, index_file, helpers):
    result = helpers.cli("serve", "--index", str(index_file), "--port", str(server.port), "-q", timeout=60)
    assert result.returncode != 0 and f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
    assert "Traceback" not in result.stderr


# --- the budget --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def budgeted(index_file, start_server):
    return start_server("--index", str(index_file), "--max-queries", "50", "--max-k", "200",
                        "--max-results", "1000", "--max-scan", "30000")


def test_budget_is_checked_before_work(budgeted):
    q = "00000000"
    too_many = budgeted.post("/search", {"queries": [q] * 51, "k": 1})
    assert too_many.status_code == 413 and "51 queries exceed the budget of 50" in too_many.json()["error"]
    results = budgeted.post("/search", {"queries": [q] * 10, "k": 101})
    assert results.status_code == 413 and "10 queries x k=101 = 1010 results exceed the budget of 1000" in results.json()["error"]
    big_k = budgeted.post("/search", {"queries": [q], "k": 201})
    assert big_k.status_code == 422 and big_k.json()["error"] == "k: must be an integer in 1..200, got 201."
    scan = budgeted.post("/search", {"queries": [q] * 21, "k": 1})  # 21 x 1500 codes > 30000
    assert scan.status_code == 413 and "comparisons exceed the budget of 30000" in scan.json()["error"]
    assert budgeted.post("/search", {"queries": [q] * 20, "k": 50}).status_code == 200  # within every bound


def test_range_search_result_budget(budgeted, digits_codes):
    queries = [row.tobytes().hex() for row in digits_codes["queries"][:10]]
    everything = budgeted.post("/range_search", {"queries": queries, "radius": 32})  # 10 x 1500 hits > 1000
    assert everything.status_code == 413 and "passed the budget of 1000 results" in everything.json()["error"]
    small = budgeted.post("/range_search", {"queries": queries, "radius": 2})
    assert small.status_code == 200 and sum(len(r["ids"]) for r in small.json()["results"]) <= 1000
    assert budgeted.post("/range_search", {"queries": queries * 3, "radius": 0}).status_code == 413  # scan budget
    assert budgeted.get("/health").status_code == 200


# --- the index file changes under the server --------------------------------------------
def test_truncated_and_rewritten_index_file_does_not_affect_the_server(index_file, tmp_path, start_server, digits_codes):
    path = tmp_path / "served.hlx"
    shutil.copy(index_file, path)
    server = start_server("--index", str(path))
    queries = digits_codes["queries"][:5]
    body = {"queries": [q.tobytes().hex() for q in queries], "k": 4}
    want = reference_search(queries, digits_codes["db"], 4).ids.tolist()
    assert server.post("/search", body).json()["ids"] == want
    with open(path, "r+b") as handle:  # truncate in place (same inode), as a careless rewrite would
        handle.truncate(100)
    assert server.post("/search", body).json()["ids"] == want
    assert server.get("/info").json()["file_changed_on_disk"] is True
    with open(path, "r+b") as handle:  # and overwrite in place with garbage
        handle.write(os.urandom(4096))
    assert server.post("/search", body).json()["ids"] == want
    os.unlink(path)
    assert server.post("/range_search", {"queries": body["queries"], "radius": 3}).status_code == 200
    assert server.alive()
