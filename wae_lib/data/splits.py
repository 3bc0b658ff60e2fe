"""Which image goes into which set: the held-out rules and the mixed set's proportions (pure functions of the
manifests' rows and PrepConfig; wae_lib.data.build_sets applies them).

* content_eval: held-out CelebA faces, whole identities when an identity file exists (``identity_split``), else
  ``eval_fraction`` of the files (``file_split``); ``content_split`` picks one and describes it for info.json.
* the mixed set follows the paper's proportions (SPEC.md §4: 193,800 CelebA + 14,490 anime + 196,371 ImageNet):
  ``select_anime`` and ``select_imagenet`` cap those sources relative to the CelebA training faces.

Every choice is a seeded hash of the file name: independent of file order and stable when files are added. Faces
that are one picture (wae_lib.data.duplicates: ``groups``) share a side: without an identity file a group is held
out whole or not at all; with one, the identities a group spans are merged into one person for the split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .layout import IDENTITY_FILE, PAPER_MIXED_SHARES, DataError, label_identities, read_identities
from .options import PrepConfig


def _hash_rank(items: Iterable[Any], seed: int, salt: str, key: Any = str) -> list[Any]:
    """``items`` sorted by a seeded hash of ``key(item)``: independent of input order, stable when items are added."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{seed}:{salt}:{key(it)}".encode()).hexdigest())


def held_out(labels: Sequence[str], n: int, seed: int, salt: str) -> set[str]:
    """The ``n`` labels with the smallest seeded hash: independent of file order and stable when files are
    added (a file's membership changes only if it is pushed out of the n smallest)."""
    return set(_hash_rank(labels, seed, salt)[:n])


def image_ranges(rows, selected: set[str], first_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices of rows in ``selected``, indices of all other rows), as image indices into images.npy."""
    inside, outside = [], []
    for path, idx, n in zip(rows["path"], rows["index"], rows["n_images"]):
        idx, n = int(idx), int(n)
        if path in selected:
            inside.extend(range(idx, idx + (1 if first_only else n)))
        else:
            outside.extend(range(idx, idx + n))
    return np.asarray(inside, dtype=np.int64), np.asarray(outside, dtype=np.int64)


# ---------------- content_eval: held-out faces, by identity when an identity file exists ----------------
def file_split(labels: Sequence[str], cfg: PrepConfig, groups: Sequence[Sequence[str]] = ()) -> set[str]:
    """Held-out faces without an identity file: ``eval_fraction`` of the kept files (at least 1, at most
    ``eval_max``), seeded hash of the path. The same person may then be in training and content_eval, but never the
    same picture: a file of one of ``groups`` (duplicates) brings its whole group, if the group fits in the count
    (else none of it). Without groups: the first n files in hash order, as before duplicates were checked."""
    n = len(labels)
    n_eval = 0 if cfg.eval_fraction == 0 or n < 2 else min(cfg.eval_max, max(1, round(cfg.eval_fraction * n)))
    group_of = {label: tuple(g) for g in groups for label in g}
    held: set[str] = set()
    for label in _hash_rank(labels, cfg.seed, "content_eval"):
        if len(held) >= n_eval:
            break
        members = group_of.get(label, (label,))
        if label not in held and len(held) + len(members) <= n_eval:
            held.update(members)
    return held


def identity_split(identities: dict[str, int], cfg: PrepConfig) -> list[int]:
    """Held-out identities (our addition; SPEC.md §4: the paper holds nothing out). Whole identities in seeded-hash
    order until their faces reach ``max(eval_min, round(eval_fraction x faces))``; an identity that would take
    the count above ``eval_max`` is skipped, and at most half of the identities are held out (the rest train).
    ``eval_fraction = 0`` or ``eval_max = 0``: none."""
    sizes = Counter(identities.values())
    if cfg.eval_fraction == 0 or cfg.eval_max == 0 or len(sizes) < 2:
        return []
    target = min(cfg.eval_max, max(cfg.eval_min, round(cfg.eval_fraction * len(identities))))
    chosen, count = [], 0
    for ident in _hash_rank(sorted(sizes), cfg.seed, "content_eval_identity"):
        if count >= target or len(chosen) >= len(sizes) // 2:
            break
        if count + sizes[ident] <= cfg.eval_max:
            chosen.append(ident)
            count += sizes[ident]
    return sorted(chosen)


def merge_identities(ids: dict[str, int], groups: Sequence[Sequence[str]]) -> tuple[dict[str, int], dict[str, int],
                                                                               list[list[int]]]:
    """Identities joined by duplicates: (label -> the person the split uses, label -> identity to record, merged).

    A group whose faces are listed under two identities (one photo filed under two names) makes them one person
    for the split, represented by the smaller identity (so the seeded order of every other person stays as it
    was); an unlisted face in a group takes its group's identity. ``merged`` lists the identity sets joined."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    record = dict(ids)
    for g in groups:
        known = sorted({ids[label] for label in g if label in ids})
        for i in known[1:]:
            a, b = find(known[0]), find(i)
            parent[max(a, b)] = min(a, b)
        for label in g:
            if known and label not in ids:
                record[label] = known[0]
    split = {label: find(i) for label, i in record.items()}
    sets: dict[int, set[int]] = {}
    for i in parent:
        sets.setdefault(find(i), set()).add(i)
    return split, record, sorted(sorted(m) for m in sets.values() if len(m) > 1)


