"""Registry of quantizers: one line per quantizer."""

from __future__ import annotations

from hashlearn.quantization.base import NoQuantizer, Quantizer
from hashlearn.quantization.hswd import HSWDQuantizer
from hashlearn.quantization.regularizers import RegularizerQuantizer
from hashlearn.quantization.swd import SlicedWassersteinQuantizer

QUANTIZERS: dict[str, type[Quantizer]] = {
    "none": NoQuantizer,
    "reg": RegularizerQuantizer,
    "swd": SlicedWassersteinQuantizer,
    "hswd": HSWDQuantizer,
}


def build_quantizer(name: str, **kwargs) -> Quantizer:
    """The quantizer registered as ``name``, built with ``kwargs``.

    >>> build_quantizer("hswd")
    HSWDQuantizer(target='quantile', random_state=0)
    """
    if not isinstance(name, str) or name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; available: {', '.join(sorted(QUANTIZERS))}.")
    return QUANTIZERS[name](**kwargs)
