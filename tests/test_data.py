"""The data stage (wae_lib.data and the modules behind it): preprocessing of the paper's sources (SPEC.md §4),
robustness, resuming, sets, loading.

Tests on real photos use the ``test_data_dir`` fixture (WAE_TEST_DATA) and skip with its reason when unset.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from commands import command
from PIL import Image

from wae_lib.data import build_sets as MS
from wae_lib.data import faces as FACES
from wae_lib.data import layout as S
from wae_lib.data import packed as PR
from wae_lib.data import prepare as P
from wae_lib.data import sample as SAMPLE
from wae_lib.data import splits as SPLITS
from wae_lib.data.loader import PackedImages
from wae_lib.data.options import PrepConfig

DATA_CMD = command("data")

# --------------------------------------------------------------------------------------------------
# a folder of awkward real-world files, made here
# --------------------------------------------------------------------------------------------------
RNG = np.random.default_rng(0)


def _photo(w: int, h: int) -> Image.Image:
    """A smooth colour image with some texture (compresses like a photo)."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], axis=2)
    a = a + RNG.normal(0, 8, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def make_fuzz_folder(root: Path) -> dict[str, dict[str, str | set[str]]]:
    """Write the files; return the expected reason per file for the anime and imagenet rules."""
    root.mkdir(parents=True, exist_ok=True)
    exp: dict[str, dict[str, str | set[str]]] = {}

    def expect(name: str, anime: str | set[str], imagenet: str | set[str] | None = None) -> None:
        exp[name] = {"anime": anime, "imagenet": anime if imagenet is None else imagenet}

    _photo(120, 90).save(root / "good.jpg", quality=90)
    expect("good.jpg", "ok")
    buf = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(buf[: len(buf) // 2])
    expect("truncated.jpg", "corrupt")
    (root / "jpeg_named.png").write_bytes(buf)  # wrong extension: decoded by content
    expect("jpeg_named.png", "ok")
    (root / "zero.jpg").write_bytes(b"")
    expect("zero.jpg", "empty_file")
    (root / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + RNG.bytes(3000))
    expect("garbage.jpg", {"corrupt", "not_an_image"})
    (root / "notes.txt").write_text("not an image\n")
    expect("notes.txt", "not_an_image")
    _photo(12, 10).save(root / "tiny.png")
    expect("tiny.png", "too_small")
    _photo(90, 90).convert("L").save(root / "grey.png")
    expect("grey.png", "ok", "not_3_channel")
    _photo(90, 90).convert("1").save(root / "bilevel.png")
    expect("bilevel.png", "ok", "not_3_channel")
    rgba = _photo(80, 80).convert("RGBA")
    alpha = np.full((80, 80), 255, np.uint8)
    alpha[:, :40] = 0  # left half fully transparent -> white after compositing
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "rgba.png")
    expect("rgba.png", "ok", "not_3_channel")
    pal = _photo(80, 80).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(root / "palette.gif", transparency=0)
    expect("palette.gif", "ok", "not_3_channel")
    _photo(80, 70).convert("CMYK").save(root / "cmyk.jpg")
    expect("cmyk.jpg", "ok", "not_3_channel")
    grad16 = (np.mgrid[0:80, 0:80][1] * 800).astype(np.uint16)  # 0..63200: clipping to 255 would whiten it
    Image.fromarray(grad16).save(root / "sixteen_bit.png")
    expect("sixteen_bit.png", "ok", "not_3_channel")
    _photo(90, 90).save(root / "bitmap.bmp")
    expect("bitmap.bmp", "ok")
    # EXIF orientation 6 (rotate 90 deg clockwise to display): stored top half red -> displayed right half
    two = np.zeros((80, 120, 3), np.uint8)
    two[:40] = (255, 0, 0)
    two[40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(two).save(root / "exif_rotated.jpg", exif=exif.tobytes(), quality=95)
    expect("exif_rotated.jpg", "ok")
    (root / "sub").mkdir()
    _photo(100, 100).save(root / "sub" / "nested.jpg")
    expect("sub/nested.jpg", "ok")
    os.symlink(root / "does_not_exist.jpg", root / "dangling_link.jpg")
    expect("dangling_link.jpg", "unreadable")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.jpg")  # opening it would block: must be caught before open()
        expect("fifo.jpg", "not_a_file")
    if os.geteuid() != 0:  # root reads anything, so a permission test means nothing there
        _photo(70, 70).save(root / "no_permission.jpg")
        os.chmod(root / "no_permission.jpg", 0)
        expect("no_permission.jpg", "unreadable")
    return exp


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("fuzz") / "src"
    return root, make_fuzz_folder(root)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_manifest_accounts_for_every_file(out: Path, expected: dict, rule: str) -> None:
    m = PR.read_manifest(out)
    assert sorted(m["path"]) == sorted(expected), "every file needs exactly one manifest row"
    assert set(m["reason"]) <= set(PR.REASONS)
    for _, row in m.iterrows():
        want = expected[row["path"]][rule]
        want = want if isinstance(want, set) else {want}
        assert row["reason"] in want, f"{row['path']}: {row['reason']} ({row['detail']}), expected {want}"
    kept = m[m["status"] == "kept"]
    images = np.load(out / "images.npy", mmap_mode="r")
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
    assert len(images) == int(kept["n_images"].sum())
    assert list(kept["index"]) == list(np.cumsum([0, *kept["n_images"]])[:-1])


# --------------------------------------------------------------------------------------------------
# robustness, resuming
# --------------------------------------------------------------------------------------------------
def test_fuzz_folder_anime_rule_every_file_accounted(fuzz, tmp_path):
    src, expected = fuzz
    summary = P.prepare_anime(src, tmp_path / "anime", PrepConfig(workers=1), progress=False)
    _check_manifest_accounts_for_every_file(tmp_path / "anime", expected, "anime")
    assert summary["files"] == len(expected) and "error" not in summary["by_reason"]

    m = PR.read_manifest(tmp_path / "anime").set_index("path")
    images = np.load(tmp_path / "anime" / "images.npy")
    # EXIF orientation applied: stored 120x80 -> displayed 80x120, red (stored top) on the right
    assert (m.loc["exif_rotated.jpg", "width"], m.loc["exif_rotated.jpg", "height"]) == (80, 120)
    rot = images[m.loc["exif_rotated.jpg", "index"]].astype(int)
    assert rot[:, 40:, 0].mean() > 200 and rot[:, :24, 2].mean() > 200
    # alpha composited on white; 16-bit greyscale scaled, not clipped to white
    assert images[m.loc["rgba.png", "index"]][:, :28].min() > 240
    assert images[m.loc["sixteen_bit.png", "index"]].mean() < 200
    assert m.loc["sixteen_bit.png", "mode"].startswith("I")


def test_fuzz_folder_imagenet_rule_in_worker_processes(fuzz, tmp_path):
    """The same folder through the process pool (2 workers, tiny chunks): nothing crashes a worker."""
    src, expected = fuzz
    cfg = PrepConfig(workers=2, chunk_size=3, imagenet_require_rgb=True)  # the paper's 3-channel rule
    summary = P.prepare_imagenet(src, tmp_path / "imagenet", cfg, progress=False)
    _check_manifest_accounts_for_every_file(tmp_path / "imagenet", expected, "imagenet")
    assert summary["by_reason"]["not_3_channel"] >= 5
    assert not (tmp_path / "imagenet" / ".parts").exists(), "part files are removed after assembly"


def test_fuzz_folder_face_rule_never_raises(fuzz, tmp_path):
    src, expected = fuzz
    summary = P.prepare_celeba(src, tmp_path / "celeba", PrepConfig(workers=1), progress=False)
    m = PR.read_manifest(tmp_path / "celeba")
    assert sorted(m["path"]) == sorted(expected)
    assert "error" not in summary["by_reason"], m[m["reason"] == "error"]
    assert summary["by_reason"].get("no_face", 0) + summary["by_reason"].get("too_small", 0) >= 10


def test_decompression_bomb_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    _photo(100, 100).save(src / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # in-process (workers=1), so the patch applies
    summary = P.prepare_anime(src, tmp_path / "out", PrepConfig(workers=1), progress=False)
    assert summary["by_reason"] == {"too_large": 1}


def test_rerun_is_a_noop_with_identical_output(fuzz, tmp_path):
    src, _ = fuzz
    out = tmp_path / "out"
    first = P.prepare_anime(src, out, PrepConfig(workers=1), progress=False)
    digests = {f: _sha(out / f) for f in ("images.npy", "manifest.csv")}
    mtime = (out / "images.npy").stat().st_mtime_ns
    second = P.prepare_anime(src, out, PrepConfig(workers=2), progress=False)  # workers do not matter
    assert second["up_to_date"] and not first["up_to_date"]
    assert (out / "images.npy").stat().st_mtime_ns == mtime
    assert {f: _sha(out / f) for f in digests} == digests
    # a forced recomputation (output deleted) gives byte-identical files
    (out / "prep_state.json").unlink()
    P.prepare_anime(src, out, PrepConfig(workers=1), progress=False)
    assert {f: _sha(out / f) for f in digests} == digests
    # changing an output parameter recomputes
    assert not P.prepare_anime(src, out, PrepConfig(workers=1, min_side=100), progress=False)["up_to_date"]


def test_output_folder_inside_source_is_not_an_input(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _photo(80, 80).save(src / "a.jpg")
    first = P.prepare_anime(src, src / "prepared", PrepConfig(workers=1), progress=False)
    second = P.prepare_anime(src, src / "prepared", PrepConfig(workers=1), progress=False)
    assert first["files"] == 1 and second["up_to_date"]


def test_resume_after_interrupt(tmp_path, monkeypatch, interrupted_prepare):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(14):
        _photo(70 + i, 80).save(src / f"img{i:02d}.jpg")
    cfg = PrepConfig(workers=1, chunk_size=3)  # 5 chunks
    clean = tmp_path / "clean"
    P.prepare_anime(src, clean, cfg, progress=False)

    out = tmp_path / "out"
    interrupted_prepare(src, out, cfg)
    assert len(list((out / ".parts").glob("*.npz"))) == 2 and not (out / "images.npy").exists()

    real, calls = P._process_chunk, []
    monkeypatch.setattr(P, "_process_chunk", lambda task: (calls.append(task), real(task))[1])
    P.prepare_anime(src, out, cfg, progress=False)
    assert len(calls) == 3, "only the unfinished chunks are processed again"
    for f in ("images.npy", "manifest.csv"):
        assert _sha(out / f) == _sha(clean / f)


def test_bad_parameters_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="PrepConfig.crop_multiple"):
        PrepConfig(crop_multiple=0)
    with pytest.raises(FileNotFoundError, match="PrepConfig.cascade"):
        P.prepare_celeba(tmp_path, tmp_path / "out", PrepConfig(cascade="nope.xml"))
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        P.prepare_anime(tmp_path / "does_not_exist", tmp_path / "out")
    with pytest.raises(ValueError, match="set name"):
        S.set_path(tmp_path, "imagenet")
    with pytest.raises(FileNotFoundError, match="info.json"):
        S.load_set_info(tmp_path)


def test_cli_prints_counts_by_reason(fuzz, tmp_path, capsys):
    src, expected = fuzz
    assert DATA_CMD(["imagenet", str(src), str(tmp_path / "out"), "--workers", "1", "--imagenet-resize-first",
                   "--imagenet-require-rgb"]) == 0
    text = capsys.readouterr().out
    assert f"imagenet: {len(expected)} files" in text and "not_3_channel" in text and "196,371" in text


# --------------------------------------------------------------------------------------------------
# real photos (WAE_TEST_DATA)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_prepared(test_data_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("real")
    info = MS.prepare_all(test_data_dir, out, PrepConfig(workers=2), progress=False, verbose=False)
    return out, info


def test_real_faces_mostly_kept_and_centred(real_prepared):
    out, info = real_prepared
    s = info["prepared"]["celeba"]
    assert s["files"] == 597 and s["kept"] >= 0.9 * 597, s
    images = PR.read_images(S.prepared_dir(out, "celeba"))
    assert images.shape == (s["kept"], 64, 64, 3) and images.dtype == np.uint8

    m = PR.read_manifest(S.prepared_dir(out, "celeba"))
    kept = m[m["status"] == "kept"]
    cfg = PrepConfig()
    # geometry in the manifest: the crop is crop_multiple x the face box, centred on the box
    face_cx = kept["face_x"] + kept["face_w"] / 2
    crop_cx = kept["crop_x"] + kept["crop_side"] / 2
    assert (face_cx - crop_cx).abs().max() < 1.0
    assert ((kept["crop_side"] / kept["face_w"]) - cfg.crop_multiple).abs().max() < 0.01
    # and in the pixels: a face is found again in the 64x64 crop, at the centre, at the expected size
    redetect = cfg.replace(detect_scale=1.0)
    found = []
    for img in images:
        faces = FACES.detect_faces(cv2.resize(np.asarray(img), (128, 128), interpolation=cv2.INTER_CUBIC), redetect)
        if faces:
            x, y, w, h = faces[0]
            found.append(((x + w / 2) / 128 - 0.5, (y + h / 2) / 128 - 0.5 - cfg.crop_offset_y / cfg.crop_multiple,
                          w / 128))
    f = np.array(found)
    assert len(f) >= 0.9 * len(images)
    assert np.abs(f[:, :2]).max() < 0.1, "face centre within 10% of the crop side from the crop centre"
    assert 0.55 < f[:, 2].min() and f[:, 2].max() < 0.95 and abs(np.median(f[:, 2]) - 1 / cfg.crop_multiple) < 0.08


def test_real_anime_natural_styles_counts(real_prepared):
    out, info = real_prepared
    p = info["prepared"]
    assert (p["anime"]["files"], p["anime"]["kept"]) == (400, 400)
    # natural/: 114 photos; the one greyscale ImageNet JPEG (dropped by the paper's 3-channel rule) is converted
    assert (p["imagenet"]["files"], p["imagenet"]["kept"]) == (114, 114)
    assert p["imagenet"]["by_reason"] == {"ok": 114}
    m = PR.read_manifest(S.prepared_dir(out, "imagenet"))
    assert m[m["mode"] != "RGB"]["path"].tolist() == ["imagenet_n03908714_pencil_sharpener.jpg"]
    assert info["imagenet_converted_to_rgb"] == 1
    assert (p["styles"]["files"], p["styles"]["kept"]) == (15, 15)


def test_real_sets_are_disjoint_and_consistent(real_prepared, test_data_dir):
    out, info = real_prepared
    assert info == S.load_set_info(out)
    assert info["source"] == f"DATA_DIR={test_data_dir}" and not info["is_sample"]
    sets = {name: np.load(S.set_path(out, name), mmap_mode="r") for name in S.SET_FILES}
    counts = {name: v["count"] for name, v in info["sets"].items()}
    assert counts == {name: len(a) for name, a in sets.items()}
    kept = info["prepared"]
    assert counts["celeba"] + counts["content_eval"] == kept["celeba"]["kept"]
    assert counts["content_eval"] == round(0.05 * kept["celeba"]["kept"])
    assert info["split"] == "file" and S.load_eval_identities(out) is None  # ../shared/data has no identity.csv
    # the paper's proportions: anime capped at round(n_celeba_train x 14,490/193,800); all 98 ImageNet crops
    mix = info["mixed_counts"]
    assert mix["anime"]["used"] == round(counts["celeba"] * 14_490 / 193_800) and mix["anime"]["available"] == 400
    assert mix["imagenet"]["used"] == 114 - counts["natural_eval"]
    assert counts["mixed"] == counts["celeba"] + mix["anime"]["used"] + mix["imagenet"]["used"]
    assert counts["style_eval"] == 15 and counts["natural_eval"] == 16
    a, b = info["mixed_composition"]["celeba"]
    assert np.array_equal(sets["mixed"][a:b], sets["celeba"])

    def digests(arr):
        return {hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest() for x in arr}

    train = digests(sets["mixed"])
    assert not digests(sets["content_eval"]) & train, "held-out faces must not be in a training set"
    assert not digests(sets["natural_eval"]) & train
    assert info["prep_config"]["crop_multiple"] == PrepConfig().crop_multiple
    assert info["paper_counts"]["celeba"]["kept"] == 193_800


def test_real_prepare_all_rerun_is_noop(real_prepared, test_data_dir):
    out, info = real_prepared
    files = [S.prepared_dir(out, s) / PR.IMAGES_FILE for s in S.SOURCES] + [S.set_path(out, n) for n in S.SET_FILES]
    before = {f: (f.stat().st_mtime_ns, _sha(f)) for f in files}
    again = MS.prepare_all(test_data_dir, out, PrepConfig(workers=2), progress=False, verbose=False)
    assert all(s["up_to_date"] for s in again["prepared"].values()) or again == info
    assert {f: (f.stat().st_mtime_ns, _sha(f)) for f in files} == before


# --------------------------------------------------------------------------------------------------
# sets: identity split, mixed proportions (build_sets on prepared folders written here)
# --------------------------------------------------------------------------------------------------
CELEBA, ANIME, IMAGENET = 1, 2, 3  # channel 0 of a fake image: its source; channel 1: crop number; 2: identity


def _write_prepared(root: Path, source: str, labels: list[str], crops: int = 1,
                    identity: dict[str, int] | None = None) -> None:
    """A prepared folder as prepare_* writes it, with images that encode (source, crop number, identity)."""
    code = {"celeba": CELEBA, "anime": ANIME, "imagenet": IMAGENET, "styles": 4}[source]
    rows, images = [], []
    for label in labels:
        rows.append(PR.manifest_row(label, mode="RGB", n_images=crops))
        for k in range(crops):
            img = np.zeros((64, 64, 3), np.uint8)
            img[..., :2] = code, k
            img[..., 2] = (identity or {}).get(label, 255)
            images.append(img)
    PR.write_prepared(root / source, source, "fixture", f"fixture-{source}-{len(labels)}-{crops}", rows,
              [np.stack(images)], len(images))


def _prepared_fixture(root: Path, sizes: list[int], n_anime: int = 0, n_imagenet: int = 0,
                      imagenet_crops: int = 1) -> dict[str, int]:
    """Faces of len(sizes) identities (identity i has sizes[i] photos); returns file -> identity."""
    identity = {f"{i:03d}_{k}.jpg": i for i, n in enumerate(sizes) for k in range(n)}
    for source in S.SOURCES:
        (root / source).mkdir(parents=True, exist_ok=True)
    _write_prepared(root, "celeba", sorted(identity), identity=identity)
    _write_prepared(root, "styles", ["s.png"])
    if n_anime:
        _write_prepared(root, "anime", [f"a{i:04d}.jpg" for i in range(n_anime)])
    if n_imagenet:
        _write_prepared(root, "imagenet", [f"n{i:04d}.jpg" for i in range(n_imagenet)], crops=imagenet_crops)
    return identity


def _write_identity_csv(path: Path, identity: dict[str, int]) -> Path:
    path.write_text("file,identity\n" + "".join(f"{f},{i}\n" for f, i in identity.items()))
    return path


def test_identity_split_holds_out_whole_people_and_records_them(tmp_path):
    sizes = [int(n) for n in np.random.default_rng(3).integers(1, 9, 60)]  # 60 people, 1-8 photos each
    identity = _prepared_fixture(S.prepared_dir(tmp_path), sizes)
    id_file = _write_identity_csv(tmp_path / "identity.csv", identity)
    cfg = PrepConfig(eval_min=40, eval_fraction=0.05, eval_max=60)
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), cfg, identity_file=id_file)
    split = info["content_split"]
    assert info["split"] == split["split"] == "identity"

    held = set(info["held_out"]["content_eval"])
    held_ids = {identity[f] for f in held}
    train_ids = {identity[f] for f in identity if f not in held}
    assert not held_ids & train_ids, "a person is in training and content_eval"
    assert all(f in held for f in identity if identity[f] in held_ids), "identities are held out whole"
    assert split["held_out_identities"] == len(held_ids) and split["held_out_faces"] == len(held)
    assert split["train_identities"] == len(train_ids) and split["identities_in_both"] == 0

    # count rule: target max(eval_min, 5% of 268 faces) = 40, never above eval_max, reached with whole identities
    size = dict(zip(range(len(sizes)), sizes))
    assert 40 <= len(held) <= 60
    assert len(held) - min(size[i] for i in held_ids) < 40, "no identity beyond the one that reached the target"

    # identities aligned with content_eval rows (channel 2 of each fixture image is its identity)
    ids = S.load_eval_identities(tmp_path)
    eval_images = np.load(S.set_path(tmp_path, "content_eval"))
    assert ids.dtype == np.int64 and len(ids) == len(eval_images) == info["sets"]["content_eval"]["count"]
    assert np.array_equal(ids, eval_images[:, 0, 0, 2].astype(np.int64))
    assert set(ids.tolist()) == held_ids == set(split["content_eval_identities"])
    train_images = np.load(S.set_path(tmp_path, "celeba"))
    assert not set(train_images[:, 0, 0, 2].tolist()) & held_ids
    assert any("no person is in both" in d for d in info["departures"])


def test_recount_of_the_identity_split_agrees_and_catches_a_tampered_identity_file(tmp_path):
    """Notebook 01's independent recount (splits.recount_identity_split): the same numbers as build_sets, and a
    content_eval_identity.npy that no longer matches the manifest is refused."""
    from wae_lib.data import splits as SPLITS

    identity = _prepared_fixture(S.prepared_dir(tmp_path), [4] * 12)
    id_file = _write_identity_csv(tmp_path / "identity.csv", identity)
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), PrepConfig(eval_min=8), identity_file=id_file)
    check = SPLITS.recount_identity_split(tmp_path, info)
    split = info["content_split"]
    assert check["held_identities"] == split["held_out_identities"] and check["in_both"] == []
    assert check["held_faces"] + check["train_faces"] == 48 and check["faces_per_person"] == (4, 4.0, 4)
    ids_file = S.sets_dir(tmp_path) / S.EVAL_IDENTITY_FILE
    np.save(ids_file, np.load(ids_file) + 100)  # identities nobody held out
    with pytest.raises(ValueError, match="does not hold the held-out identities"):
        SPLITS.recount_identity_split(tmp_path, info)
    assert SPLITS.recount_identity_split(tmp_path, {**info, "content_split": {"split": "file"}}) is None


