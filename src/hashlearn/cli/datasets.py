"""``hashlearn datasets``: list the registered datasets and whether they can be loaded here.

    hashlearn datasets
    hashlearn datasets --json
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("datasets", help="list datasets and their availability")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn.data import dataset_available, list_datasets

    rows = [{"name": info.name, "available": dataset_available(info.name), "modality": info.modality, "description": info.description}
            for info in list_datasets()]
    if args.json:
        print_json(rows)
        return 0
    width = max(len(row["name"]) for row in rows)
    print(f"{'name':<{width}}  available  modality  description")
    for row in rows:
        print(f"{row['name']:<{width}}  {'yes' if row['available'] else 'no':<9}  {row['modality']:<8}  {row['description']}")
    return 0