def content_split(labels: Sequence[str], identity_file: Path | None, cfg: PrepConfig,
                  groups: Sequence[Sequence[str]] = ()) -> tuple[set[str], dict[str, int], dict[str, Any]]:
    """(held-out labels, label -> identity, summary for info.json) for the kept CelebA files; each of ``groups``
    (duplicate faces) stays on one side."""
    if identity_file is None:
        held = file_split(labels, cfg, groups)
        return held, {}, {
            "split": "file", "identity_file": None, "held_out_faces": len(held), "held_out_identities": None,
            "rule": f"no {IDENTITY_FILE}: {cfg.eval_fraction:g} of the kept faces (at most {cfg.eval_max}) by a "
                    f"seeded hash of the file name, duplicates held out together; the same person may be in "
                    f"training and content_eval"}
    listed = label_identities(labels, read_identities(identity_file))
    if labels and not listed:
        raise DataError(f"identity file {identity_file}: none of the {len(labels)} kept faces is listed in it (its "
                         f"'file' column must hold the face files' names, such as {labels[0]!r})")
    person, ids, merged = merge_identities(listed, groups)
    chosen = set(identity_split(person, cfg))
    held = {label for label, i in person.items() if i in chosen}
    held_ids = {ids[label] for label in held}
    train_ids = {i for label, i in ids.items() if label not in held}
    if held_ids & train_ids:  # cannot happen by construction; checked because evaluation relies on it
        raise DataError(f"identity split: identities {sorted(held_ids & train_ids)} in training and content_eval")
    return held, ids, {
        "split": "identity", "identity_file": str(identity_file), "held_out_faces": len(held),
        "held_out_identities": len(held_ids), "train_faces": len(labels) - len(held),
        "train_identities": len(train_ids), "faces_without_identity": len(labels) - len(ids),
        "identities_in_both": 0, "content_eval_identities": sorted(held_ids),
        "identities_merged_by_duplicates": merged, "faces_given_identity_by_duplicates": len(ids) - len(listed),
        "rule": f"whole identities from {identity_file.name}, in seeded-hash order, until the held-out faces reach "
                f"max(eval_min={cfg.eval_min}, eval_fraction={cfg.eval_fraction:g} x faces), at most "
                f"eval_max={cfg.eval_max} faces and half of the identities; faces not in the file stay in training "
                f"unless a duplicate ties them to a listed face; identities sharing a duplicate count as one person"}


def eval_identities(rows, held: set[str], ids: dict[str, int]) -> np.ndarray:
    """Identity of each content_eval image (the order of ``image_ranges(rows, held)[0]``), -1 if unknown."""
    out = [ids.get(p, -1) for p, n in zip(rows["path"], rows["n_images"]) if p in held for _ in range(int(n))]
    return np.asarray(out, dtype=np.int64)


# ---------------- the mixed set's proportions (SPEC.md §4: 193,800 CelebA + 14,490 anime + 196,371 ImageNet) ----
def _cap(n_celeba_train: int, ratio: float) -> int | None:
    """round(n_celeba_train x ratio), or None (no cap) when ratio is 0."""
    return None if ratio == 0 else round(n_celeba_train * ratio)


def select_anime(rows, n_celeba_train: int, cfg: PrepConfig) -> np.ndarray:
    """Image indices of the AnimeFace images in the mixed set: at most round(n_celeba_train x mixed_anime_ratio)
    (the paper's 14,490 : 193,800), chosen by seeded hash; every image when the ratio is 0."""
    if rows is None:
        return np.zeros(0, np.int64)
    labels = list(rows["path"])
    cap = _cap(n_celeba_train, cfg.mixed_anime_ratio)
    chosen = set(labels) if cap is None or cap >= len(labels) else held_out(labels, cap, cfg.seed, "mixed_anime")
    return image_ranges(rows, chosen)[0]


