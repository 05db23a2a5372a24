"""Fixtures for the service tests: an index made by ``hashlearn index build`` from ITQ
codes of the digits data, and real ``hashlearn serve`` processes on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
API_KEY = "test-key-0123456789abcdef"


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m hashlearn ARGS`` (the real command) and return the finished process."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run([sys.executable, "-m", "hashlearn", *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


class ServeProcess:
    """``hashlearn serve ... --host 127.0.0.1 --port 0`` in a subprocess; ``url`` from its first line."""

    def __init__(self, *args: str, env: dict | None = None, api_key: str | None = None):
        full_env = {name: value for name, value in os.environ.items() if name != "HASHLEARN_API_KEY"}
        full_env.update({"PYTHONPATH": str(SRC), **(env or {})})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hashlearn", "serve", "--host", "127.0.0.1", "--port", "0", "-q", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
        self.first_line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", self.first_line)
        if match is None:
            self.process.kill()
            raise AssertionError(f"server did not start: {self.first_line!r} {self.process.stderr.read()[-3000:]}")
        self.port = int(match.group(1))
        self.address = ("127.0.0.1", self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        headers = {"X-API-Key": api_key} if api_key else {}
        self.client = httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def post(self, path: str, body=None, **kwargs) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> str:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        return self.process.stderr.read()


@pytest.fixture(scope="session")
def digits_codes(tmp_path_factory):
    """ITQ codes (32 bits) of the digits data: database = first 1500 rows, queries = the rest."""
    from sklearn.datasets import load_digits

    from hashlearn.methods import ITQ

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    codes = ITQ(n_bits=32, random_state=0).fit(X[:1500]).encode(X)
    folder = tmp_path_factory.mktemp("digits_codes")
    np.save(folder / "db.npy", codes[:1500])
    return {"db": codes[:1500], "queries": codes[1500:], "labels": y, "folder": folder}


@pytest.fixture(scope="session")
def index_file(digits_codes):
    """``hashlearn index build --codes db.npy -o db.hlx`` (Flat)."""
    path = digits_codes["folder"] / "db.hlx"
    result = cli("index", "build", "--codes", str(digits_codes["folder"] / "db.npy"), "-o", str(path), "-q")
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def server(index_file):
    """A default server (no key, default limits) on the Flat index."""
    process = ServeProcess("--index", str(index_file))
    yield process
    process.close()


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.fixture(scope="module")
def start_server():
    """``start_server(*args, env=..., api_key=...)`` -> a :class:`ServeProcess`, stopped after the module."""
    started = []

    def start(*args: str, **kwargs) -> ServeProcess:
        process = ServeProcess(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture(scope="session")
def helpers():
    """Small helpers for test modules (conftest is not importable under --import-mode=importlib)."""
    return type("Helpers", (), {"wait_for": staticmethod(wait_for), "cli": staticmethod(cli), "API_KEY": API_KEY,
                                "ServeProcess": ServeProcess})
