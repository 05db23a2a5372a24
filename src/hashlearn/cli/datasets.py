"""``hashlearn datasets``: list the registered datasets and whether they can be loaded here."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("datasets", help="list datasets and their availability")
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn.data import dataset_available, list_datasets

    rows = [(info.name, "yes" if dataset_available(info.name) else "no", info.modality, info.description) for info in list_datasets()]
    width = max(len(row[0]) for row in rows)
    print(f"{'name':<{width}}  available  modality  description")
    for name, available, modality, description in rows:
        print(f"{name:<{width}}  {available:<9}  {modality:<8}  {description}")
    return 0
