"""hashlearn: learning to hash, Hamming search, honest evaluation, security audits.

The core conventions (see ``shared/DESIGN.md``):

* codes are ``uint8`` arrays of shape ``(n, n_bits // 8)``, bit ``j`` at
  ``(code[j // 8] >> (j % 8)) & 1`` (faiss's layout);
* continuous hash outputs live in ``[-1, 1]``, the bit is 1 where the output is > 0;
* search results are ``SearchResult(distances, ids)``, ties broken by ascending id.
"""

from hashlearn.codes import (
    SearchResult,
    hamming_distances,
    pack_bits,
    sign_to_codes,
    unpack_bits,
    validate_codes,
)
from hashlearn.errors import (
    CorruptFileError,
    DataLeakageError,
    MissingDependencyError,
    NotFittedError,
)

__version__ = "0.1.0"

__all__ = [
    "SearchResult",
    "hamming_distances",
    "pack_bits",
    "sign_to_codes",
    "unpack_bits",
    "validate_codes",
    "CorruptFileError",
    "DataLeakageError",
    "MissingDependencyError",
    "NotFittedError",
    "__version__",
]
