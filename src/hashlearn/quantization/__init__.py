"""Quantization losses: how far continuous codes are from (balanced) binary codes.

``build_quantizer(name, **kwargs)`` with ``name`` in ``QUANTIZERS``
(``"none"``, ``"reg"``, ``"swd"``, ``"hswd"``); each is called as
``quantizer(outputs) -> scalar``.
"""

from hashlearn.quantization.base import NoQuantizer, Quantizer
from hashlearn.quantization.hswd import HSWDQuantizer
from hashlearn.quantization.regularizers import RegularizerQuantizer
from hashlearn.quantization.registry import QUANTIZERS, build_quantizer
from hashlearn.quantization.swd import SlicedWassersteinQuantizer

__all__ = [
    "QUANTIZERS",
    "HSWDQuantizer",
    "NoQuantizer",
    "Quantizer",
    "RegularizerQuantizer",
    "SlicedWassersteinQuantizer",
    "build_quantizer",
]