def select_imagenet(rows, exclude: set[str], n_celeba_train: int, cfg: PrepConfig) -> np.ndarray:
    """Image indices of the ImageNet crops in the mixed set, leaving out every crop of the files in ``exclude``
    (natural_eval): at most round(n_celeba_train x mixed_imagenet_ratio) (the paper's 196,371 : 193,800); the
    central crops (the paper's crop) first, then the extra crops, each group in seeded-hash order; every crop
    when the ratio is 0 or fewer crops exist."""
    pool = image_ranges(rows, exclude)[1]
    cap = _cap(n_celeba_train, cfg.mixed_imagenet_ratio)
    if cap is None or cap >= len(pool):
        return pool
    central, extra = [], []
    for path, idx, n in zip(rows["path"], rows["index"], rows["n_images"]):
        if path not in exclude:
            central.append((path, int(idx)))
            extra.extend((f"{path}#{k}", int(idx) + k) for k in range(1, int(n)))
    ranked = [*_hash_rank(central, cfg.seed, "mixed_imagenet", key=lambda t: t[0]),
              *_hash_rank(extra, cfg.seed, "mixed_imagenet", key=lambda t: t[0])]
    return np.sort(np.asarray([i for _, i in ranked[:cap]], dtype=np.int64))


def mixed_rule(cfg: PrepConfig, n_celeba_train: int) -> str:
    """The rule that sets the mixed set's composition, in words, with this run's numbers."""
    def part(name: str, field: str, paper: str, what: str, order: str = "") -> str:
        ratio = getattr(cfg, field)
        if ratio == 0:
            return f"{name}: every {what} ({field}=0)"
        return (f"{name}: at most round({n_celeba_train:,} x {field}={ratio:.5f}) = "
                f"{_cap(n_celeba_train, ratio):,} {what} (the paper's {paper}), {order}seeded-hash choice")

    return "; ".join([f"CelebA: every training face ({n_celeba_train:,})",
                      part("AnimeFace", "mixed_anime_ratio", "14,490/193,800", "images"),
                      part("ImageNet", "mixed_imagenet_ratio", "196,371/193,800", "crops",
                           "central crops first, then extra crops, ")])


def mixed_counts(available: dict[str, int], used: dict[str, int]) -> dict[str, dict[str, Any]]:
    total = sum(used.values())
    return {s: {"available": available[s], "used": used[s], "share": used[s] / total if total else 0.0,
                "paper_share": PAPER_MIXED_SHARES[s]} for s in ("celeba", "anime", "imagenet")}


def format_mixed(info: dict[str, Any]) -> str:
    """The mixed set's composition next to the paper's shares, and the rule that set it."""
    lines = [f"mixed set ({info['sets']['mixed']['count']:,} images). Rule: {info['mixed_rule']}",
             f"    {'source':<10}{'available':>11}{'used':>9}{'share':>9}{'paper share':>13}"]
    for s, c in info["mixed_counts"].items():
        lines.append(f"    {s:<10}{c['available']:>11,}{c['used']:>9,}{c['share']:>9.1%}{c['paper_share']:>13.1%}")
    return "\n".join(lines)


def format_split(info: dict[str, Any]) -> str:
    """How content_eval was held out, in one or two lines."""
    c = info["content_split"]
    if c["split"] == "file":
        return f"content_eval: {c['held_out_faces']} faces held out by file. {c['rule']}"
    merged = c.get("identities_merged_by_duplicates") or []
    joined = (f"; {len(merged)} sets of identities merged because one photo is listed under each ({merged})"
              if merged else "")
    return (f"content_eval: {c['held_out_faces']} faces of {c['held_out_identities']} identities held out; "
            f"training keeps {c['train_faces']} faces of {c['train_identities']} identities "
            f"({c['faces_without_identity']} without identity); no identity is in both{joined}.\n    Rule: {c['rule']}")


def recount_identity_split(data_root: str | Path, info: dict[str, Any]) -> dict[str, Any] | None:
    """An independent recount of the identity split (notebook 01), from the CelebA manifest and the identity file
    rather than from build_sets' own numbers: the held-out and training identities, their overlap (must be empty)
    and faces per held-out person; checks that content_eval_identity.npy holds exactly the held-out identities.
    None when the split was by file (no identity file)."""
    from .layout import load_eval_identities, prepared_dir
    from .packed import read_manifest

    split = info["content_split"]
    if split["split"] != "identity":
        return None
    faces = read_manifest(prepared_dir(data_root, "celeba")).query("status == 'kept'")["path"]
    identity = label_identities(faces, read_identities(split["identity_file"]))
    held = set(info["held_out"]["content_eval"])
    held_ids = {identity[f] for f in held if f in identity}
    train_ids = {i for f, i in identity.items() if f not in held}
    eval_ids = load_eval_identities(data_root)
    if eval_ids is None or set(eval_ids[eval_ids >= 0].tolist()) != held_ids or len(eval_ids) != info["sets"]["content_eval"]["count"]:
        raise DataError(f"{data_root}: content_eval_identity.npy does not hold the held-out identities of the "
                         f"manifest; prepare the data again")
    per_person = Counter(eval_ids.tolist())
    return {"held_identities": len(held_ids), "held_faces": len(held), "train_identities": len(train_ids),
            "train_faces": len(faces) - len(held), "in_both": sorted(held_ids & train_ids),
            "faces_per_person": (min(per_person.values()), float(np.median(list(per_person.values()))),
                                 max(per_person.values()))}