def test_identity_split_when_the_data_do_not_allow_the_minimum(tmp_path):
    """4 people x 3 photos: eval_min=150 cannot be met; half of the identities are held out, half train."""
    identity = _prepared_fixture(S.prepared_dir(tmp_path), [3, 3, 3, 3])
    id_file = _write_identity_csv(tmp_path / "identity.csv", identity)
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), PrepConfig(), identity_file=id_file)
    assert info["content_split"]["held_out_identities"] == 2 and info["sets"]["content_eval"]["count"] == 6
    assert info["sets"]["celeba"]["count"] == 6
    # eval_max is a hard cap: an identity that would pass it is skipped
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), PrepConfig(eval_max=5), identity_file=id_file)
    assert info["sets"]["content_eval"]["count"] == 3


def test_identity_split_faces_missing_from_the_file_stay_in_training(tmp_path):
    identity = _prepared_fixture(S.prepared_dir(tmp_path), [4] * 10)
    listed = dict(list(identity.items())[4:])  # identity 0's photos are not listed
    id_file = _write_identity_csv(tmp_path / "identity.csv", listed)
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), PrepConfig(), identity_file=id_file)
    assert info["content_split"]["faces_without_identity"] == 4
    assert not {f for f in identity if f not in listed} & set(info["held_out"]["content_eval"])


