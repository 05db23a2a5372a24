"""Named training presets: config layers applied on top of the registered defaults.

* ``"hashlearn"`` -- nothing changes: each method's validation-chosen defaults
  (``hashlearn.losses.training_defaults``), quantizers with the exact-quantile
  HSWD target and 64 SWD projections;
* ``"paper"`` -- the settings of the official one-loss quantization code (Doan et
  al., CVPR 2022; its README and ``add_base_config``): Adam at lr 1e-5 with
  weight decay 1e-5, 200 epochs, batch 64, quantization weight 0.1, the HSWD
  target sampled from Bernoulli(0.5) on every call (``target="sample"``) and
  10,000 SWD projections. It fine-tuned ImageNet-pretrained AlexNet/ResNet at 224 px;
  on hashlearn's small models trained from scratch it is far slower to converge.

``hashlearn train --preset paper`` applies it; ``--set`` overrides still win.

>>> preset_layer("paper")["method"]["quantizer"]["swd"]
{'n_projections': 10000}
>>> preset_layer(None)
{}
"""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    "hashlearn": {},
    "paper": {
        "trainer": {"optimizer": "adam", "lr": 1e-5, "weight_decay": 1e-5, "epochs": 200, "batch_size": 64},
        "method": {"quantization_weight": 0.1, "quantizer": {"hswd": {"target": "sample"}, "swd": {"n_projections": 10000}}},
    },
}


def preset_layer(name: str | None) -> dict:
    """The config layer of preset ``name`` (a fresh copy; ``{}`` for ``None``)."""
    import copy

    if name is None:
        return {}
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}.")
    return copy.deepcopy(PRESETS[name])


__all__ = ["PRESETS", "preset_layer"]
