"""wae_lib.data: preprocessing of the paper's sources (SPEC.md §4), robustness, resuming, sets, loading.

Tests on real photos use the ``test_data_dir`` fixture (WAE_TEST_DATA) and skip with its reason when unset.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from wae_lib import data as D

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
    m = D.read_manifest(out)
    assert sorted(m["path"]) == sorted(expected), "every file needs exactly one manifest row"
    assert set(m["reason"]) <= set(D.REASONS)
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
    summary = D.prepare_anime(src, tmp_path / "anime", D.PrepConfig(workers=1), progress=False)
    _check_manifest_accounts_for_every_file(tmp_path / "anime", expected, "anime")
    assert summary["files"] == len(expected) and "error" not in summary["by_reason"]

    m = D.read_manifest(tmp_path / "anime").set_index("path")
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
    summary = D.prepare_imagenet(src, tmp_path / "imagenet", D.PrepConfig(workers=2, chunk_size=3), progress=False)
    _check_manifest_accounts_for_every_file(tmp_path / "imagenet", expected, "imagenet")
    assert summary["by_reason"]["not_3_channel"] >= 5
    assert not (tmp_path / "imagenet" / ".parts").exists(), "part files are removed after assembly"


def test_fuzz_folder_face_rule_never_raises(fuzz, tmp_path):
    src, expected = fuzz
    summary = D.prepare_celeba(src, tmp_path / "celeba", D.PrepConfig(workers=1), progress=False)
    m = D.read_manifest(tmp_path / "celeba")
    assert sorted(m["path"]) == sorted(expected)
    assert "error" not in summary["by_reason"], m[m["reason"] == "error"]
    assert summary["by_reason"].get("no_face", 0) + summary["by_reason"].get("too_small", 0) >= 10


def test_decompression_bomb_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    _photo(100, 100).save(src / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # in-process (workers=1), so the patch applies
    summary = D.prepare_anime(src, tmp_path / "out", D.PrepConfig(workers=1), progress=False)
    assert summary["by_reason"] == {"too_large": 1}


def test_rerun_is_a_noop_with_identical_output(fuzz, tmp_path):
    src, _ = fuzz
    out = tmp_path / "out"
    first = D.prepare_anime(src, out, D.PrepConfig(workers=1), progress=False)
    digests = {f: _sha(out / f) for f in ("images.npy", "manifest.csv")}
    mtime = (out / "images.npy").stat().st_mtime_ns
    second = D.prepare_anime(src, out, D.PrepConfig(workers=2), progress=False)  # workers do not matter
    assert second["up_to_date"] and not first["up_to_date"]
    assert (out / "images.npy").stat().st_mtime_ns == mtime
    assert {f: _sha(out / f) for f in digests} == digests
    # a forced recomputation (output deleted) gives byte-identical files
    (out / "prep_state.json").unlink()
    D.prepare_anime(src, out, D.PrepConfig(workers=1), progress=False)
    assert {f: _sha(out / f) for f in digests} == digests
    # changing an output parameter recomputes
    assert not D.prepare_anime(src, out, D.PrepConfig(workers=1, min_side=100), progress=False)["up_to_date"]


def test_output_folder_inside_source_is_not_an_input(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _photo(80, 80).save(src / "a.jpg")
    first = D.prepare_anime(src, src / "prepared", D.PrepConfig(workers=1), progress=False)
    second = D.prepare_anime(src, src / "prepared", D.PrepConfig(workers=1), progress=False)
    assert first["files"] == 1 and second["up_to_date"]


def test_resume_after_interrupt(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(14):
        _photo(70 + i, 80).save(src / f"img{i:02d}.jpg")
    cfg = D.PrepConfig(workers=1, chunk_size=3)  # 5 chunks
    clean = tmp_path / "clean"
    D.prepare_anime(src, clean, cfg, progress=False)

    real = D._process_chunk
    calls = []

    def interrupted_after_two(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task)
        return real(task)

    out = tmp_path / "out"
    monkeypatch.setattr(D, "_process_chunk", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        D.prepare_anime(src, out, cfg, progress=False)
    assert len(list((out / ".parts").glob("*.pkl"))) == 2 and not (out / "images.npy").exists()

    calls.clear()
    monkeypatch.setattr(D, "_process_chunk", lambda task: (calls.append(task), real(task))[1])
    D.prepare_anime(src, out, cfg, progress=False)
    assert len(calls) == 3, "only the unfinished chunks are processed again"
    for f in ("images.npy", "manifest.csv"):
        assert _sha(out / f) == _sha(clean / f)


def test_bad_parameters_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="PrepConfig.crop_multiple"):
        D.PrepConfig(crop_multiple=0)
    with pytest.raises(FileNotFoundError, match="PrepConfig.cascade"):
        D.prepare_celeba(tmp_path, tmp_path / "out", D.PrepConfig(cascade="nope.xml"))
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        D.prepare_anime(tmp_path / "does_not_exist", tmp_path / "out")
    with pytest.raises(ValueError, match="set name"):
        D.set_path(tmp_path, "imagenet")
    with pytest.raises(FileNotFoundError, match="info.json"):
        D.load_set_info(tmp_path)


def test_cli_prints_counts_by_reason(fuzz, tmp_path, capsys):
    src, expected = fuzz
    assert D.main(["imagenet", str(src), str(tmp_path / "out"), "--workers", "1", "--imagenet-resize-first"]) == 0
    text = capsys.readouterr().out
    assert f"imagenet: {len(expected)} files" in text and "not_3_channel" in text and "196,371" in text


# --------------------------------------------------------------------------------------------------
# real photos (WAE_TEST_DATA)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_prepared(test_data_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("real")
    info = D.prepare_all(test_data_dir, out, D.PrepConfig(workers=2), progress=False, verbose=False)
    return out, info


def test_real_faces_mostly_kept_and_centred(real_prepared):
    out, info = real_prepared
    s = info["prepared"]["celeba"]
    assert s["files"] == 597 and s["kept"] >= 0.9 * 597, s
    images = np.load(out / "prepared" / "celeba" / "images.npy", mmap_mode="r")
    assert images.shape == (s["kept"], 64, 64, 3) and images.dtype == np.uint8

    m = D.read_manifest(out / "prepared" / "celeba")
    kept = m[m["status"] == "kept"]
    cfg = D.PrepConfig()
    # geometry in the manifest: the crop is crop_multiple x the face box, centred on the box
    face_cx = kept["face_x"] + kept["face_w"] / 2
    crop_cx = kept["crop_x"] + kept["crop_side"] / 2
    assert (face_cx - crop_cx).abs().max() < 1.0
    assert ((kept["crop_side"] / kept["face_w"]) - cfg.crop_multiple).abs().max() < 0.01
    # and in the pixels: a face is found again in the 64x64 crop, at the centre, at the expected size
    redetect = cfg.replace(detect_scale=1.0)
    found = []
    for img in images:
        faces = D.detect_faces(cv2.resize(np.asarray(img), (128, 128), interpolation=cv2.INTER_CUBIC), redetect)
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
    # natural/: 114 photos, one greyscale ImageNet JPEG fails the paper's 3-channel rule
    assert (p["imagenet"]["files"], p["imagenet"]["kept"]) == (114, 113)
    assert p["imagenet"]["by_reason"] == {"ok": 113, "not_3_channel": 1}
    m = D.read_manifest(out / "prepared" / "imagenet")
    assert m[m["status"] == "rejected"]["path"].tolist() == ["imagenet_n03908714_pencil_sharpener.jpg"]
    assert (p["styles"]["files"], p["styles"]["kept"]) == (15, 15)


def test_real_sets_are_disjoint_and_consistent(real_prepared, test_data_dir):
    out, info = real_prepared
    assert info == D.load_set_info(out)
    assert info["source"] == f"DATA_DIR={test_data_dir}" and not info["is_sample"]
    sets = {name: np.load(D.set_path(out, name), mmap_mode="r") for name in D.SET_FILES}
    counts = {name: v["count"] for name, v in info["sets"].items()}
    assert counts == {name: len(a) for name, a in sets.items()}
    kept = info["prepared"]
    assert counts["celeba"] + counts["content_eval"] == kept["celeba"]["kept"]
    assert counts["content_eval"] == round(0.05 * kept["celeba"]["kept"])
    assert counts["mixed"] == counts["celeba"] + 400 + 113 - counts["natural_eval"]
    assert counts["style_eval"] == 15 and counts["natural_eval"] == 16
    a, b = info["mixed_composition"]["celeba"]
    assert np.array_equal(sets["mixed"][a:b], sets["celeba"])

    def digests(arr):
        return {hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest() for x in arr}

    train = digests(sets["mixed"])
    assert not digests(sets["content_eval"]) & train, "held-out faces must not be in a training set"
    assert not digests(sets["natural_eval"]) & train
    assert info["prep_config"]["crop_multiple"] == D.PrepConfig().crop_multiple
    assert info["paper_counts"]["celeba"]["kept"] == 193_800


def test_real_prepare_all_rerun_is_noop(real_prepared, test_data_dir):
    out, info = real_prepared
    files = [out / "prepared" / s / "images.npy" for s in D.SOURCES] + [D.set_path(out, n) for n in D.SET_FILES]
    before = {f: (f.stat().st_mtime_ns, _sha(f)) for f in files}
    again = D.prepare_all(test_data_dir, out, D.PrepConfig(workers=2), progress=False, verbose=False)
    assert all(s["up_to_date"] for s in again["prepared"].values()) or again == info
    assert {f: (f.stat().st_mtime_ns, _sha(f)) for f in files} == before


# --------------------------------------------------------------------------------------------------
# the offline sample set
# --------------------------------------------------------------------------------------------------
def test_sample_set_builds_offline(tmp_path, capsys):
    info = D.prepare_all(None, tmp_path, D.PrepConfig(workers=1), progress=False)
    assert "sample set" in capsys.readouterr().out
    assert info["is_sample"] and info["source"] == D.SAMPLE_SOURCE_LABEL
    assert json.loads((tmp_path / "sets" / "info.json").read_text())["source"] == D.SAMPLE_SOURCE_LABEL
    counts = {name: v["count"] for name, v in info["sets"].items()}
    assert counts["celeba"] >= 200 and counts["mixed"] >= 2 * 200
    assert counts["content_eval"] > 0 and counts["style_eval"] == 8 and counts["natural_eval"] > 0
    for name in D.SET_FILES:
        a = np.load(D.set_path(tmp_path, name), mmap_mode="r")
        assert a.dtype == np.uint8 and a.shape == (counts[name], 64, 64, 3)
    assert any("sample set" in d for d in info["departures"])


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
    images = D.PackedImages(path)
    assert len(images) == 37 and images.data.dtype == torch.uint8 and images.data.shape == (37, 3, 64, 64)
    x = images.batch(torch.tensor([3, 0, 36]))
    assert x.dtype == torch.float32 and x.shape == (3, 3, 64, 64)
    assert 0.0 <= x.min() and x.max() <= 1.0
    expected = torch.from_numpy(arr[[3, 0, 36]]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(x, expected)
    assert torch.equal(images.batch([5]), D.PackedImages(arr).batch(np.array([5])))


def test_packed_images_sample_and_epoch(packed_file):
    path, arr = packed_file
    images = D.PackedImages(path)
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
        D.PackedImages(bad)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        D.PackedImages(tmp_path / "missing.npy")
