"""Suite-wide settings: small tensors run faster on one thread on a 2-core machine,
and progress bars stay off in test output."""

import os

os.environ.setdefault("HASHLEARN_QUIET", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