def test_file_split_without_identity_file(tmp_path):
    _prepared_fixture(S.prepared_dir(tmp_path), [1] * 100)
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), PrepConfig())
    assert info["split"] == "file" and info["content_split"]["held_out_identities"] is None
    assert info["sets"]["content_eval"]["count"] == 5  # 5% of 100 files, as before identities existed
    assert S.load_eval_identities(tmp_path) is None
    assert np.array_equal(np.load(S.sets_dir(tmp_path) / S.EVAL_IDENTITY_FILE), np.full(5, -1))
    assert any("by file" in d and "a person may be in both" in d for d in info["departures"])


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ("name,person\na.jpg,1\n", "lacks the column"),
    ("file,identity\na.jpg,one\n", "line 2: the identity 'one'"),
    ("file,identity\na.jpg,-3\n", "not an integer >= 0"),
    ("file,identity\na.jpg,1\na.jpg,2\n", "listed with identities 1 and 2"),
    ("file,identity\n", "no rows"),
    ("file,identity\na.jpg\n", "line 2 has 1 field"),
])
def test_malformed_identity_file_names_the_file(tmp_path, text, problem):
    path = tmp_path / "identity.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as err:
        S.read_identities(path)
    assert str(path) in str(err.value)


def test_identity_file_found_beside_or_inside_faces_and_not_listed_as_a_face(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    _photo(80, 80).save(faces / "a.jpg")
    assert S.find_identity_file(faces) is None
    _write_identity_csv(faces / "identity.csv", {"a.jpg": 7})
    assert S.find_identity_file(faces) == faces / "identity.csv"
    _write_identity_csv(tmp_path / "identity.csv", {"a.jpg": 7})
    assert S.find_identity_file(faces) == tmp_path / "identity.csv"  # beside faces/ first
    P.prepare_celeba(faces, tmp_path / "out", PrepConfig(workers=1), progress=False)
    assert PR.read_manifest(tmp_path / "out")["path"].tolist() == ["a.jpg"]
    # an identity file that matches no face is an error naming it
    identity = _prepared_fixture(S.prepared_dir(tmp_path), [2, 2])
    wrong = _write_identity_csv(tmp_path / "wrong.csv", {f"x{f}": i for f, i in identity.items()})
    with pytest.raises(ValueError, match="wrong.csv: none of the 4 kept faces"):
        MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), identity_file=wrong)


