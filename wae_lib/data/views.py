"""What notebook 01 shows of the preparation: counts next to the paper's, tiles of crops, rejected files.

Display helpers only (the preparation never imports this module)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..utils import spread
from .decode import Rejected, decode_image
from .faces import centre_square, crop_resize
from .layout import SOURCES, prepared_dir
from .packed import OK, load_state, read_manifest


def counts_table(info: dict[str, Any]):
    """Per-source counts (kept, rejected by reason) next to the paper's, as a pandas DataFrame."""
    records = []
    for source in SOURCES:
        s = (info.get("prepared") or {}).get(source)
        if not s:
            continue
        rec = {"source": source, "files": s["files"], "kept": s["kept"], "images": s["images"],
               "rejected": s["rejected"], "paper kept": s.get("paper_kept"), "paper files": s.get("paper_files")}
        rec.update({f"rejected: {r}": n for r, n in s["by_reason"].items() if r != OK})
        records.append(rec)
    table = pd.DataFrame.from_records(records).set_index("source")
    reasons = [c for c in table.columns if c.startswith("rejected: ")]
    table[reasons] = table[reasons].fillna(0).astype(int)
    for col in ("paper kept", "paper files"):
        table[col] = table[col].astype("Int64")
    return table


def tile_images(images: np.ndarray | Sequence[np.ndarray], ncols: int = 12, pad: int = 2,
                fill: int = 255) -> np.ndarray:
    """Equal-size H x W x 3 uint8 images tiled row by row with ``pad`` px of ``fill`` between them."""
    images = list(images)
    if not images:
        return np.full((8, 8, 3), fill, np.uint8)
    h, w = images[0].shape[:2]
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), fill, np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return grid


def rejected_examples(root: str | Path, per_reason: int = 6) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_reason`` rejected files per reason over the sources prepared under the data root ``root``:
    manifest row + absolute path."""
    out: dict[str, list[dict[str, Any]]] = {}
    for source in SOURCES:
        folder = prepared_dir(root, source)
        state = load_state(folder)
        if state is None:
            continue
        m = read_manifest(folder)
        for reason, rows in m[m["status"] == "rejected"].groupby("reason", sort=True):
            for _, row in rows.iloc[spread(len(rows), per_reason)].iterrows():
                if len(out.setdefault(reason, [])) < per_reason:
                    out[reason].append({**row.to_dict(), "source": source, "file": Path(state["src"]) / row["path"]})
    return out


def preview_image(path: str | Path, size: int = 96) -> np.ndarray | None:
    """A thumbnail (``size`` x ``size``, square centre crop) of any file, or None if it cannot be decoded."""
    try:
        d = decode_image(Path(path), draft_min_side=size)
    except Rejected:
        return None
    return crop_resize(d.rgb, *centre_square(d.rgb), out=size)


def face_box_examples(root: str | Path, info: dict[str, Any], n: int = 6) -> tuple[list[dict[str, Any]], str]:
    """``n`` kept CelebA crops spread over the manifest, each with its source photo (``photo``), the detected
    face box (``face``: x, y, w, h) and the crop (``crop``: x, y, side) in that photo's pixels; or ``([], why)``
    when the source photos cannot be read from here. ``info``: the data stage's sets/info.json."""
    from .sample import sample_image_path  # the embedded sample: its rows are crops of one bundled photo

    m = read_manifest(prepared_dir(root, "celeba"))
    kept = m[m["status"] == "kept"]
    if kept.empty:
        return [], "face-box figure skipped: no CelebA crop was kept"
    src_root = Path(info["prepared"]["celeba"]["src"])  # as the data stage was given it (relative to its folder)
    rows = kept.iloc[spread(len(kept), n)]

    def photo_path(row) -> Path:
        return sample_image_path(row["path"].split("#")[0]) if info["is_sample"] else src_root / row["path"]

    if not photo_path(rows.iloc[0]).is_file():
        return [], (f"face-box figure skipped: the source photos are not at {src_root} from here (moved, or a "
                    f"relative path from another folder; run this notebook where `make data` ran)")
    return [{"photo": decode_image(photo_path(r)).rgb, "name": Path(r["path"]).name,
             "face": (r["face_x"], r["face_y"], r["face_w"], r["face_h"]),
             "crop": (r["crop_x"], r["crop_y"], r["crop_side"])} for _, r in rows.iterrows()], ""
