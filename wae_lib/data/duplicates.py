"""Duplicates across every source, found before any split so that build_sets can keep each group on one side of it.

A web-scraped folder holds the same photo under two names, or a copy resized or recompressed; the same picture can
sit in ``faces/`` and ``styles/``. If one copy trains and the other is held out, the held-out number measures
memory. Two relations, computed on the decoded image (EXIF orientation and colour profile applied), never the bytes:

* **exact**: the same decoded pixels at full resolution (``pixel_digest``: sha256 of size and RGB bytes). A PNG
  saved from a JPEG's pixels is exact; the same photo re-encoded as JPEG, even at quality 100, is not (its pixels
  differ): that is a near duplicate.
* **near**: the same picture resized, recompressed, recoloured a little or recropped by a few pixels
  (``perceptual_hash``: a 64-bit DCT pHash and a 64-bit dHash of the greyscale thumbnail, 128 bits), at most
  ``NEAR_DISTANCE`` bits apart.

``fingerprints`` runs in the preparation workers where each file is decoded anyway (wae_lib.data.prepare) and its
two columns go into the manifest; ``find_duplicates`` groups the kept files of every source (union-find over both
relations) and counts them for the log and ``sets/info.json``. Imported by the preparation workers: no torch here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

EXACT_COLUMN = "pixel_digest"
NEAR_COLUMN = "perceptual_hash"
# Why 10 of 128 bits: on data-large (10,984 files) every pair at combined distance <= 10 that we looked at (all 10
# face pairs at 9-10, samples below) was one photo twice (re-encoded, resized, recoloured, recropped by a few
# pixels); from 11 on, different photos of look-alike aligned CelebA faces appear (7 of 17 face pairs at 11-12).
# A resized or JPEG-recompressed copy lands at 0-4. A false positive only moves an image to the other side of a
# split; a miss leaks it, so the threshold sits at the top of the clean range.
NEAR_DISTANCE = 10
_THUMB = 32  # pHash: DCT of a 32x32 greyscale thumbnail, its 8x8 lowest frequencies against their median
_k = np.arange(_THUMB)
_DCT = np.sqrt(2 / _THUMB) * np.cos(np.pi * (2 * _k[None, :] + 1) * _k[:, None] / (2 * _THUMB))
_DCT[0] /= np.sqrt(2)


def fingerprints(rgb: np.ndarray) -> dict[str, str]:
    """A decoded H x W x 3 uint8 image -> its manifest columns: ``pixel_digest`` (exact) and ``perceptual_hash``
    (near: 32 hex digits, pHash then dHash)."""
    h, w = rgb.shape[:2]
    digest = hashlib.sha256(f"{h}x{w}:".encode() + np.ascontiguousarray(rgb).tobytes()).hexdigest()[:32]
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    thumb = cv2.resize(grey, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float64)
    low = (_DCT @ thumb @ _DCT.T)[:8, :8].ravel()
    phash = low > np.median(low[1:])  # the DC term (mean brightness) is left out of the median
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA)
    dhash = (small[:, 1:] > small[:, :-1]).ravel()  # brightness gradients, left to right
    return {EXACT_COLUMN: digest, NEAR_COLUMN: np.packbits(np.concatenate([phash, dhash])).tobytes().hex()}


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def hamming(a: str, b: str) -> int:
    """Bits that differ between two ``perceptual_hash`` values."""
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def pair_name(a: str, b: str) -> str:
    return "-".join(sorted((a, b)))


@dataclass
class Duplicates:
    """Groups of two or more kept files (``(source, label)``) that are one picture, and their counts."""

    groups: list[list[tuple[str, str]]] = field(default_factory=list)
    exact_groups: int = 0  # sets of files with the same decoded pixels
    near_groups: int = 0  # final groups that needed a near link (not one exact set alone)
    pairs: dict[str, dict[str, int]] = field(default_factory=dict)  # "celeba-styles" -> exact / near file pairs
    checked: dict[str, int] = field(default_factory=dict)  # kept files per source with fingerprints
    unchecked: dict[str, int] = field(default_factory=dict)  # ... without (the sample set's crops, fixtures)

    def group_of(self) -> dict[tuple[str, str], int]:
        return {node: g for g, members in enumerate(self.groups) for node in members}

    def summary(self) -> dict[str, Any]:
        return {"rule": f"exact: the same decoded pixels ({EXACT_COLUMN}); near: 64-bit DCT pHash + 64-bit dHash of "
                        f"the greyscale thumbnail ({NEAR_COLUMN}) at most {NEAR_DISTANCE} of 128 bits apart; groups "
                        f"join both relations across every source (union-find)",
                "near_distance": NEAR_DISTANCE, "exact_groups": self.exact_groups, "near_groups": self.near_groups,
                "groups": len(self.groups), "images_in_groups": sum(len(g) for g in self.groups),
                "pairs_by_sources": self.pairs, "checked": self.checked, "unchecked": self.unchecked,
                "members": [[f"{s}/{label}" for s, label in g] for g in self.groups]}


def find_duplicates(items: Iterable[tuple[str, str, str, str]]) -> Duplicates:
    """Group ``(source, label, pixel_digest, perceptual_hash)`` items (kept files; empty hashes = not checked).

    Exact sets come from equal digests; near links from every pair of distinct exact sets whose hashes are within
    NEAR_DISTANCE, found blockwise (N^2/2 XOR-popcounts: ~11,000 files take well under a second, ImageNet's 1.3 M
    would take hours and need an index)."""
    out = Duplicates()
    nodes: list[tuple[str, str]] = []
    classes: dict[str, list[int]] = {}  # digest -> nodes with those pixels
    hashes: dict[str, str] = {}
    for source, label, digest, phash in items:
        if not digest or not phash:
            out.unchecked[source] = out.unchecked.get(source, 0) + 1
            continue
        out.checked[source] = out.checked.get(source, 0) + 1
        classes.setdefault(digest, []).append(len(nodes))
        hashes.setdefault(digest, phash)
        nodes.append((source, label))
    uf = _UnionFind(len(nodes))
    pairs: dict[str, Counter] = {}

    def count(kind: str, a: Counter, b: Counter | None = None) -> None:
        for s, n in a.items():
            for t, m in (b or a).items():
                if b is None and s > t:
                    continue
                k = n * (n - 1) // 2 if b is None and s == t else n * m
                if k:
                    pairs.setdefault(pair_name(s, t), Counter())[kind] += k

    reps = list(classes)
    sources = [Counter(nodes[i][0] for i in classes[d]) for d in reps]
    for members, src in zip(classes.values(), sources):
        for i in members[1:]:
            uf.union(members[0], i)
        if len(members) > 1:
            out.exact_groups += 1
            count("exact", src)
    near_roots = set()
    if reps:
        bits = np.array([[int(hashes[d][:16], 16), int(hashes[d][16:], 16)] for d in reps], dtype=np.uint64)
        block = max(1, 2**22 // len(reps))  # rows per step: about 32 MB of XORs whatever the count
        for start in range(0, len(reps), block):
            part = bits[start:start + block]
            dist = (_popcount(part[:, None, 0] ^ bits[None, :, 0]) + _popcount(part[:, None, 1] ^ bits[None, :, 1]))
            for i, j in zip(*np.nonzero(dist <= NEAR_DISTANCE)):
                i = int(i) + start
                if j > i:
                    count("near", sources[i], sources[j])
                    uf.union(classes[reps[i]][0], classes[reps[j]][0])
                    near_roots.add(classes[reps[i]][0])
    components: dict[int, list[int]] = {}
    for i in range(len(nodes)):
        components.setdefault(uf.find(i), []).append(i)
    groups = sorted(sorted(nodes[i] for i in members) for members in components.values() if len(members) > 1)
    out.groups = groups
    out.near_groups = len({uf.find(i) for i in near_roots})
    out.pairs = {k: {"exact": c["exact"], "near": c["near"]} for k, c in sorted(pairs.items())}
    return out


def off_training(dups: Duplicates, held: set[tuple[str, str]]) -> dict[str, set[str]]:
    """The members of every group that holds a held-out file (``held``: (source, label) of every evaluation image)
    which are not held out themselves, by source: they leave every training set, so that no evaluation image has
    a copy in training."""
    out: dict[str, set[str]] = {}
    for members in dups.groups:
        if any(node in held for node in members):
            for source, label in members:
                if (source, label) not in held:
                    out.setdefault(source, set()).add(label)
    return out


def face_groups(dups: Duplicates, source: str = "celeba") -> list[list[str]]:
    """The labels of ``source`` in each group that holds two or more of them: they must share one side of the
    content split (wae_lib.data.splits.content_split)."""
    out = []
    for members in dups.groups:
        labels = [label for s, label in members if s == source]
        if len(labels) > 1:
            out.append(labels)
    return out


def format_duplicates(info: dict[str, Any]) -> str:
    """The duplicate check in a few lines: its counts by source pair and what it moved."""
    d = info["duplicates"]
    lines = [f"duplicates: {d['exact_groups']} exact groups (same decoded pixels), {d['near_groups']} near groups "
             f"(perceptual hash within {d['near_distance']} of 128 bits), {d['images_in_groups']} images in "
             f"{d['groups']} groups, each kept on one side of every split"]
    if d["pairs_by_sources"]:
        lines.append("    file pairs by sources: " + ", ".join(
            f"{k} {v['exact']} exact / {v['near']} near" for k, v in d["pairs_by_sources"].items()))
    moved = d.get("kept_apart") or {}
    dropped = moved.get("dropped_from_training") or {}
    lines.append(f"    left out of training as copies of held-out images: {sum(dropped.values())}"
                 + (f" ({', '.join(f'{s} {n}' for s, n in dropped.items())})" if dropped else ""))
    if moved.get("merged_identities"):
        lines.append(f"    identities merged (one photo under two people): {moved['merged_identities']}")
    if d["unchecked"]:
        lines.append("    not checked (manifest rows without fingerprints, as the sample set's crops of a few photos): " +
                     ", ".join(f"{s} {n} files" for s, n in d["unchecked"].items()))
    return "\n".join(lines)

