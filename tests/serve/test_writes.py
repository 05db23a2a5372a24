"""``--writable``: /add and /remove persist atomically, need the API key, and refuse to
overwrite a file someone else changed."""

from __future__ import annotations

import shutil
import threading

import httpx
import numpy as np
import pytest

from hashlearn.codes import reference_search
from hashlearn.index.io import load_index, save_index


@pytest.fixture()
def writable(index_file, tmp_path, start_server, helpers):
    path = tmp_path / "rw.hlx"
    shutil.copy(index_file, path)
    server = start_server("--index", str(path), "--writable", "--api-key", helpers.API_KEY, api_key=helpers.API_KEY)
    return server, path


def test_writable_needs_an_api_key(index_file, helpers):
    result = helpers.cli("serve", "--index", str(index_file), "--writable", "--port", "0", "-q", timeout=60)
    assert result.returncode != 0 and "writable server needs an API key" in result.stderr


def test_add_and_remove_persist_to_the_file(writable, digits_codes, helpers):
    server, path = writable
    db = digits_codes["db"]
    new = digits_codes["queries"][:4]
    with httpx.Client(base_url=server.url, timeout=30) as no_key:
        assert no_key.post("/add", json={"codes": [new[0].tolist()]}).status_code == 401
    added = server.post("/add", {"codes": [row.tobytes().hex() for row in new], "ids": [5000, 5001, 5002, 5003]})
    assert added.status_code == 200 and added.json() == {"added": 4, "removed": 0, "ntotal": 1504}
    saved = load_index(path, mmap=False)  # the file holds the change at once
    assert saved.ntotal == 1504 and saved.reconstruct(5002).tolist() == new[2].tolist()
    hit = server.post("/search", {"queries": [new[1].tobytes().hex()], "k": 1}).json()
    assert hit["ids"] == [[5001]] and hit["distances"] == [[0]]
    removed = server.post("/remove", {"ids": [5001, 0, 1, 999999]})
    assert removed.json() == {"added": 0, "removed": 3, "ntotal": 1501}
    saved = load_index(path, mmap=False)
    assert saved.ntotal == 1501 and 5001 not in saved.ids and 0 not in saved.ids
    queries = digits_codes["queries"][10:20]
    want_db = np.concatenate([db[2:], new[[0, 2, 3]]])
    want_ids = np.concatenate([np.arange(2, 1500), [5000, 5002, 5003]])
    got = server.post("/search", {"queries": [q.tobytes().hex() for q in queries], "k": 6}).json()
    assert got["ids"] == reference_search(queries, want_db, 6, ids=want_ids).ids.tolist()


def test_bad_writes_change_nothing(writable, digits_codes):
    server, path = writable
    before = path.read_bytes()
    duplicate = server.post("/add", {"codes": ["00000000"], "ids": [3]})
    assert duplicate.status_code == 422 and "already in the index" in duplicate.json()["error"]
    assert server.post("/add", {"codes": ["00000000"], "ids": [-4]}).status_code == 422
    assert server.post("/add", {"codes": ["00000000", "00000000"], "ids": [7000]}).status_code == 422
    assert server.post("/add", {"codes": ["0000"]}).status_code == 422
    assert server.post("/add", {}).status_code == 422
    assert server.post("/remove", {"ids": ["a"]}).status_code == 422
    assert path.read_bytes() == before and server.get("/health").json()["ntotal"] == 1500


def test_write_refused_when_the_file_changed_on_disk(writable, digits_codes):
    server, path = writable
    other = load_index(path, mmap=False)
    other.remove_ids([10])
    save_index(other, path)  # someone else rewrote the file
    refused = server.post("/add", {"codes": ["00000000"]})
    assert refused.status_code == 409 and "changed on disk" in refused.json()["error"]
    assert load_index(path, mmap=False).ntotal == 1499  # their file is kept


def test_searches_during_writes_see_one_consistent_version(writable, digits_codes):
    server, _ = writable
    query = digits_codes["queries"][0]
    errors = []
    stop = threading.Event()

    def reader():
        with httpx.Client(base_url=server.url, timeout=30, headers=server.client.headers) as client:
            while not stop.is_set():
                result = client.post("/search", json={"queries": [query.tobytes().hex()], "k": 3})
                if result.status_code != 200 or len(result.json()["ids"][0]) != 3:
                    errors.append(result.text)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for step in range(8):
            assert server.post("/add", {"codes": [query.tobytes().hex()], "ids": [9000 + step]}).status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors
    final = server.post("/search", {"queries": [query.tobytes().hex()], "k": 8}).json()
    assert sorted(final["ids"][0]) == list(range(9000, 9008)) and final["distances"][0] == [0] * 8
