"""Cross-modal retrieval metrics: image->text, text->image, image->image and text->text.

With codes of both modalities for the query pairs and for the database
pairs, each *direction* ranks one modality's database codes for the other
(or the same) modality's query codes, with the conventions of
:mod:`hashlearn.eval.metrics`: Hamming ranking with ties by ascending database
id, relevance = sharing at least one label, AP@k over the relevant items
retrieved in the top k (``k=None``: the whole database).

>>> import numpy as np
>>> from hashlearn.codes import pack_bits
>>> image = pack_bits(np.array([[0] * 8, [1] * 8]))
>>> text = pack_bits(np.array([[0] * 8, [1] * 8]))
>>> labels = np.array([[1, 0], [0, 1]])
>>> crossmodal_map(image, text, image, text, labels, labels)["I->T"]
1.0
"""

from __future__ import annotations

from hashlearn._validation import check_positive_int
from hashlearn.eval import metrics

#: direction -> (query modality, database modality)
DIRECTIONS = {"I->T": ("image", "text"), "T->I": ("text", "image"), "I->I": ("image", "image"), "T->T": ("text", "text")}
CROSS_DIRECTIONS = ("I->T", "T->I")


def _check_directions(directions) -> tuple[str, ...]:
    directions = tuple(directions)
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"directions must be a non-empty subset of {list(DIRECTIONS)}, got {list(directions)}.")
    return directions


def _pick(direction, query_image, query_text, db_image, db_text):
    query_modality, db_modality = DIRECTIONS[direction]
    query = query_image if query_modality == "image" else query_text
    database = db_image if db_modality == "image" else db_text
    return query, database


def crossmodal_map(query_image_codes, query_text_codes, db_image_codes, db_text_codes, query_labels, db_labels,
                   k: int | None = None, directions=tuple(DIRECTIONS)) -> dict[str, float]:
    """mAP@k for each direction (``k=None``: mAP over the whole database)."""
    out = {}
    for direction in _check_directions(directions):
        query, database = _pick(direction, query_image_codes, query_text_codes, db_image_codes, db_text_codes)
        out[direction] = metrics.mean_average_precision(query, database, query_labels, db_labels, k=k)
    return out


def evaluate_crossmodal(query_image_codes, query_text_codes, db_image_codes, db_text_codes, query_labels, db_labels, *,
                        k: int = 100, directions=tuple(DIRECTIONS), with_pr_curve: bool = False) -> dict:
    """``{direction: {"mAP@all", "mAP@k", "P@k"[, "pr_curve"]}}`` plus ``"cross_mean"``, the mean
    of I->T and T->I mAP@all when both are evaluated."""
    results: dict = {}
    for direction in _check_directions(directions):
        query, database = _pick(direction, query_image_codes, query_text_codes, db_image_codes, db_text_codes)
        row = metrics.ranking_metrics(query, database, query_labels, db_labels, map_ks=[None, check_positive_int(k, "k")],
                                      precision_ks=[k])  # one ranking
        if with_pr_curve:
            curve = metrics.pr_curve(query, database, query_labels, db_labels)
            row["pr_curve"] = {"radius": curve.radii.tolist(), "precision": curve.precision.tolist(), "recall": curve.recall.tolist()}
        results[direction] = row
    if all(d in results for d in CROSS_DIRECTIONS):
        results["cross_mean"] = (results["I->T"]["mAP@all"] + results["T->I"]["mAP@all"]) / 2
    return results


def crossmodal_pr_curves(query_image_codes, query_text_codes, db_image_codes, db_text_codes, query_labels, db_labels,
                         directions=tuple(DIRECTIONS)) -> dict[str, metrics.PRCurve]:
    """The precision-recall curve over Hamming radii of each direction."""
    out = {}
    for direction in _check_directions(directions):
        query, database = _pick(direction, query_image_codes, query_text_codes, db_image_codes, db_text_codes)
        out[direction] = metrics.pr_curve(query, database, query_labels, db_labels)
    return out


def crossmodal_table(results: dict) -> str:
    """A markdown table (one row per direction) of :func:`evaluate_crossmodal`'s results, for reports.

    >>> print(crossmodal_table({"I->T": {"mAP@all": 0.5, "mAP@100": 0.625, "P@100": 0.25}}))
    | direction | mAP@all | mAP@100 | P@100 |
    |---|---|---|---|
    | I->T | 0.5000 | 0.6250 | 0.2500 |
    """
    rows = [(direction, row) for direction, row in results.items() if direction in DIRECTIONS]
    if not rows:
        raise ValueError(f"results hold no direction of {list(DIRECTIONS)}; pass what evaluate_crossmodal returned.")
    columns = [key for key in rows[0][1] if key != "pr_curve"]
    lines = ["| direction | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {direction} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |" for direction, row in rows]
    return "\n".join(lines)


__all__ = ["CROSS_DIRECTIONS", "DIRECTIONS", "crossmodal_map", "crossmodal_pr_curves", "crossmodal_table", "evaluate_crossmodal"]
