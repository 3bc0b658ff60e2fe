"""Making the sets: ``prepare_all`` prepares every source of a data folder (or the embedded sample set) under
``<root>/prepared`` and ``build_sets`` cuts the paper's two training sets plus the held-out evaluation sets into
``<root>/sets`` (the layout: wae_lib.data.layout; the rules: wae_lib.data.splits), with ``info.json`` recording counts, rules,
the departures from the paper and every file's digest.

Held-out faces are whole identities when the data folder has an ``identity.csv`` (``load_eval_identities`` gives
each one's identity), and the mixed set follows the paper's proportions (``mixed_anime_ratio``,
``mixed_imagenet_ratio``). Before any split, duplicates are found across every source (wae_lib.data.duplicates):
each group stays on one side, so no evaluation image has a copy, exact or near, in a training set. A result that
cannot serve (no training image, an empty evaluation set) is refused with one line before anything is written. A
re-run whose prepared outputs and split parameters are unchanged rewrites nothing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import (
    atomic_open,
    atomic_write_text,
    file_sha256,
    json_digest,
    remove_durably,
    remove_stale_temporaries,
    stage_done,
)
from .duplicates import (
    EXACT_COLUMN,
    NEAR_COLUMN,
    NEAR_DISTANCE,
    face_groups,
    find_duplicates,
    format_duplicates,
    off_training,
)
from .layout import (
    DATA_DIR_LAYOUT,
    EVAL_IDENTITY_FILE,
    IDENTITY_FILE,
    INFO_FILE,
    OUT_SIZE,
    PAPER_COUNTS,
    PAPER_MIXED_SHARES,
    PAPER_SET_COUNTS,
    SET_FILES,
    SET_ROLES,
    SOURCES,
    DataError,
    find_identity_file,
    find_source,
    prepared_dir,
    sets_dir,
)
from .options import SPLIT_FIELDS, PrepConfig
from .packed import (
    STATE_FILE,
    format_summary,
    load_state,
    npy_shape,
    outputs_intact,
    read_images,
    read_manifest,
    write_npy_atomic,
)
from .prepare import PREPARERS
from .sample import SAMPLE_NATURAL_EVAL, SAMPLE_SOURCE_LABEL, build_sample_prepared
from .splits import (
    content_split,
    eval_identities,
    format_mixed,
    format_split,
    held_out,
    image_ranges,
    mixed_counts,
    mixed_rule,
    select_anime,
    select_imagenet,
)


def _kept_rows(prepared: Path):
    m = read_manifest(prepared)
    return m[m["status"] == "kept"]


def _take(images: np.ndarray, idx: np.ndarray, block: int = 8192) -> Iterator[np.ndarray]:
    for i in range(0, len(idx), block):
        yield np.asarray(images[idx[i:i + block]])


def build_sets(prepared_root: str | Path, out_dir: str | Path, cfg: PrepConfig | None = None, *,
               source_label: str = "unknown", natural_eval_paths: Sequence[str] | None = None,
               identity_file: str | Path | None = None) -> dict[str, Any]:
    """The paper's two training sets and the evaluation sets, from ``prepared_root/<source>`` folders into ``out_dir``
    (in the standard layout ``prepared_dir(root)`` and ``sets_dir(root)``; prepare_all passes those).

    * ``content_eval``: held-out CelebA faces, removed from both training sets (our addition: the paper holds
      nothing out). With ``identity_file`` (see read_identities) whole identities are held out (identity_split);
      without, ``eval_fraction`` of the files (file_split). ``sets/content_eval_identity.npy`` gives each
      image's identity (load_eval_identities).
    * ``natural_eval``: ``natural_eval_count`` ImageNet files (or ``natural_eval_paths``), their first (central)
      crop; all their crops are removed from the mixed set.
    * ``celeba`` = CelebA minus content_eval; ``mixed`` = that + AnimeFace + ImageNet capped to the paper's
      proportions (select_anime, select_imagenet), concatenated in that order (``info["mixed_composition"]``
      gives each source's index range, ``info["mixed_counts"]`` the counts and shares).
    * ``style_eval``: every style image.
    * duplicates (wae_lib.data.duplicates), found across all sources first: faces of one group share a side of the
      content split (identities they span are merged), and every other member of a group that holds an
      evaluation image leaves the training sets (``info["held_out"]["off_training_duplicates"]``).

    Raises ValueError, before writing anything, when there would be no training face or an evaluation set would be
    empty although its source has images and the configuration asks for one.
    """
    cfg = cfg or PrepConfig()
    prepared_root, out_dir = Path(prepared_root), Path(out_dir)
    identity_file = Path(identity_file) if identity_file is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    states = {s: load_state(prepared_root / s) for s in SOURCES}
    missing = [s for s in ("celeba", "styles") if states[s] is None]
    if missing:
        raise FileNotFoundError(f"build_sets: {prepared_root} has no prepared {missing}; run prepare_* first")
    changed = [s for s, st in states.items() if st is not None and not outputs_intact(prepared_root / s, st)]
    if changed:
        raise DataError(f"build_sets: {[str(prepared_root / s) for s in changed]} no longer match their "
                           f"{STATE_FILE} (a file was changed or truncated); prepare them again")
    if identity_file is not None and not identity_file.is_file():
        raise FileNotFoundError(f"build_sets: identity file {identity_file} does not exist")
    # the prepared outputs' content digests, not their inputs' fingerprints: a prep rerun that rewrote identical
    # bytes (inputs touched) leaves the sets, and so every trained model, as they are
    fingerprint = json_digest({"outputs": {s: (st or {}).get("outputs") for s, st in states.items()},
                               "split": {k: getattr(cfg, k) for k in SPLIT_FIELDS}, "label": source_label,
                               "nat": list(natural_eval_paths or []),
                               "identity": None if identity_file is None else file_sha256(identity_file),
                               "near_distance": NEAR_DISTANCE, "format": 4})
    info_path = out_dir / INFO_FILE
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(info_path.read_text())
        if info.get("fingerprint") == fingerprint and _sets_intact(out_dir, info):
            return info

    def load(source: str) -> tuple[np.ndarray, Any]:
        if states[source] is None:
            return np.zeros((0, OUT_SIZE, OUT_SIZE, 3), np.uint8), None
        return read_images(prepared_root / source), _kept_rows(prepared_root / source)

    loaded = {s: load(s) for s in SOURCES}
    dups = find_duplicates((s, *r) for s, (_, rows) in loaded.items() if rows is not None
                           for r in zip(rows["path"], rows[EXACT_COLUMN], rows[NEAR_COLUMN]))
    (celeba, celeba_rows), (anime, anime_rows) = loaded["celeba"], loaded["anime"]
    (imagenet, imagenet_rows), (styles, styles_rows) = loaded["imagenet"], loaded["styles"]
    eval_faces, identities, split = content_split(list(celeba_rows["path"]), identity_file, cfg, face_groups(dups))

    held: set[str] = set()
    natural_idx = np.zeros(0, np.int64)
    if imagenet_rows is not None:
        labels = list(imagenet_rows["path"])
        if natural_eval_paths is not None:
            unknown = set(natural_eval_paths) - set(labels)
            if unknown:
                raise DataError(f"build_sets: natural_eval_paths {sorted(unknown)} are not kept ImageNet rows")
            held = set(natural_eval_paths)
            natural_idx = image_ranges(imagenet_rows, held)[0]
        else:
            held = held_out(labels, min(cfg.natural_eval_count, len(labels) // 2), cfg.seed, "natural_eval")
            natural_idx = image_ranges(imagenet_rows, held, first_only=True)[0]
    # every evaluation image; a copy of one in a training set would be evaluated on what the model trained on
    evaluated = {("celeba", f) for f in eval_faces} | {("imagenet", f) for f in held} | {
        ("styles", f) for f in styles_rows["path"]}
    dropped = off_training(dups, evaluated)
    content_idx = image_ranges(celeba_rows, eval_faces)[0]
    celeba_idx = image_ranges(celeba_rows, eval_faces | dropped.get("celeba", set()))[1]
    content_ids = eval_identities(celeba_rows, eval_faces, identities)
    if split["split"] == "identity":
        split["train_faces"] = len(celeba_idx)
    anime_idx = select_anime(None if anime_rows is None else anime_rows[~anime_rows["path"].isin(
        dropped.get("anime", set()))], len(celeba_idx), cfg)
    imagenet_idx = np.zeros(0, np.int64)
    n_imagenet_pool = 0
    if imagenet_rows is not None:
        imagenet_idx = select_imagenet(imagenet_rows, held | dropped.get("imagenet", set()), len(celeba_idx), cfg)
        n_imagenet_pool = len(image_ranges(imagenet_rows, held | dropped.get("imagenet", set()))[1])
    style_idx = np.arange(len(styles), dtype=np.int64)
    try:
        _check_usable(states, cfg, split, identity_file, {"celeba": len(celeba_idx), "content_eval": len(content_idx),
                                                          "style_eval": len(style_idx), "natural_eval": len(natural_idx)})
    except Exception:
        remove_durably(info_path)  # earlier sets no longer match prepared/: a later stage must not take them as ready
        raise

    remove_durably(info_path)  # the sets' state record goes first; written again last
    digests: dict[str, str] = {}

    def write(name: str, pieces: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
        n = sum(len(idx) for _, idx in pieces)
        digests[SET_FILES[name]] = write_npy_atomic(out_dir / SET_FILES[name],
                                                    (blk for arr, idx in pieces for blk in _take(arr, idx)), n)
        return n

    counts = {
        "celeba": write("celeba", [(celeba, celeba_idx)]),
        "mixed": write("mixed", [(celeba, celeba_idx), (anime, anime_idx), (imagenet, imagenet_idx)]),
        "content_eval": write("content_eval", [(celeba, content_idx)]),
        "style_eval": write("style_eval", [(styles, style_idx)]),
        "natural_eval": write("natural_eval", [(imagenet, natural_idx)]),
    }
    with atomic_open(out_dir / EVAL_IDENTITY_FILE, "wb", keep_identical=True) as f:
        np.save(f, content_ids)
    digests[EVAL_IDENTITY_FILE] = file_sha256(out_dir / EVAL_IDENTITY_FILE)
    a, b = len(celeba_idx), len(celeba_idx) + len(anime_idx)
    converted = 0 if imagenet_rows is None else int((imagenet_rows["mode"] != "RGB").sum())
    info = {
        "source": source_label,
        "is_sample": source_label == SAMPLE_SOURCE_LABEL,
        "sets": {name: {"file": SET_FILES[name], "count": counts[name], "paper_count": PAPER_SET_COUNTS[name],
                        "role": SET_ROLES[name]} for name in SET_FILES},
        "split": split["split"],
        "content_split": split,
        "content_eval_identity_file": EVAL_IDENTITY_FILE,
        "mixed_composition": {"celeba": [0, a], "anime": [a, b], "imagenet": [b, counts["mixed"]]},
        "mixed_counts": mixed_counts({"celeba": a, "anime": len(anime), "imagenet": n_imagenet_pool},
                                     {"celeba": a, "anime": b - a, "imagenet": counts["mixed"] - b}),
        "mixed_rule": mixed_rule(cfg, a),
        "imagenet_converted_to_rgb": converted,
        "held_out": {"content_eval": sorted(eval_faces), "natural_eval": sorted(held),
                     "off_training_duplicates": {k: sorted(v) for k, v in sorted(dropped.items())}},
        "duplicates": {**dups.summary(), "kept_apart": {
            "dropped_from_training": {k: len(v) for k, v in sorted(dropped.items())},
            "merged_identities": len(split.get("identities_merged_by_duplicates") or [])}},
        "prepared": {s: (st or {}).get("summary") for s, st in states.items()},
        "paper_counts": PAPER_COUNTS,
        "paper_mixed_shares": PAPER_MIXED_SHARES,
        "prep_config": asdict(cfg),
        "departures": departures(cfg, source_label, split=split["split"], n_converted=converted,
                                 n_dropped=sum(len(v) for v in dropped.values())),
        "fingerprint": fingerprint,
        "sha256": digests,
    }
    atomic_write_text(info_path, json.dumps(info, indent=2, default=str))
    return info


def _check_usable(states: dict[str, Any], cfg: PrepConfig, split: dict[str, Any], identity_file: Path | None,
                  counts: dict[str, int]) -> None:
    """One line, before anything is written, when the sets could not serve: no training face, or an evaluation set
    that would be empty although its source has images and the configuration asks for it (it failed stages later)."""
    def kept(source: str) -> str:
        s = (states[source] or {}).get("summary") or {}
        reasons = ", ".join(f"{r} {n}" for r, n in (s.get("by_reason") or {}).items() if r != "ok")
        if not s.get("files"):
            return f"{s.get('src') or source} holds no file"
        return f"{s.get('src') or source} gave {s.get('kept', 0)} usable of {s['files']} file(s)" + (
            f" ({reasons})" if reasons else "")

    if counts["celeba"] == 0:
        raise DataError(f"no training images: {kept('celeba')}; the faces folder must hold face photos")
    if counts["content_eval"] == 0 and cfg.eval_fraction > 0 and cfg.eval_max > 0:
        people = split.get("train_identities", 0)
        why = (f"{identity_file} names {people} person(s) among the kept faces, and holding out whole people needs "
               f"at least 2" if split["split"] == "identity" else
               f"{kept('celeba')}, and holding faces out needs at least 2 that are not one picture")
        raise DataError(f"content_eval would be empty: {why}")
    if counts["style_eval"] == 0:
        raise DataError(f"style_eval would be empty: {kept('styles')}")
    if counts["natural_eval"] == 0 and states["imagenet"] is not None and cfg.natural_eval_count > 0:
        raise DataError(f"natural_eval would be empty: {kept('imagenet')}, and holding photos out needs at least 2")


def _sets_intact(out_dir: Path, info: dict) -> bool:
    """Every set file is the one info.json recorded: count (from the .npy header) and content digest."""
    digests = info.get("sha256") or {}
    for name, meta in (info.get("sets") or {}).items():
        shape = npy_shape(out_dir / SET_FILES[name])
        if shape is None or shape[0] != meta.get("count"):
            return False
    try:
        return set(digests) == {*SET_FILES.values(), EVAL_IDENTITY_FILE} and all(
            file_sha256(out_dir / f) == d for f, d in digests.items())
    except OSError:
        return False


def departures(cfg: PrepConfig, source_label: str, *, split: str | None = None,
               n_converted: int | None = None, n_dropped: int = 0) -> list[str]:
    """Where the prepared data differs from the paper's (recorded in info.json; docs/DEPARTURES.md "Data")."""
    out = []
    if source_label == SAMPLE_SOURCE_LABEL:
        out.append("sample set: photos bundled with scikit-image/matplotlib, not CelebA/AnimeFace/ImageNet, and 10 "
                   "public-domain paintings as styles (wae_lib/data/sample_styles); faces are jittered crops of 2 "
                   "photos (content_eval crops are of the same 2 people); no anime source; natural images are "
                   "random crops with flips")
    if cfg.eval_fraction > 0 and cfg.eval_max > 0:
        if split == "identity":
            out.append(f"content_eval: whole identities held out of training (identity file): faces up to "
                       f"max({cfg.eval_min}, {cfg.eval_fraction:.0%} of kept CelebA files), at most {cfg.eval_max}; "
                       f"no person is in both (the paper trains on all kept images)")
        else:
            out.append(f"content_eval: {cfg.eval_fraction:.0%} of kept CelebA files (at most {cfg.eval_max}) held "
                       f"out of training by file, without an identity file, so a person may be in both (the paper "
                       f"trains on all kept images)")
    if n_dropped:
        out.append(f"duplicates: {n_dropped} kept image(s) left out of training as exact or near copies of held-out "
                   f"images (wae_lib.data.duplicates; the paper trains on every kept image)")
    if cfg.natural_eval_count > 0:
        out.append(f"natural_eval: up to {cfg.natural_eval_count} ImageNet files held out of the mixed set")
    if cfg.mixed_anime_ratio or cfg.mixed_imagenet_ratio:
        out.append(f"mixed set: AnimeFace capped at round(n_celeba_train x {cfg.mixed_anime_ratio:.5f}) and ImageNet "
                   f"crops at round(n_celeba_train x {cfg.mixed_imagenet_ratio:.5f}) (0 = no cap), the paper's "
                   f"proportions; the paper uses every image (the same proportions on its full data)")
    if cfg.imagenet_extra_crops:
        out.append(f"imagenet_extra_crops={cfg.imagenet_extra_crops}: extra random 64x64 crops per ImageNet file "
                   f"(the paper takes the central crop only), used as far as mixed_imagenet_ratio asks")
    if cfg.imagenet_resize_first:
        out.append("imagenet_resize_first: short side resized to 64 before the central crop (paper: literal crop)")
    if not cfg.imagenet_require_rgb:
        n = "" if n_converted is None else f" ({n_converted} file{'' if n_converted == 1 else 's'})"
        out.append(f"imagenet_require_rgb=False: greyscale/CMYK/RGBA/palette ImageNet files converted to RGB{n} "
                   f"instead of dropped (the paper keeps 3-channel images only)")
    return out


def data_label(data_dir: str | Path | None) -> str:
    """What info.json and every caption call the data: the sample set's label, or ``DATA_DIR=<folder>``."""
    return SAMPLE_SOURCE_LABEL if data_dir is None else f"DATA_DIR={Path(data_dir)}"


def prepare_all(data_dir: str | Path | None, data_root: str | Path, cfg: PrepConfig | None = None, *,
                progress: bool = True, verbose: bool = True) -> dict[str, Any]:
    """Prepare every source and build the sets under the data root ``data_root`` (``prepared/<source>``, ``sets/``).

    ``data_dir=None``: the embedded sample set (not the paper's data). Otherwise a folder laid out like
    ``faces/ anime/ natural/ styles/`` (see DATA_DIR_LAYOUT for accepted alternatives); faces and styles are
    required, anime and natural may be missing (their sets are then empty). An ``identity.csv`` beside or inside
    the faces folder makes the held-out faces whole identities (build_sets). Returns ``sets/info.json``."""
    cfg = cfg or PrepConfig()
    t0 = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    natural_eval_paths = identity_file = None
    label = data_label(data_dir)
    if data_dir is None:
        say(f"Building the {label}: images bundled with scikit-image and matplotlib. Results on it say nothing "
            f"about the paper; pass a data folder (DATA_DIR) for real data.")
        summaries = build_sample_prepared(data_root, cfg)
        natural_eval_paths = list(SAMPLE_NATURAL_EVAL)
    else:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"prepare_all: data_dir {str(data_dir)!r} is not a folder (expected faces/, "
                                    f"anime/, natural/, styles/ inside)")
        summaries = {}
        for source in SOURCES:
            folder = find_source(data_dir, source)
            if folder is None:
                if source in ("celeba", "styles"):
                    raise FileNotFoundError(f"prepare_all: {data_dir} has none of {DATA_DIR_LAYOUT[source]} "
                                            f"(needed for {source})")
                say(f"{source}: no {'/'.join(DATA_DIR_LAYOUT[source])} folder in {data_dir}; its set stays empty")
                shutil.rmtree(prepared_dir(data_root, source), ignore_errors=True)
                continue
            summaries[source] = PREPARERS[source](folder, prepared_dir(data_root, source), cfg, progress=progress)
        identity_file = find_identity_file(find_source(data_dir, "celeba"))
        say(f"identities: {identity_file or f'no {IDENTITY_FILE} beside or inside the faces folder'}")
    for s in summaries.values():
        say(format_summary(s))
    info = build_sets(prepared_dir(data_root), sets_dir(data_root), cfg, source_label=label,
                      natural_eval_paths=natural_eval_paths, identity_file=identity_file)
    say(format_split(info))
    say(format_duplicates(info))
    say(format_mixed(info))
    if info["imagenet_converted_to_rgb"]:
        say(f"imagenet: {info['imagenet_converted_to_rgb']} non-RGB files (greyscale, CMYK, ...) converted to RGB")
    if verbose:
        stage_done("data", f"sets ({label}) in {sets_dir(data_root)}: " +
                   ", ".join(f"{name} {v['count']}" for name, v in info["sets"].items()), t0, file=sys.stdout)
    return info
