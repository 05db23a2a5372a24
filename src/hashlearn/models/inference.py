"""Batched inference shared by every model: eval mode, no gradients, the caller's mode restored."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def batched_outputs(module: torch.nn.Module, x, n_outputs: int, batch_size: int = 1024, device=None, call=None) -> np.ndarray:
    """``module(x)`` -- or ``call(batch)``, e.g. ``module.features`` -- as a float32 numpy
    array ``(n, n_outputs)``, computed in batches.

    ``x`` may be a numpy array or a tensor; ``device`` defaults to the module's.
    """
    was_training = module.training
    module.eval()
    try:
        if device is None:
            device = next(module.parameters()).device
        x = torch.as_tensor(x if torch.is_tensor(x) else np.asarray(x), dtype=torch.float32)
        call = module if call is None else call
        outputs = [call(x[i : i + batch_size].to(device)).flatten(1).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        module.train(was_training)
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, n_outputs), np.float32)
