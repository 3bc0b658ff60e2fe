"""Face identity of generated faces: a metric the models were not trained on (issue 5).

The style/content distances of ``wae_lib.eval.metrics`` use the same frozen VGG16 that the models are trained
against, so a model can score well on them without keeping the person recognisable. Here a separate network
judges identity: dlib's face-recognition ResNet (King 2009, "Dlib-ml", JMLR 10; the model of the
``face_recognition`` package, Geitgey 2017), a 128-d embedding in which two photos of the same person lie
closer than 0.6 (dlib's threshold: 99.38% on LFW).

* :func:`face_embeddings`: 64 px crops -> upscaled to ``UPSCALE`` px -> dlib's HOG frontal detector
  (fallback: the face box where ``wae_lib.data`` crops put the face) -> 5-point landmarks -> 128-d descriptor.
* :func:`identity_distance`: euclidean embedding distance of an output to its content face.
* :func:`identity_match`: whether an output's nearest gallery identity is its own; the gallery is one mean
  embedding per person (leave-one-out for the query's own person) when identities are known, else one entry
  per content image. :func:`gallery_chance` gives the chance level, 1 / number of gallery entries.

dlib and its weights come from PyPI (``pip install dlib-bin face-recognition-models``, both ship binaries and
weights, so this works offline). When they are missing, :func:`identity_status` says so, and the tables get
NaN identity columns with that label instead of crashing (:func:`embeddings_or_nan`).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

PIP_PACKAGES = "dlib-bin face-recognition-models"
SAME_PERSON_THRESHOLD = 0.6  # dlib's documented threshold for "same person" (face_recognition's tolerance)
EMBEDDING_DIM = 128
UPSCALE = 150  # px: 64 px crops are upscaled to dlib's chip size; the HOG detector (80 px window) then finds
#   58 of 59 CelebA crops (measured on WAE_TEST_DATA faces; 150/200/256 px all did, 150 px is 3x faster)
# Where the detector puts the face in a wae_lib.data crop (crop = 1.35 x the Haar face box, centred), as
# fractions (left, top, right, bottom) of the crop side: the mean of dlib's boxes on 58 real CelebA crops.
FALLBACK_BOX = (0.16, 0.21, 0.83, 0.88)
MODEL_FILES = {"shape_predictor": "shape_predictor_5_face_landmarks.dat",
               "recognition": "dlib_face_recognition_resnet_model_v1.dat"}
MODEL_LABEL = "dlib face-recognition ResNet v1 (128-d, face_recognition_models), 5-point alignment"


class IdentityUnavailable(ImportError):
    """dlib or the face_recognition_models weights are not installed; the message says what to install."""


# --------------------------------------------------------------------------------------------------
# the dlib models
# --------------------------------------------------------------------------------------------------
def model_files() -> dict[str, Path]:
    """Paths of the two .dat files shipped in the face_recognition_models package.

    Found with importlib instead of importing the package: its __init__ imports pkg_resources, which
    setuptools >= 81 no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise IdentityUnavailable(f"the face-recognition weights are not installed: `pip install {PIP_PACKAGES}`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    paths = {k: folder / name for k, name in MODEL_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise IdentityUnavailable(f"face_recognition_models lacks {missing}: reinstall it (`pip install "
                                  f"--force-reinstall face-recognition-models`)")
    return paths


@functools.lru_cache(maxsize=1)
def _models():
    """(detector, shape predictor, recognition net), loaded once per process."""
    try:
        import dlib
    except ImportError as err:
        raise IdentityUnavailable(f"dlib is not installed: `pip install {PIP_PACKAGES}` ({err})") from err
    paths = model_files()
    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(paths["shape_predictor"])),
            dlib.face_recognition_model_v1(str(paths["recognition"])))


def identity_status() -> str | None:
    """None when the identity metric can run, else why not (naming the pip packages)."""
    try:
        _models()
    except IdentityUnavailable as err:
        return str(err)
    return None


def identity_label() -> str:
    """What the identity columns of a table were computed with (or why they are NaN)."""
    reason = identity_status()
    return MODEL_LABEL if reason is None else f"UNAVAILABLE (identity columns are NaN): {reason}"


# --------------------------------------------------------------------------------------------------
# embeddings
# --------------------------------------------------------------------------------------------------
def _to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """N x 3 x H x W float in [0, 1] (or N x H x W x 3 uint8) -> N x H x W x 3 uint8."""
    if isinstance(images, torch.Tensor):
        arr = images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy()
        return (arr * 255 + 0.5).astype(np.uint8)
    return np.asarray(images, dtype=np.uint8)


def _face_box(detector, image: np.ndarray, fallback: tuple[float, float, float, float]):
    """(dlib rectangle, detected?): the largest detection, else (or with no detector) the fallback box."""
    import dlib

    found = detector(image, 0) if detector is not None else []
    if len(found):
        return max(found, key=lambda r: r.area()), True
    side = image.shape[0]
    left, top, right, bottom = (int(round(f * side)) for f in fallback)
    return dlib.rectangle(left, top, right, bottom), False


