"""The embedded sample set (``prepare_all(None, ...)``, ``make data`` without DATA_DIR): photographs shipped inside
the scikit-image and matplotlib wheels and ten public-domain paintings shipped with this package
(``sample_styles/``, provenance in its SOURCES.md), written like prepare_* output, so that everything runs offline.

Not the paper's data: two face photos (astronaut, Grace Hopper) give jittered face crops, six colour photos give
random crops, the paintings are the style images, and there is no anime source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..utils import json_digest, remove_stale_temporaries
from .decode import decode_image
from .faces import centre_square, crop_resize, detect_faces
from .layout import OUT_SIZE, DataError, prepared_dir
from .options import PrepConfig
from .packed import manifest_row, up_to_date_state, write_prepared
from .prepare import code_versions, file_rng, output_params, run_prepare

SAMPLE_SOURCE_LABEL = "embedded sample set (not the paper's data)"
# Photographs shipped inside the scikit-image and matplotlib wheels (no download). Face photos: the two with a
# frontal face. "natural": colour photos without faces. Styles: the ten public-domain paintings of
# sample_styles/ (SOURCES.md there), so that the explorer and notebook 07 pair faces with artworks (issue 32).
SAMPLE_FACES = ("skimage:astronaut.png", "mpl:grace_hopper.jpg")
SAMPLE_NATURAL_TRAIN = ("skimage:chelsea.png", "skimage:motorcycle_left.png", "skimage:hubble_deep_field.jpg",
                        "skimage:retina.jpg")
SAMPLE_NATURAL_EVAL = ("skimage:coffee.png", "skimage:rocket.jpg")
SAMPLE_STYLES = tuple(f"wae:{name}.jpg" for name in (
    "starry_night", "the_scream", "composition_vii", "great_wave", "udnie", "shipwreck", "woman_with_hat_matisse",
    "mondrian", "contrast_of_forms", "manet_flowers"))
SAMPLE_STYLES_DIR = Path(__file__).parent / "sample_styles"
SAMPLE_FACE_CROPS = 160  # per face photo: random jitter of the face crop + flips
SAMPLE_NATURAL_CROPS = 75  # per training photo: random squares (64 px .. short side) + flips
SAMPLE_NATURAL_EVAL_CROPS = 8  # per held-out photo (the first is the centre square)


def sample_image_path(ref: str) -> Path:
    """``skimage:<file>``, ``mpl:<file>`` or ``wae:<file>`` (this package's paintings) -> the installed file."""
    pkg, _, name = ref.partition(":")
    if pkg == "wae":
        base = SAMPLE_STYLES_DIR
    elif pkg == "skimage":
        import skimage.data

        base = Path(skimage.data.__file__).parent
    elif pkg == "mpl":
        import matplotlib

        base = Path(matplotlib.get_data_path()) / "sample_data"
    else:
        raise DataError(f"sample image reference {ref!r}: expected 'skimage:<file>', 'mpl:<file>' or 'wae:<file>'")
    path = base / name
    if not path.is_file():
        raise FileNotFoundError(f"sample image {ref!r} is not in the installed package ({path}); the sample set "
                                f"needs the scikit-image and matplotlib wheels' bundled data and wae_lib/data/sample_styles/")
    return path


def _random_square(rng: np.random.Generator, h: int, w: int, lo: float, hi: float) -> tuple[float, float, float]:
    side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return rng.uniform(0, w - side), rng.uniform(0, h - side), side


def _maybe_flip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(img[:, ::-1]) if rng.random() < 0.5 else img


def _sample_faces(cfg: PrepConfig) -> tuple[list[dict], list[np.ndarray]]:
    """Jittered face crops (scale x0.9-1.1, shift up to 5% of the box, flips): one manifest row per crop, so
    that build_sets holds out individual crops (only two face photos exist offline)."""
    rows, images = [], []
    for ref in SAMPLE_FACES:
        d = decode_image(sample_image_path(ref))
        faces = detect_faces(d.rgb, cfg)
        if not faces:
            raise DataError(f"sample set: no face found in {ref} with PrepConfig {cfg}")
        x, y, w, h = faces[0]
        rng = file_rng(cfg.seed, ref)
        for k in range(SAMPLE_FACE_CROPS):
            j = rng.uniform(-0.05, 0.05, size=2) * w
            side = cfg.crop_multiple * w * rng.uniform(0.9, 1.1)
            cx, cy = x + w / 2 + j[0], y + h / 2 + cfg.crop_offset_y * h + j[1]
            img = crop_resize(d.rgb, cx - side / 2, cy - side / 2, side, max_pad_fraction=0.49)
            images.append(_maybe_flip(img, rng))
            rows.append(manifest_row(f"{ref}#{k:03d}", mode=d.mode, width=d.width, height=d.height, face_x=x, face_y=y,
                             face_w=w, face_h=h, n_faces=len(faces), crop_x=round(cx - side / 2, 1),
                             crop_y=round(cy - side / 2, 1), crop_side=round(side, 1), n_images=1))
    return rows, images


def _sample_natural(refs: Sequence[str], n_crops: int, seed: int) -> tuple[list[dict], list[np.ndarray]]:
    """Random squares of 64 px up to the short side, resized to 64x64, flipped half the time; one row per photo."""
    rows, images = [], []
    for ref in refs:
        d = decode_image(sample_image_path(ref))
        h, w = d.rgb.shape[:2]
        rng = file_rng(seed, ref)
        crops = [crop_resize(d.rgb, *centre_square(d.rgb))]
        while len(crops) < n_crops:
            crops.append(_maybe_flip(crop_resize(d.rgb, *_random_square(rng, h, w, OUT_SIZE, min(h, w))), rng))
        images.extend(crops)
        rows.append(manifest_row(ref, mode=d.mode, width=d.width, height=d.height, n_images=len(crops)))
    return rows, images


def build_sample_prepared(root: str | Path, cfg: PrepConfig | None = None) -> dict[str, dict]:
    """The offline sample set, written like prepare_* output under the data root's ``prepared/<source>``.

    Not the paper's data: two face photos (astronaut, Grace Hopper) give jittered face crops, six colour
    photos give random crops, ten public-domain paintings are the styles, and there is no anime source. It exists so that every later stage runs without downloads."""
    cfg = cfg or PrepConfig()
    natural_refs = SAMPLE_NATURAL_TRAIN + SAMPLE_NATURAL_EVAL
    builders = {
        "celeba": lambda: _sample_faces(cfg),
        "anime": lambda: ([], []),
        "imagenet": lambda: _sample_natural(natural_refs, SAMPLE_NATURAL_CROPS, cfg.seed),
    }
    params = {"celeba": output_params("celeba", cfg), "anime": {}, "imagenet": {"seed": cfg.seed}}
    summaries: dict[str, dict] = {}
    for source, build in builders.items():
        out_dir = prepared_dir(root, source)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir)
        fingerprint = json_digest({"sample": 1, "params": params[source], "faces": SAMPLE_FACES, "nat": natural_refs,
                                   "n": [SAMPLE_FACE_CROPS, SAMPLE_NATURAL_CROPS], **code_versions(__file__)})
        state = up_to_date_state(out_dir, fingerprint)
        if state:
            summaries[source] = dict(state["summary"], up_to_date=True)
            continue
        rows, images = build()
        if source == "imagenet":  # held-out photos need fewer crops
            keep_rows, keep_images, i = [], [], 0
            for r in rows:
                n = r["n_images"] if r["path"] not in SAMPLE_NATURAL_EVAL else SAMPLE_NATURAL_EVAL_CROPS
                keep_images.extend(images[i:i + n])
                i += r["n_images"]
                keep_rows.append(dict(r, n_images=n))
            rows, images = keep_rows, keep_images
        summaries[source] = write_prepared(out_dir, source, "sample", fingerprint, rows,
                                           [np.stack(images)] if images else [], len(images))
    styles = [(ref, sample_image_path(ref)) for ref in SAMPLE_STYLES]
    summaries["styles"] = run_prepare("styles", styles, prepared_dir(root, "styles"), cfg, src="sample", progress=False)
    return summaries
