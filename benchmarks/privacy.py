"""Privacy benchmark: how much of a Fashion-MNIST image can be rebuilt from a model's floats, and from its codes.

Part 1, hash models (HashVFL's question asked of any hash model): deep hash
models trained by ``hashlearn train``'s code path (``train_run``: small CNN,
CSQ at 16/32/64 bits and DPSH at 32 bits, on the protocol's 5,000 training
images); for each, :func:`hashlearn.runs.privacy.privacy_run` trains one
decoder per released representation -- backbone features (256 floats),
continuous outputs (n_bits floats), codes (n_bits bits) -- on the 5,000
training images and their representations (10% held out to pick the epoch),
and reconstructs the 1,000 protocol queries. Each representation's mAP@1000
(against a seeded 10,000-image subset of the database; floats ranked by L2,
codes by Hamming distance) stands next to its PSNR / SSIM, with the mean-image
and class-mean baselines.

Part 2, a two-party vertical split (HashVFL): party A holds the left 14
columns, party B the right 14 of each image; each bottom MLP (392 -> 256 ->
d) sends a tanh embedding, or its sign (straight-through), to the top MLP.
The top model's owner attacks party B: a decoder from what B sends to B's half
image, trained on 5,000 auxiliary training pairs, applied to the 1,000 test
queries. Test accuracy is of the model selected on the 1,000 validation images.

    nice -n 10 python benchmarks/privacy.py            # -> benchmarks/results/privacy.{json,md}; resumable
    python benchmarks/privacy.py --quick               # minutes: tiny sizes, for development

Every finished cell is written to ``benchmarks/results/privacy.json`` at once;
a rerun skips the cells already there (``--fresh`` starts over). The trained
runs live under ``--work`` (default ``/tmp/hashlearn-privacy``) and are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"

FULL = dict(models=[("csq", 16), ("csq", 32), ("csq", 64), ("dpsh", 32)], epochs=4, n_auxiliary=5000, n_queries=1000,
            n_database=10000, decoder={"hidden": (512, 512), "epochs": 30, "batch_size": 128, "lr": 1e-3},
            vfl_dims=(16, 64), vfl_epochs=10, vfl_seeds=(0, 1, 2), n_train=None)
QUICK = dict(models=[("csq", 16)], epochs=1, n_auxiliary=600, n_queries=200, n_database=2000,
             decoder={"hidden": (128,), "epochs": 3, "batch_size": 128, "lr": 1e-3},
             vfl_dims=(16,), vfl_epochs=1, vfl_seeds=(0, 1), n_train=1000)


def load_results(path: Path, settings: dict, fresh: bool) -> dict:
    if path.is_file() and not fresh:
        results = json.loads(path.read_text())
        if results.get("settings") == json.loads(json.dumps(settings)):
            return results
        print(f"{path}: settings changed, starting over", file=sys.stderr)
    return {"settings": json.loads(json.dumps(settings)), "hash_models": {}, "vertical": {}}


def save(results: dict, name: str) -> None:
    from hashlearn._io import atomic_write_json, atomic_write_text

    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, torch thread(s): 1"
    results["load_average_at_save"] = list(os.getloadavg())
    atomic_write_json(RESULTS / f"{name}.json", results)
    atomic_write_text(RESULTS / f"{name}.md", markdown(results))


def hash_model_cell(method: str, n_bits: int, settings: dict, work: Path) -> dict:
    from hashlearn.runs import resolve_config, train_run
    from hashlearn.runs.privacy import privacy_run
    from hashlearn.runs.run import Run

    run_dir = work / f"{method}-{n_bits}"
    started = time.perf_counter()
    if not Run(run_dir).has_model():
        overrides = [f"method.name={method}", f"method.n_bits={n_bits}", "data.dataset=fashion-mnist", f"trainer.epochs={settings['epochs']}"]
        if settings["n_train"]:
            overrides += [f"data.n_train={settings['n_train']}", "data.n_val=300"]
        train_run(resolve_config(overrides=overrides), run_dir, overwrite=Run(run_dir).exists())
    train_seconds = time.perf_counter() - started
    report = privacy_run(run_dir, n_auxiliary=settings["n_auxiliary"], n_queries=settings["n_queries"],
                         n_database=settings["n_database"], decoder=settings["decoder"], seed=0)
    report["train_seconds"] = train_seconds
    return report


def vertical_data(settings: dict) -> tuple:
    from hashlearn.data import load_dataset
    from hashlearn.data.protocols import make_split

    ds = load_dataset("fashion-mnist")
    split = make_split(ds, "default", seed=0)
    train = split.train[: settings["n_train"]] if settings["n_train"] else split.train
    images = np.asarray(ds.data, dtype=np.float32)
    part = lambda index: (images[index], ds.labels[index])  # noqa: E731
    return part(train), part(split.validation), part(split.query[: settings["n_queries"]])


def vertical_cell(data: tuple, dim: int, hashed: bool, seed: int, settings: dict) -> dict:
    from hashlearn.runs.privacy import vertical_split_experiment

    train, val, test = data
    out = vertical_split_experiment(train, val, test, hash_embeddings=hashed, embedding_dim=dim, epochs=settings["vfl_epochs"],
                                    n_auxiliary=settings["n_auxiliary"], decoder=settings["decoder"], seed=seed)
    out.pop("examples")
    return out


def fmt(value, spec=".3f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(results: dict) -> str:
    settings = results["settings"]
    lines = ["# Privacy: reconstruction from floats and from hash codes", "",
             f"Machine: {results.get('machine', '?')}; load average when last saved: "
             f"{', '.join(f'{v:.1f}' for v in results.get('load_average_at_save', []))}; wall time of the last session "
             f"{results.get('seconds_this_session', 0) / 60:.1f} min (runs trained in an earlier session are reused). "
             "Reconstruction quality (PSNR in dB averaged per image, SSIM with an 11x11 Gaussian window) of images an attacker "
             "never saw, rebuilt by a decoder trained on auxiliary (image, representation) pairs; higher means more leaks.", "",
             f"Sizes: Fashion-MNIST standard protocol; models trained on {settings['n_train'] or 5000} training images for "
             f"{settings['epochs']} epochs (small CNN, `train_run`); decoder {settings['decoder']} trained on "
             f"{settings['n_auxiliary']} auxiliary training pairs (10% held out for the epoch); {settings['n_queries']} attacked "
             f"queries; mAP@1000 against a seeded {settings['n_database']}-image database subset. "
             f"One seed for the hash models; the vertical split is trained and attacked with seeds {', '.join(map(str, settings['vfl_seeds']))}.", ""]
    lines += ["## Hash models: features vs outputs vs codes", "",
              "| model | released | what | mAP@1000 | PSNR | SSIM | MSE | decoder's best epoch |", "|---|---|---|---|---|---|---|---|"]
    for name, report in results["hash_models"].items():
        for kind in ("features", "outputs", "codes"):
            r = report["representations"][kind]
            what = f"{r['dim']} {'bits' if kind == 'codes' else 'floats'}"
            lines.append(f"| {name} | {kind} | {what} | {fmt(r['mAP@1000'])} | {fmt(r['psnr'], '.2f')} | {fmt(r['ssim'])} | {fmt(r['mse'], '.4f')} | {r['decoder_best_epoch']} |")
        for base, r in report["baselines"].items():
            lines.append(f"| {name} | baseline: {base} | nothing | – | {fmt(r['psnr'], '.2f')} | {fmt(r['ssim'])} | {fmt(r['mse'], '.4f')} | |")
    lines += ["", "## Two-party vertical split (left / right halves), attack on party B's half", "",
              "| embedding | sent per item | seed | test accuracy | PSNR | SSIM | MSE | class-mean PSNR | mean-image PSNR | decoder's best epoch |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["vertical"].items():
        base = r["baselines"]
        sent = f"{r['embedding_dim']} {'bits' if r['hash_embeddings'] else 'floats'}"
        lines.append(f"| {'hashed' if r['hash_embeddings'] else 'float'} | {sent} | {name.rsplit('-s', 1)[-1]} | {fmt(r['test_accuracy'])} | "
                     f"{fmt(r['reconstruction']['psnr'], '.2f')} | {fmt(r['reconstruction']['ssim'])} | {fmt(r['reconstruction']['mse'], '.4f')} | "
                     f"{fmt(base['class mean (label known)']['psnr'], '.2f')} | {fmt(base['mean input']['psnr'], '.2f')} | {r.get('decoder_best_epoch', '–')} |")
    lines += ["", "## Where hashing protects and where it does not", "", *notes(results), ""]
    return "\n".join(lines)


def notes(results: dict) -> list[str]:
    """Findings computed from the numbers above (nothing here is typed in by hand)."""
    out = []
    for name, report in results["hash_models"].items():
        reps, base = report["representations"], report["baselines"]
        codes, outputs, features = reps["codes"], reps["outputs"], reps["features"]
        class_mean, mean = base["class mean (label known)"], base["mean input"]
        out.append(f"- {name}: codes {codes['psnr']:.2f} dB / SSIM {codes['ssim']:.3f} vs outputs {outputs['psnr']:.2f} dB / "
                   f"{outputs['ssim']:.3f} (same width, floats) and features {features['psnr']:.2f} dB / {features['ssim']:.3f}; "
                   f"codes cost {outputs['mAP@1000'] - codes['mAP@1000']:+.3f} mAP against the outputs.")
        if codes["psnr"] >= class_mean["psnr"] - 0.25:
            out.append(f"  - hashing does NOT protect against class-level reconstruction here: codes give {codes['psnr']:.2f} dB, "
                       f"at or above what the label alone gives ({class_mean['psnr']:.2f} dB) -- codes that retrieve by class reveal the class's look.")
        if codes["psnr"] > mean["psnr"] + 1.0:
            out.append(f"  - codes leak well beyond nothing: {codes['psnr'] - mean['psnr']:+.2f} dB over the mean image.")
    epochs = results["settings"]["decoder"]["epochs"]
    still = [f"{name} {kind}" for name, report in results["hash_models"].items() for kind, r in report["representations"].items()
             if r["decoder_best_epoch"] == epochs]
    still += [f"vertical {key}" for key, r in results["vertical"].items() if r.get("decoder_best_epoch") == epochs]
    if still:
        out.append(f"- {len(still)} decoders were still improving at their last epoch ({epochs}): {', '.join(still)}. Their PSNR "
                   "under-states what a longer-trained decoder would get, so the leakage of those representations is a lower bound.")
    vertical = results["vertical"]
    for key, hashed in vertical.items():
        if not hashed["hash_embeddings"]:
            continue
        plain = vertical.get(key.replace("hashed", "float"))
        if plain is None:
            continue
        d_psnr = hashed["reconstruction"]["psnr"] - plain["reconstruction"]["psnr"]
        d_acc = hashed["test_accuracy"] - plain["test_accuracy"]
        line = (f"- vertical split, d={hashed['embedding_dim']}, seed {key.rsplit('-s', 1)[-1]}: hashing changes party B's reconstruction by {d_psnr:+.2f} dB "
                f"(SSIM {hashed['reconstruction']['ssim'] - plain['reconstruction']['ssim']:+.3f}) and test accuracy by {d_acc:+.3f}.")
        if hashed["reconstruction"]["psnr"] >= hashed["baselines"]["class mean (label known)"]["psnr"] - 0.25:
            line += " Hashed embeddings still give at least the class-mean reconstruction: they do NOT hide class-level content."
        out.append(line)
    for dim in sorted({r["embedding_dim"] for r in vertical.values()}):
        pairs = [(r, vertical.get(key.replace("hashed", "float"))) for key, r in vertical.items() if r["hash_embeddings"] and r["embedding_dim"] == dim]
        pairs = [(h, f) for h, f in pairs if f is not None]
        if len(pairs) > 1:
            d_psnr = np.median([h["reconstruction"]["psnr"] - f["reconstruction"]["psnr"] for h, f in pairs])
            d_acc = np.median([h["test_accuracy"] - f["test_accuracy"] for h, f in pairs])
            out.append(f"- vertical split, d={dim}, median over {len(pairs)} seeds: hashing {d_psnr:+.2f} dB PSNR, {d_acc:+.3f} test accuracy.")
    return out or ["- no finished cells yet"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (minutes), written to privacy-quick.*")
    parser.add_argument("--fresh", action="store_true", help="ignore finished cells in the results file")
    parser.add_argument("--work", default="/tmp/hashlearn-privacy", help="folder of the trained runs (reused)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HASHLEARN_QUIET", "1")
    import torch

    from hashlearn._progress import set_quiet

    torch.set_num_threads(1)
    set_quiet(True)
    settings = QUICK if args.quick else FULL
    name = "privacy-quick" if args.quick else "privacy"
    work = Path(args.work) / name
    results = load_results(RESULTS / f"{name}.json", settings, args.fresh)
    started = time.perf_counter()
    for method, n_bits in settings["models"]:
        key = f"{method}-{n_bits}"
        if key in results["hash_models"]:
            continue
        print(f"hash model {key} ...", file=sys.stderr, flush=True)
        results["hash_models"][key] = hash_model_cell(method, n_bits, settings, work)
        save(results, name)
    data = None
    for seed in settings["vfl_seeds"]:
        for dim in settings["vfl_dims"]:
            for hashed in (False, True):
                key = f"{'hashed' if hashed else 'float'}-{dim}-s{seed}"
                if key in results["vertical"]:
                    continue
                print(f"vertical split {key} ...", file=sys.stderr, flush=True)
                data = data or vertical_data(settings)
                results["vertical"][key] = vertical_cell(data, dim, hashed, seed, settings)
                save(results, name)
    results.setdefault("seconds_this_session", 0.0)
    results["seconds_this_session"] = time.perf_counter() - started
    save(results, name)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