def face_embeddings(images: torch.Tensor | np.ndarray, size: int = UPSCALE, detect: bool = True,
                    fallback_box: tuple[float, float, float, float] = FALLBACK_BOX) -> tuple[np.ndarray, np.ndarray]:
    """128-d dlib embeddings of N face crops (N x 3 x H x W in [0, 1]) and whether the detector found a face.

    Every image gets an embedding: where the detector misses (or ``detect=False``) the face is assumed to sit
    in ``fallback_box``, where wae_lib.data crops put it, and the landmarks are fitted there. ``found`` says
    which embeddings rest on a detection (a low share on generated images is itself informative).
    Raises :class:`IdentityUnavailable` without dlib.
    """
    import cv2

    detector, predictor, net = _models()
    arr = _to_uint8(images)
    emb = np.zeros((len(arr), EMBEDDING_DIM), dtype=np.float64)
    found = np.zeros(len(arr), dtype=bool)
    for i, img in enumerate(arr):
        big = np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC))
        box, found[i] = _face_box(detector if detect else None, big, fallback_box)
        emb[i] = np.asarray(net.compute_face_descriptor(big, predictor(big, box)))
    return emb, found


def embeddings_or_nan(images: torch.Tensor | np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`face_embeddings`, or NaN embeddings (and found=False) with a warning when dlib is missing, so that
    evaluation tables and notebooks still run."""
    try:
        return face_embeddings(images, **kwargs)
    except IdentityUnavailable as err:
        warnings.warn(f"identity metric skipped, columns are NaN: {err}", stacklevel=2)
        return np.full((len(images), EMBEDDING_DIM), np.nan), np.zeros(len(images), dtype=bool)


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------
def identity_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise euclidean distance of two N x 128 embedding arrays (< 0.6: dlib's "same person")."""
    return np.linalg.norm(np.asarray(a, float) - np.asarray(b, float), axis=1)


def gallery_labels(n_content: int, identities: np.ndarray | None) -> np.ndarray:
    """One label per content image: its person where known, else a label of its own.

    Without identities every content image is its own gallery entry; images with unknown identity (-1) each
    get a fresh label (treated as distinct people, the conservative choice for chance level).
    """
    if identities is None:
        return np.arange(n_content, dtype=np.int64)
    ids = np.asarray(identities, dtype=np.int64).copy()
    if len(ids) != n_content:
        raise ValueError(f"{len(ids)} identities for {n_content} content images: they must align row by row")
    unknown = ids < 0
    ids[unknown] = ids.max(initial=0) + 1 + np.arange(unknown.sum())
    return ids


def gallery_chance(n_content: int, identities: np.ndarray | None) -> float:
    """Chance level of :func:`identity_match`: 1 / number of gallery entries (people, or content images)."""
    n = len(np.unique(gallery_labels(n_content, identities)))
    return 1.0 / n if n else float("nan")


def identity_match(query: np.ndarray, own_index: np.ndarray, content: np.ndarray,
                   identities: np.ndarray | None = None) -> np.ndarray:
    """For each output (row of ``query``, made from content image ``own_index[k]``): 1.0 when the nearest
    gallery entry is its own person (or, without identities, its own content image), else 0.0; NaN when an
    embedding is NaN or the gallery has a single entry.

    Gallery: the mean embedding of each person's content images (Schroff et al. 2015 style template). For the
    query's own person the mean leaves out the query's own content image when the person has other photos,
    so that matching needs the *person*, not the pixels of one photo; a person with one photo keeps it.
    """
    q, c = np.asarray(query, float), np.asarray(content, float)
    own_index = np.asarray(own_index, dtype=np.int64)
    labels = gallery_labels(len(c), identities)
    _, inv = np.unique(labels, return_inverse=True)
    k = int(inv.max()) + 1 if len(inv) else 0
    if k < 2:
        return np.full(len(q), np.nan)
    counts = np.bincount(inv, minlength=k).astype(float)
    sums = np.zeros((k, c.shape[1]))
    np.add.at(sums, inv, c)
    dist = np.linalg.norm(q[:, None, :] - (sums / counts[:, None])[None], axis=2)  # M x people
    own = inv[own_index]
    n_own = counts[own][:, None]
    loo = np.where(n_own > 1, (sums[own] - c[own_index]) / np.maximum(n_own - 1, 1), sums[own] / n_own)
    d_own = np.linalg.norm(q - loo, axis=1)
    dist[np.arange(len(q)), own] = np.inf
    out = (d_own < dist.min(axis=1)).astype(float)
    out[~np.isfinite(d_own)] = np.nan
    return out


def identity_match_originals(content: np.ndarray, identities: np.ndarray | None) -> float:
    """The ceiling of :func:`identity_match` on these faces: the share of the real content photos whose
    leave-one-out nearest person is their own (NaN without identities, where it would be trivially 1)."""
    if identities is None or not np.isfinite(content).all():
        return float("nan")
    labels = gallery_labels(len(content), identities)
    _, inv = np.unique(labels, return_inverse=True)
    has_other = np.bincount(inv)[inv] > 1  # a person with one photo has nothing to be matched against
    if not has_other.any():
        return float("nan")
    idx = np.flatnonzero(has_other)
    return float(np.nanmean(identity_match(np.asarray(content)[idx], idx, content, identities)))