def test_mixed_set_follows_the_paper_proportions(tmp_path):
    """190 training faces: anime capped at round(190 x 14,490/193,800) = 14; ImageNet at round(190 x 196,371/
    193,800) = 193 of 46 files x 6 crops, every central crop first; composition ranges and shares recorded."""
    _prepared_fixture(S.prepared_dir(tmp_path), [1] * 200, n_anime=100, n_imagenet=50, imagenet_crops=6)
    cfg = PrepConfig(natural_eval_count=4)
    info = MS.build_sets(S.prepared_dir(tmp_path), S.sets_dir(tmp_path), cfg)
    n = info["sets"]["celeba"]["count"]
    assert n == 190
    mix = info["mixed_counts"]
    assert (mix["anime"]["available"], mix["anime"]["used"]) == (100, round(190 * 14_490 / 193_800)) == (100, 14)
    assert (mix["imagenet"]["available"], mix["imagenet"]["used"]) == (46 * 6, round(190 * 196_371 / 193_800))
    mixed = np.load(S.set_path(tmp_path, "mixed"))
    comp = info["mixed_composition"]
    for source, code in (("celeba", CELEBA), ("anime", ANIME), ("imagenet", IMAGENET)):
        a, b = comp[source]
        assert b - a == mix[source]["used"] and (mixed[a:b, 0, 0, 0] == code).all()
        assert mix[source]["share"] == pytest.approx((b - a) / len(mixed))
        assert mix[source]["paper_share"] == pytest.approx(S.PAPER_COUNTS[source]["kept"] / 404_661)
    a, b = comp["imagenet"]
    assert (mixed[a:b, 0, 0, 1] == 0).sum() == 46, "every central crop is used before extra crops"
    assert "14,490/193,800" in info["mixed_rule"] and "196,371/193,800" in info["mixed_rule"]
    text = SPLITS.format_mixed(info)
    assert "paper share" in text and "47.9%" in text and "anime" in text

    # ratio 0: every image, as the paper (whose full data give these proportions anyway)
    info = MS.build_sets(S.prepared_dir(tmp_path), tmp_path / "sets2",
                        cfg.replace(mixed_anime_ratio=0, mixed_imagenet_ratio=0))
    assert info["mixed_counts"]["anime"]["used"] == 100 and info["mixed_counts"]["imagenet"]["used"] == 276
    # at the paper's own counts the rule keeps everything: caps are exactly 14,490 and 196,371
    assert SPLITS._cap(193_800, PrepConfig().mixed_anime_ratio) == 14_490
    assert SPLITS._cap(193_800, PrepConfig().mixed_imagenet_ratio) == 196_371


