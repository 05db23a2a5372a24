"""Class-incremental protocols: named stages of classes, one seeded split per stage, leakage-checked.

A lifelong hashing system sees its classes arrive in stages (Fashion-MNIST
classes 0-4, then 5-7, then 8-9). Every stage's split is an ordinary
:class:`~hashlearn.data.protocols.Split`, drawn once for all stages from one
seed so that the stages agree with each other:

* ``query``: the queries of every class seen so far (stages 1..k) -- old-class
  queries keep measuring forgetting;
* ``database``: the database items of every class seen so far; it only grows,
  and the items of stage ``j < k`` are exactly those of stage ``j`` (their
  codes are frozen by the lifelong workflow, never re-encoded);
* ``train`` and ``validation``: items of the *new* classes of stage ``k`` only
  (the incremental data), drawn from stage ``k``'s new database items.

An item belongs to the stage of its latest label (for single-label data, the
stage of its class; for multi-label data, the last stage any of its labels
enters). :func:`check_stages` verifies all of that, on top of each split's own
leakage checks.

**Paired (image-text) data** -- ``openmoji``'s ``groups`` protocol -- arrive by
emoji group: a :class:`Stage` may name its classes (``groups``, e.g.
``"Flags"``) instead of listing ids, and then also owns every class whose items
all carry one of them (a group's subgroups; :meth:`IncrementalProtocol.for_dataset`
resolves the names against ``meta["classes"]``). Every openmoji pair has one group
label and one subgroup label of that group, so a pair's stage is its group's.
Queries are drawn only from pairs whose image and text are unique in the whole
set (a pair that shares its image or its text with another pair stays in the
database), and :func:`check_stages` checks contents as well as indices: no
query image or text equals the image or text of any database, training or
validation pair of any stage.

>>> from hashlearn.data import load_dataset
>>> splits = make_stage_splits(load_dataset("digits"), "class-incremental", seed=0)
>>> [(s.meta["incremental"]["stage_name"], len(s.train), len(s.database)) for s in splits]
[('0-4', 250, 851), ('5-7', 150, 1363), ('8-9', 100, 1697)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hashlearn._validation import check_positive_int
from hashlearn.data.protocols import Split, _draw
from hashlearn.errors import DataLeakageError


@dataclass(frozen=True)
class Stage:
    """One stage: a name and the class ids that arrive with it.

    ``groups`` (class names) instead of ``classes``: the named classes and every class
    whose items all carry one of them, resolved per data set by :meth:`IncrementalProtocol.for_dataset`.
    """

    name: str
    classes: tuple[int, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncrementalProtocol:
    """Stages of classes and per-class sizes of the parts.

    "Per class" counts per stratum: an item's class, or (multi-label) its first
    label -- openmoji's group. ``n_database_per_class`` caps each class's database
    items (``None``: all of them); ``n_train_per_class=None`` trains on every
    database item of the stage not drawn for validation; ``query_from`` names the
    source's predefined split the queries come from (``None``: the whole dataset).
    """

    name: str
    stages: tuple[Stage, ...]
    n_query_per_class: int
    n_train_per_class: int | None
    n_val_per_class: int
    n_database_per_class: int | None = None
    query_from: str | None = None
    description: str = ""

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def stage_number(self, stage) -> int:
        """The 1-based number of ``stage`` (its number or its name)."""
        if isinstance(stage, str) and not stage.isdigit():
            if stage not in self.stage_names:
                raise ValueError(f"stage {stage!r} is not a stage of protocol {self.name!r}; its stages are {self.stage_names} (or 1-{len(self.stages)}).")
            return self.stage_names.index(stage) + 1
        number = check_positive_int(int(stage) if isinstance(stage, str) else stage, "stage")
        if number > len(self.stages):
            raise ValueError(f"stage must be in 1-{len(self.stages)} for protocol {self.name!r} (stages {self.stage_names}), got {number}.")
        return number

    def for_dataset(self, dataset) -> "IncrementalProtocol":
        """The protocol with every stage's ``groups`` resolved to class ids of ``dataset`` (itself when no stage names groups).

        A stage owns the named classes and every other class whose items all carry one of them.
        """
        if not any(stage.groups for stage in self.stages):
            return self
        names = list((getattr(dataset, "meta", None) or {}).get("classes") or [])
        labels = np.asarray(dataset.labels)
        if labels.ndim != 2 or len(names) != labels.shape[1]:
            raise ValueError(f"protocol {self.name!r} names its stages' classes; dataset {dataset.name!r} must be multi-label with "
                             f"meta['classes'] naming its {labels.shape[-1] if labels.ndim == 2 else 0} label columns.")
        hot = labels.astype(bool)
        stages = []
        for stage in self.stages:
            unknown = [name for name in stage.groups if name not in names]
            if unknown:
                raise ValueError(f"stage {stage.name!r} of protocol {self.name!r} names classes {unknown} that dataset {dataset.name!r} "
                                 f"does not have; its classes start {names[:12]}.")
            named = [names.index(name) for name in stage.groups]
            carried = hot[:, named].any(axis=1)
            owned = [j for j in range(len(names)) if j in named or (hot[:, j].any() and carried[hot[:, j]].all())]
            stages.append(Stage(stage.name, tuple(sorted(set(stage.classes) | set(owned))), stage.groups))
        return IncrementalProtocol(self.name, tuple(stages), self.n_query_per_class, self.n_train_per_class, self.n_val_per_class,
                                   self.n_database_per_class, self.query_from, self.description)


def _stages(*groups: tuple[str, tuple[int, ...]]) -> tuple[Stage, ...]:
    return tuple(Stage(name, tuple(classes)) for name, classes in groups)


_TEN_CLASSES = _stages(("0-4", (0, 1, 2, 3, 4)), ("5-7", (5, 6, 7)), ("8-9", (8, 9)))
#: 20 Newsgroups in topic groups (class ids in the order of the dataset's ``meta["classes"]``)
_NEWSGROUP_TOPICS = _stages(("comp", (1, 2, 3, 4, 5)), ("rec", (7, 8, 9, 10)), ("sci", (11, 12, 13, 14)),
                            ("talk+religion+misc", (0, 6, 15, 16, 17, 18, 19)))
#: openmoji by emoji group, in the order of emoji-test.txt (each stage also owns its groups' subgroups)
_OPENMOJI_GROUPS = (Stage("smileys-people-nature-food", groups=("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink")),
                    Stage("travel-activities-objects", groups=("Travel & Places", "Activities", "Objects")),
                    Stage("symbols-flags", groups=("Symbols", "Flags")))

#: dataset name -> protocol name -> IncrementalProtocol
INCREMENTAL_PROTOCOLS: dict[str, dict[str, IncrementalProtocol]] = {
    "fashion-mnist": {
        "class-incremental": IncrementalProtocol(
            "class-incremental", _TEN_CLASSES, 100, 500, 100, None, "test",
            "classes 0-4, then 5-7, then 8-9; 100 queries/class from the test split, 500 train and 100 validation/class"),
        "class-incremental-small": IncrementalProtocol(
            "class-incremental-small", _TEN_CLASSES, 100, 500, 100, 2000, "test",
            "as class-incremental with 2,000 database items per class (20,000 at the last stage)"),
    },
    "digits": {
        "class-incremental": IncrementalProtocol(
            "class-incremental", _TEN_CLASSES, 10, 50, 10, None, None,
            "classes 0-4, then 5-7, then 8-9; 10 queries, 50 train and 10 validation per class (fast tests)"),
    },
    "20newsgroups": {
        "topics": IncrementalProtocol(
            "topics", _NEWSGROUP_TOPICS, 50, 300, 50, None, None,
            "comp.*, then rec.*, then sci.*, then talk.*/religion/alt.atheism/misc.forsale; 50 queries, 300 train, 50 validation per class"),
    },
    "openmoji": {
        "groups": IncrementalProtocol(
            "groups", _OPENMOJI_GROUPS, 25, None, 10, None, None,
            "image-text pairs by emoji group: Smileys & Emotion, People & Body, Animals & Nature, Food & Drink; then Travel & Places, "
            "Activities, Objects; then Symbols, Flags (each with its subgroups); 25 query pairs and 10 validation pairs per group, "
            "every other new pair trains"),
        "groups-small": IncrementalProtocol(
            "groups-small", _OPENMOJI_GROUPS, 5, 20, 5, None, None,
            "the groups stages with 5 query pairs, 20 training and 5 validation pairs per group (fast tests)"),
    },
}


def is_incremental(dataset_name: str, protocol: str) -> bool:
    """Whether ``protocol`` names an incremental protocol of ``dataset_name``."""
    return protocol in INCREMENTAL_PROTOCOLS.get(dataset_name, {})


def get_incremental_protocol(dataset_name: str, protocol: str) -> IncrementalProtocol:
    known = INCREMENTAL_PROTOCOLS.get(dataset_name)
    if not known:
        have = ", ".join(sorted(INCREMENTAL_PROTOCOLS))
        raise ValueError(f"dataset {dataset_name!r} has no incremental protocol; datasets with one: {have}.")
    if protocol not in known:
        raise ValueError(f"unknown incremental protocol {protocol!r} for dataset {dataset_name!r}; expected one of {sorted(known)}.")
    return known[protocol]


def item_stages(labels: np.ndarray, protocol: IncrementalProtocol) -> np.ndarray:
    """The 1-based stage of every item: the stage of its latest label; 0 for an item whose labels no stage names."""
    labels = np.asarray(labels)
    n_classes = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1
    stage_of_class = np.zeros(max(n_classes, 1 + max(c for s in protocol.stages for c in s.classes)), dtype=np.int64)
    for number, stage in enumerate(protocol.stages, start=1):
        stage_of_class[list(stage.classes)] = number
    if labels.ndim == 1:
        return stage_of_class[labels]
    hot = labels.astype(bool)
    per_label = np.where(hot, stage_of_class[None, : hot.shape[1]], 0)
    latest = per_label.max(axis=1)
    unnamed = (hot & (stage_of_class[None, : hot.shape[1]] == 0)).any(axis=1)
    return np.where(unnamed, 0, latest)  # an item with a label of no stage never arrives


def make_stage_splits(dataset, protocol: str | IncrementalProtocol, seed: int = 0) -> list[Split]:
    """One :class:`Split` per stage of ``protocol`` (see the module docstring), checked by :func:`check_stages`."""
    seed = check_positive_int(seed, "seed", minimum=0)
    spec = protocol if isinstance(protocol, IncrementalProtocol) else get_incremental_protocol(dataset.name, protocol)
    if getattr(dataset, "labels", None) is None:
        raise ValueError(f"dataset {dataset.name!r} is unlabelled; class-incremental protocols need labels.")
    spec = spec.for_dataset(dataset)
    labels = dataset.labels
    stages = item_stages(labels, spec)
    # per-class draws need one class per item: the class itself, or (multi-label) the item's first label of its stage
    strata = labels if labels.ndim == 1 else np.argmax(labels.astype(bool) & (stages[:, None] > 0), axis=1)
    rng = np.random.default_rng(seed)
    everything = np.arange(len(dataset))
    if spec.query_from is not None:
        predefined = dataset.predefined_split or {}
        if spec.query_from not in predefined:
            raise ValueError(f"protocol {spec.name!r} draws queries from the {spec.query_from!r} split, which dataset {dataset.name!r} does not define.")
        query_pool = np.asarray(predefined[spec.query_from])
    else:
        query_pool = everything
    paired = getattr(dataset, "modality", None) == "paired"
    if paired:  # a query pair shares neither its image nor its text with any other pair
        from hashlearn.data.paired import duplicate_groups

        groups = duplicate_groups(dataset)
        query_pool = query_pool[np.bincount(groups)[groups[query_pool]] == 1]
    parts = []  # (query, database, train, validation) of the new items of each stage
    for number, stage in enumerate(spec.stages, start=1):
        in_stage = stages == number
        n_classes = len(np.unique(strata[in_stage]))  # the stage's strata (its classes; openmoji: its groups)
        pool = query_pool[in_stage[query_pool]]
        query = _draw(rng, pool, spec.n_query_per_class * n_classes, strata, True, f"stage {stage.name!r} query")
        database = np.setdiff1d(everything[in_stage], query)
        if spec.n_database_per_class is not None:
            database = _draw(rng, database, min(spec.n_database_per_class * n_classes, len(database)), strata, True,
                             f"stage {stage.name!r} database")
        if spec.n_train_per_class is None:  # validation first, every other new database item trains
            validation = _draw(rng, database, spec.n_val_per_class * n_classes, strata, True, f"stage {stage.name!r} validation")
            train = np.setdiff1d(database, validation)
        else:
            train = _draw(rng, database, spec.n_train_per_class * n_classes, strata, True, f"stage {stage.name!r} train")
            validation = _draw(rng, np.setdiff1d(database, train), spec.n_val_per_class * n_classes, strata, True,
                               f"stage {stage.name!r} validation")
        parts.append((query, database, train, validation))
    splits = []
    for number, stage in enumerate(spec.stages, start=1):
        seen = parts[:number]
        query = np.sort(np.concatenate([p[0] for p in seen]))
        database = np.sort(np.concatenate([p[1] for p in seen]))
        record = {"protocol": spec.name, "stage": number, "stage_name": stage.name, "n_stages": len(spec.stages),
                  "classes": list(stage.classes), "seen_classes": sorted(c for s in spec.stages[:number] for c in s.classes),
                  "new_database": int(len(parts[number - 1][1]))}
        meta = {"description": spec.description, "incremental": record, **({"paired": True} if paired else {})}
        splits.append(Split(query, database, parts[number - 1][2], parts[number - 1][3], dataset=dataset.name, protocol=spec.name,
                            seed=seed, n_items=len(dataset), meta=meta))
    return check_stages(splits, labels, spec, dataset=dataset if paired else None)


def make_stage_split(dataset, protocol: str | IncrementalProtocol, stage, seed: int = 0) -> Split:
    """The split of one stage (a 1-based number or a stage name)."""
    spec = protocol if isinstance(protocol, IncrementalProtocol) else get_incremental_protocol(dataset.name, protocol)
    return make_stage_splits(dataset, spec, seed)[spec.stage_number(stage) - 1]


def check_stages(splits: list[Split], labels: np.ndarray, protocol: IncrementalProtocol, dataset=None) -> list[Split]:
    """Raise :class:`DataLeakageError` unless the stage splits form a class-incremental sequence.

    Each split passes its own checks; the database of stage ``k`` keeps every
    database item of stage ``k - 1`` and adds only items of stage ``k``;
    training and validation items are items of the new stage only; no query is
    ever in a database, a training or a validation part of any stage. With a
    paired ``dataset`` the check is over contents too: no query's image or text
    is the image or text of a database, training or validation pair of any stage.
    """
    if dataset is not None:
        protocol = protocol.for_dataset(dataset)
    stages = item_stages(labels, protocol)
    all_queries = np.concatenate([s.query for s in splits]) if splits else np.zeros(0, np.int64)
    previous = np.zeros(0, dtype=np.int64)
    for number, split in enumerate(splits, start=1):
        split.check()
        for part in ("train", "validation"):
            wrong = getattr(split, part)[stages[getattr(split, part)] != number]
            if len(wrong):
                raise DataLeakageError(f"stage {number}: {len(wrong)} {part} item(s) are not items of that stage (e.g. index {int(wrong[0])}); "
                                       "incremental training sees the new stage's data only.")
        if not np.isin(previous, split.database).all():
            raise DataLeakageError(f"stage {number}: the database dropped items of stage {number - 1}; it must only grow.")
        added = np.setdiff1d(split.database, previous)
        if len(added) and (stages[added] != number).any():
            raise DataLeakageError(f"stage {number}: the database added items of other stages; it may add the new stage's items only.")
        if np.isin(all_queries, split.database).any() or np.isin(all_queries, split.train).any() or np.isin(all_queries, split.validation).any():
            raise DataLeakageError(f"stage {number}: a query of some stage is in this stage's database, train or validation part.")
        previous = split.database
    if dataset is not None and getattr(dataset, "modality", None) == "paired" and splits:
        from hashlearn.data.paired import MODALITIES

        others = np.unique(np.concatenate([getattr(s, part) for s in splits for part in ("database", "train", "validation")]))
        for modality in MODALITIES:
            fingerprints = dataset.modality_fingerprints(modality)
            shared = np.flatnonzero(np.isin(fingerprints[others], fingerprints[np.unique(all_queries)]))
            if len(shared):
                raise DataLeakageError(f"stage splits leak over pairs: {len(shared)} database, train or validation pair(s) of some stage have "
                                       f"the {modality} of a query pair (e.g. index {int(others[shared[0]])}).")
    return splits


__all__ = ["INCREMENTAL_PROTOCOLS", "IncrementalProtocol", "Stage", "check_stages", "get_incremental_protocol", "is_incremental",
           "item_stages", "make_stage_split", "make_stage_splits"]
