"""``python -m wae_lib data download``: CelebA and Imagenette through torchvision, offline.

Only the network is faked: ``gdown`` (CelebA's Google Drive files) and torchvision's URL fetch (Imagenette) hand
over tiny archives built here with the real ones' inner layout (``img_align_celeba/*.jpg`` in the zip,
``imagenette2-320/{train,val}/<wnid>/*.JPEG`` in the tgz) and the real list-file formats. torchvision's own
CelebA and Imagenette classes then run unchanged: md5 checks (against the fixtures' md5s), unpacking, parsing.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
import types
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from commands import command
from PIL import Image

from wae_lib.data import download as DL
from wae_lib.data import layout as S
from wae_lib.data import prepare as P

DATA_CMD = command("data")

tv_datasets = pytest.importorskip("torchvision.datasets")
tv_utils = pytest.importorskip("torchvision.datasets.utils")

IDENTITIES = {"000001.jpg": 7, "000002.jpg": 7, "000003.jpg": 3, "000004.jpg": 3, "000005.jpg": 10,
              "000006.jpg": 12}
IMAGENETTE_TRAIN = ("n01440764/n01440764_1.JPEG", "n01440764/n01440764_2.JPEG", "n02102040/n02102040_1.JPEG")
IMAGENETTE_VAL = ("n01440764/ILSVRC2012_val_00000293.JPEG",)


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _celeba_files() -> dict[str, bytes]:
    """torchvision.datasets.CelebA.file_list's file names -> bytes in the real formats (space-separated; the
    attribute, bbox and landmark lists start with a count line and a header line)."""
    names = sorted(IDENTITIES)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for i, name in enumerate(names):
            z.writestr(f"img_align_celeba/{name}", _jpeg(i))

    def listing(row, header: str | None = None) -> bytes:
        head = f"{len(names)}\n{header}\n" if header else ""
        return (head + "".join(f"{n} {row(n)}\n" for n in names)).encode()

    return {
        "img_align_celeba.zip": zbuf.getvalue(),
        "list_attr_celeba.txt": listing(lambda n: "-1  1", "5_o_Clock_Shadow Smiling "),
        "identity_CelebA.txt": listing(lambda n: IDENTITIES[n]),
        "list_bbox_celeba.txt": listing(lambda n: "95  71 226 313", "image_id x_1 y_1 width height"),
        "list_landmarks_align_celeba.txt": listing(lambda n: "69 109 106 113 77 142 73 152 108 154",
                                                   "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                                   "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"),
        "list_eval_partition.txt": listing(lambda n: int(n[5]) % 3),
    }


def _imagenette_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate([f"train/{n}" for n in IMAGENETTE_TRAIN] + [f"val/{n}" for n in IMAGENETTE_VAL]):
            data = _jpeg(100 + i)
            info = tarfile.TarInfo(f"imagenette2-320/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeNet:
    """The internet as torchvision sees it: ``gdown.download`` for CelebA, ``_urlretrieve`` for Imagenette."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        celeba, imagenette = tv_datasets.CelebA, tv_datasets.Imagenette
        files = _celeba_files()
        self.by_id = {fid: files[name] for fid, _, name in celeba.file_list}
        self.url, _ = imagenette._ARCHIVES["320px"]
        self.tgz = _imagenette_tgz()
        self.calls: list[str] = []
        self.online = True
        self.corrupt: set[str] = set()  # file ids / URLs whose download arrives damaged
        # the fixtures' md5s stand in for the real ones; torchvision checks them as it checks the real ones
        monkeypatch.setattr(celeba, "file_list", [(fid, hashlib.md5(files[name]).hexdigest(), name)
                                                  for fid, _, name in celeba.file_list])
        monkeypatch.setattr(imagenette, "_ARCHIVES", {**imagenette._ARCHIVES,
                                                      "320px": (self.url, hashlib.md5(self.tgz).hexdigest())})
        monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=self.gdown_download))
        monkeypatch.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops=3: url)
        monkeypatch.setattr(tv_utils, "_urlretrieve", self.urlretrieve)

    def _deliver(self, key: str, data: bytes, path: str) -> None:
        self.calls.append(key)
        if not self.online:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        Path(path).write_bytes(data[: len(data) // 2] if key in self.corrupt else data)

    def gdown_download(self, id: str, output: str, quiet: bool = False, user_agent: str | None = None) -> None:
        self._deliver(id, self.by_id[id], output)

    def urlretrieve(self, url: str, filename: str, chunk_size: int = 0) -> None:
        self._deliver(url, self.tgz, filename)


@pytest.fixture
def net(monkeypatch) -> FakeNet:
    return FakeNet(monkeypatch)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_download_lays_out_the_data_dir_that_prepare_all_reads(net, tmp_path, capsys):
    out = tmp_path / "data"
    counts = DL.download_data(out)
    assert counts == {"faces": len(IDENTITIES), "natural": len(IMAGENETTE_TRAIN)}
    faces, natural = out / "faces", out / "natural"
    assert sorted(p.name for p in faces.iterdir()) == sorted(IDENTITIES)
    assert sorted(p.relative_to(natural).as_posix() for p in natural.rglob("*.JPEG")) == sorted(IMAGENETTE_TRAIN)
    # what prepare_all / build_sets look for
    assert S.find_source(out, "celeba") == faces and S.find_source(out, "imagenet") == natural
    assert S.find_source(out, "anime") is None and S.find_source(out, "styles") is None
    assert S.find_identity_file(faces) == out / "identity.csv"
    assert S.read_identities(out / "identity.csv") == IDENTITIES
    files = [label for label, _ in P.list_files(faces)]
    assert S.label_identities(files, S.read_identities(out / "identity.csv")) == IDENTITIES
    # moved, not copied: the cache keeps the md5-checked downloads and nothing unpacked
    cache = out / DL.DOWNLOAD_CACHE
    assert sorted(p.name for p in (cache / "celeba").iterdir()) == sorted(_celeba_files())
    assert sorted(p.name for p in cache.iterdir()) == ["celeba", "imagenette2-320.tgz"]
    text = capsys.readouterr().out
    assert "anime/: yours to add" in text and "styles/: yours to add" in text and "AnimeFace" in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("[wae_lib] download: faces 6 images, natural 3 images in ") and last.endswith(" s)")


def test_a_second_run_downloads_nothing_and_an_interrupted_one_resumes_from_the_archives(net, tmp_path, capsys):
    out = tmp_path / "data"
    DL.download_data(out)
    before = {name: _tree(out / name) for name in ("faces", "natural")}
    n_calls = len(net.calls)
    assert n_calls == len(tv_datasets.CelebA.file_list) + 1

    net.online = False  # a second run needs no network and changes nothing
    assert DL.download_data(out) == {"faces": None, "natural": None}
    assert {name: _tree(out / name) for name in ("faces", "natural")} == before
    assert "faces/: already there, CelebA not downloaded" in capsys.readouterr().out

    # interrupted after unpacking, before the move (a partial tree in the cache), or a deleted folder: redone from
    # the kept, md5-checked archives, offline, and without gdown (torchvision's download path would import it)
    for name in ("faces", "natural"):
        shutil.rmtree(out / name)
    partial = out / DL.DOWNLOAD_CACHE / "celeba" / "img_align_celeba"
    partial.mkdir()
    (partial / "000001.jpg").write_bytes(b"half a file")
    sys.modules["gdown"] = None  # monkeypatch restores it
    assert DL.download_data(out) == {"faces": len(IDENTITIES), "natural": len(IMAGENETTE_TRAIN)}
    assert len(net.calls) == n_calls
    assert (out / "faces" / "000001.jpg").read_bytes() == _jpeg(0)  # unpacked again, not the partial file
    assert S.read_identities(out / "identity.csv") == IDENTITIES


def test_download_failures_are_one_line_naming_the_dataset_and_the_way_by_hand(net, tmp_path, capsys):
    out = tmp_path / "data"
    net.online = False
    sys.modules["gdown"] = None  # not installed: torchvision says so
    assert DATA_CMD(["download", "--data-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: CelebA: download failed")
    assert "pip install gdown" in err and DL.CELEBA_SITE in err and str(out / DL.DOWNLOAD_CACHE / "celeba") in err
    assert f"Imagenette: download of {net.url} failed (URLError" in err and "It needs internet" in err
    assert not (out / "faces").exists() and not (out / "natural").exists()

    # online, but CelebA's zip arrives damaged: torchvision's md5 check refuses it; Imagenette is still fetched
    net.online = True
    sys.modules["gdown"] = types.SimpleNamespace(download=net.gdown_download)
    net.corrupt = {fid for fid, _, name in tv_datasets.CelebA.file_list if name == "img_align_celeba.zip"}
    with pytest.raises(DL.DownloadError, match=r"^CelebA: download failed \(RuntimeError: File not found or "
                                              r"corrupted\.\)") as exc:
        DL.download_data(out)
    assert "Imagenette" not in str(exc.value)
    assert not (out / "faces").exists() and not (out / "identity.csv").exists()
    assert sorted(p.relative_to(out / "natural").as_posix() for p in (out / "natural").rglob("*.JPEG")) == \
        sorted(IMAGENETTE_TRAIN)
    with pytest.raises(ValueError, match="Imagenette size 'full'"):
        DL.download_data(out, imagenette_size="full")