def test_greyscale_imagenet_converted_to_rgb_by_default(fuzz, tmp_path):
    src, expected = fuzz
    P.prepare_imagenet(src, tmp_path / "imagenet", PrepConfig(workers=1), progress=False)
    m = PR.read_manifest(tmp_path / "imagenet").set_index("path")
    images = np.load(tmp_path / "imagenet" / "images.npy")
    for name in ("grey.png", "bilevel.png", "cmyk.jpg", "sixteen_bit.png", "rgba.png", "palette.gif"):
        assert m.loc[name, "reason"] == "ok", (name, m.loc[name, "detail"])
    grey = images[m.loc["grey.png", "index"]]
    assert grey.shape == (64, 64, 3) and (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert m.loc["grey.png", "mode"] == "L"
    assert any("converted to RGB" in d for d in MS.departures(PrepConfig(), "x"))


def test_prepare_all_identity_split_on_real_faces(test_data_dir, tmp_path):
    """End to end: 10 people x 3 real photos (identities assigned here), identity.csv beside faces/."""
    data = tmp_path / "data"
    (data / "faces").mkdir(parents=True)
    (data / "styles").mkdir()
    photos = sorted((test_data_dir / "faces").iterdir())[:30]
    identity = {}
    for k, p in enumerate(photos):
        (data / "faces" / p.name).symlink_to(p)
        identity[p.name] = 1000 + k // 3
    _write_identity_csv(data / "identity.csv", identity)
    for p in sorted((test_data_dir / "styles").iterdir())[:2]:
        (data / "styles" / p.name).symlink_to(p)
    info = MS.prepare_all(data, tmp_path / "out", PrepConfig(workers=1), progress=False, verbose=False)
    assert info["split"] == "identity" and info["content_split"]["held_out_identities"] == 5
    kept = PR.read_manifest(S.prepared_dir(tmp_path / "out", "celeba"))
    kept = kept[kept["status"] == "kept"].set_index("path")
    held = info["held_out"]["content_eval"]
    ids = S.load_eval_identities(tmp_path / "out")
    assert ids.tolist() == [identity[f] for f in sorted(held)]  # manifest order = sorted file names
    faces = np.load(S.prepared_dir(tmp_path / "out", "celeba") / PR.IMAGES_FILE)
    assert np.array_equal(np.load(S.set_path(tmp_path / "out", "content_eval")),
                          faces[[int(kept.loc[f, "index"]) for f in sorted(held)]])
    train_ids = {identity[f] for f in kept.index if f not in held}
    assert not set(ids.tolist()) & train_ids


# --------------------------------------------------------------------------------------------------
# the offline sample set
# --------------------------------------------------------------------------------------------------
def test_sample_set_builds_offline(tmp_path, capsys):
    info = MS.prepare_all(None, tmp_path, PrepConfig(workers=1), progress=False)
    assert "sample set" in capsys.readouterr().out
    assert info["is_sample"] and info["source"] == SAMPLE.SAMPLE_SOURCE_LABEL
    assert S.load_set_info(tmp_path)["source"] == SAMPLE.SAMPLE_SOURCE_LABEL
    counts = {name: v["count"] for name, v in info["sets"].items()}
    assert counts["celeba"] >= 200 and counts["mixed"] >= 2 * 200
    assert counts["content_eval"] > 0 and counts["style_eval"] == len(SAMPLE.SAMPLE_STYLES) == 10
    assert counts["natural_eval"] > 0
    for name in S.SET_FILES:
        a = np.load(S.set_path(tmp_path, name), mmap_mode="r")
        assert a.dtype == np.uint8 and a.shape == (counts[name], 64, 64, 3)
    assert any("sample set" in d for d in info["departures"])


def test_sample_styles_are_the_shipped_paintings_with_their_provenance():
    sources = (SAMPLE.SAMPLE_STYLES_DIR / "SOURCES.md").read_text()
    shipped = sorted(p.name for p in SAMPLE.SAMPLE_STYLES_DIR.glob("*.jpg"))
    assert shipped == sorted(ref.split(":", 1)[1] for ref in SAMPLE.SAMPLE_STYLES)
    for name in shipped:  # each file has a row saying what it is and that it is public domain
        row = next(line for line in sources.splitlines() if line.startswith(f"| {name} |"))
        assert "public domain" in row
        assert SAMPLE.sample_image_path(f"wae:{name}").stat().st_size < 60_000
    with pytest.raises(FileNotFoundError, match="sample_styles"):
        SAMPLE.sample_image_path("wae:no_such_painting.jpg")


# --------------------------------------------------------------------------------------------------
# training-time loading
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def packed_file(tmp_path) -> tuple[Path, np.ndarray]:
    arr = np.random.default_rng(1).integers(0, 256, (37, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "set.npy"
    np.save(path, arr)
    return path, arr


def test_packed_images_batches(packed_file):
    path, arr = packed_file
    images = PackedImages(path)
    assert len(images) == 37 and images.data.dtype == torch.uint8 and images.data.shape == (37, 3, 64, 64)
    x = images.batch(torch.tensor([3, 0, 36]))
    assert x.dtype == torch.float32 and x.shape == (3, 3, 64, 64)
    assert 0.0 <= x.min() and x.max() <= 1.0
    expected = torch.from_numpy(arr[[3, 0, 36]]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(x, expected)
    assert torch.equal(images.batch([5]), PackedImages(arr).batch(np.array([5])))


def test_packed_images_sample_and_epoch(packed_file):
    path, arr = packed_file
    images = PackedImages(path)
    i1, x1 = images.sample(16, torch.Generator().manual_seed(0), hflip=True)
    i2, x2 = images.sample(16, torch.Generator().manual_seed(0), hflip=True)
    assert torch.equal(i1, i2) and torch.equal(x1, x2), "same generator state, same batch"
    plain = images.batch(i1)
    flipped = [torch.equal(a, b.flip(2)) for a, b in zip(x1, plain)]
    assert all(torch.equal(a, b) or f for a, b, f in zip(x1, plain, flipped)) and any(flipped)
    seen = torch.cat([idx for idx, _ in images.epoch(10, torch.Generator().manual_seed(0), drop_last=False)])
    assert sorted(seen.tolist()) == list(range(37))


def test_packed_images_rejects_wrong_arrays(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="bad.npy"):
        PackedImages(bad)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        PackedImages(tmp_path / "missing.npy")


def test_held_out_faces_recropped_at_64_are_the_set_and_larger_sizes_show_the_same_square(real_prepared):
    """Issue 33: a fully convolutional model is scored at 128 px on the same held-out faces, cropped again from their
    source files with the geometry of their 64 px crops."""
    from wae_lib.eval.images import held_out_faces_at, load_set

    out, _ = real_prepared
    again = held_out_faces_at(out, 64)
    assert torch.equal(again, load_set(out, "content_eval"))
    big = held_out_faces_at(out, 128)
    assert big.shape == (len(again), 3, 128, 128)
    small = torch.nn.functional.interpolate(big, size=64, mode="area")
    assert (small - again).abs().mean() < 0.03  # the same square, only sharper
