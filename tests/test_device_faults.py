"""The prepared GPU session under damaged or foreign input (issue 35): `device unpack`, `device run` and `device
travel` each answer one line and leave nothing half-done.

- unpack goes into a new (or empty) folder, never mixing two calls' files;
- the returned archive and its summary.json are checked member by member before anything is extracted;
- bundle.json's contents are covered by a digest that `device run` checks before it writes or removes anything;
- `travel --bundle <outside the repository>` is refused before `--offload` touches the git index.

Fast: the archives are built here in a few bytes, the bundle is packed once from 40 tiny images, and `device run`'s
stages are replaced by a stub (a bundle that is accepted would otherwise train).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
from commands import command

from devtools import device as D
from devtools import device_bundle as B
from wae_lib.data.layout import EVAL_IDENTITY_FILE, set_path, sets_dir

DEVICE_CMD = command("device", "devtools")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# --------------------------------------------------------------------------------------------------
# unpack: the returned folder, built here as `device run` writes it (or damaged)
# --------------------------------------------------------------------------------------------------
def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, link
    return m


def archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m, data in members:
            if data is None:
                tar.addfile(m)
            else:
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
    return buf.getvalue()


GOOD = [(member("results", tarfile.DIRTYPE), None), (member("results/ship/row.txt"), b"first file")]


def returned(folder, blob: bytes, summary: dict | None = None, raw: bytes | None = None):
    """A returned folder holding ``blob`` as one part and a summary.json that matches it (a damaged archive passes
    the digest: only the member checks can catch it), updated by ``summary`` or replaced by ``raw``."""
    folder.mkdir(parents=True)
    (folder / "results.tar.part0").write_bytes(blob)
    doc = {"stages": [{"stage": "ship", "images": 8}], "parts": ["results.tar.part0"],
           "archive_sha256": hashlib.sha256(blob).hexdigest(), **(summary or {})}
    (folder / "summary.json").write_bytes(json.dumps(doc).encode() if raw is None else raw)
    return folder


def test_unpack_goes_into_a_new_folder_and_refuses_one_holding_an_earlier_call(tmp_path, capsys):
    results = tmp_path / "work" / "results"
    (results / "ship").mkdir(parents=True)
    (results / "ship" / "first.txt").write_text("call 1")
    first = tmp_path / "call1"
    first.mkdir()
    D.pack_results(results, first, {"stages": [{"stage": "ship"}]})
    dest = tmp_path / "models" / "device"
    assert DEVICE_CMD(["unpack", str(first), "--out", str(dest)]) == 0
    (results / "ship" / "first.txt").unlink()
    (results / "ship" / "second.txt").write_text("call 2")
    second = tmp_path / "call2"
    second.mkdir()
    D.pack_results(results, second, {"stages": [{"stage": "ship"}]})
    capsys.readouterr()
    assert DEVICE_CMD(["unpack", str(second), "--out", str(dest)]) == 1
    assert "is not an empty folder" in one_line_error(capsys)
    assert sorted(p.name for p in (dest / "results" / "ship").iterdir()) == ["first.txt"]  # not mixed
    assert json.loads((dest / "summary.json").read_text()) == json.loads((first / "summary.json").read_text())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert DEVICE_CMD(["unpack", str(second), "--out", str(empty)]) == 0  # an empty folder is a new one
    assert (empty / "results" / "ship" / "second.txt").read_text() == "call 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call1", "call2", "empty", "models", "work"]  # no temp left


BAD_ARCHIVES = {
    "dot-dot member": archive([*GOOD, (member("../escaped.txt"), b"x")]),
    "dot-dot inside": archive([*GOOD, (member("results/../../escaped.txt"), b"x")]),
    "absolute member": archive([*GOOD, (member("/tmp/wae_device_faults_escaped.txt"), b"x")]),
    "outside results/": archive([*GOOD, (member("other/file.txt"), b"x")]),
    "absolute symlink": archive([*GOOD, (member("results/l", tarfile.SYMTYPE, "/etc/passwd"), None)]),
    "relative symlink": archive([*GOOD, (member("results/l", tarfile.SYMTYPE, "ship/row.txt"), None)]),
    "hard link": archive([*GOOD, (member("results/h", tarfile.LNKTYPE, "results/ship/row.txt"), None)]),
    "fifo": archive([*GOOD, (member("results/p", tarfile.FIFOTYPE), None)]),
    "not a tar": b"this is not a tar archive\n" * 40,
    "empty part": b"",
    "member cut short": archive([*GOOD, (member("results/big.bin"), bytes(4096))])[:512 * 4 + 1000],
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_a_damaged_or_foreign_archive_is_refused_in_one_line_with_nothing_extracted(case, tmp_path, capsys):
    src = returned(tmp_path / "returned", BAD_ARCHIVES[case])
    dest = tmp_path / "out" / "device"
    assert DEVICE_CMD(["unpack", str(src), "--out", str(dest)]) == 1
    assert "nothing was extracted" in one_line_error(capsys)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []  # no half folder, no temp
    assert not (tmp_path / "escaped.txt").exists()


BAD_SUMMARIES = {
    "truncated": dict(raw=b'{"stages": [{"stage": "ship"}], "parts": ["results.tar.pa'),
    "a list": dict(raw=b"[1, 2]"),
    "not UTF-8": dict(raw=b'{"parts": "\xff\xfe"}'),
    "no stages": dict(summary={"stages": None}),
    "stages not rows": dict(summary={"stages": ["ship"]}),
    "no digest": dict(summary={"archive_sha256": None}),
    "parts not a list": dict(summary={"parts": "results.tar.part0"}),
    "a part outside the folder": dict(summary={"parts": ["../elsewhere/results.tar.part0"]}),
    "no parts": dict(summary={"parts": [], "archive_sha256": hashlib.sha256(b"").hexdigest()}),
}


@pytest.mark.parametrize("case", list(BAD_SUMMARIES))
def test_a_truncated_or_malformed_summary_is_refused_in_one_line_before_extracting(case, tmp_path, capsys):
    blob = archive(GOOD)
    src = returned(tmp_path / "returned", blob, **BAD_SUMMARIES[case])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "results.tar.part0").write_bytes(blob)  # what a part named '../...' would read
    dest = tmp_path / "out" / "device"
    assert DEVICE_CMD(["unpack", str(src), "--out", str(dest)]) == 1
    assert f"{src / 'summary.json'}" in one_line_error(capsys)  # named, not "the parts do not match it"
    assert not dest.exists()


# --------------------------------------------------------------------------------------------------
# run: bundle.json checked (digest, completeness) before anything is written or removed
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_data")
    sets_dir(root).mkdir()
    rng = np.random.default_rng(0)
    mixed = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    arrays = {"mixed": mixed, "celeba": mixed[:24], "content_eval": mixed[:4], "style_eval": mixed[4:6]}
    for name, arr in arrays.items():
        np.save(set_path(root, name), arr)
    np.save(sets_dir(root) / EVAL_IDENTITY_FILE, np.arange(4) // 2)
    (sets_dir(root) / "info.json").write_text(json.dumps({"sets": {n: {"count": len(a)} for n, a in arrays.items()}}))
    return B.pack(root, tmp_path_factory.mktemp("faults_bundle") / "bundle")


@pytest.fixture
def bundle(packed, tmp_path):
    return shutil.copytree(packed, tmp_path / "bundle")


def run_stubbed(bundle, tmp_path, monkeypatch):
    """`device run --dry --stages ship` with the stage replaced: an accepted bundle returns at once."""
    monkeypatch.setitem(D.STAGE_FUNCTIONS, "ship", lambda ctx, seconds: {"stage": "ship", "stub": True})
    return D.run_stages(bundle, tmp_path / "out", budget=30, stages="ship", dry=True, work=tmp_path / "work")


def edit(bundle, change) -> None:
    manifest = json.loads((bundle / "bundle.json").read_text())
    change(manifest)
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2))


def test_a_bundle_as_packed_is_accepted(bundle, tmp_path, monkeypatch):
    """(The other side of the checks below; this one passes before issue 35 too.)"""
    out = run_stubbed(bundle, tmp_path, monkeypatch)
    assert json.loads((out / "summary.json").read_text())["stages"] == [{"stage": "ship", "stub": True}]
    assert np.load(set_path(tmp_path / "work" / "data", "mixed")).shape == (40, 64, 64, 3)
    assert np.load(set_path(tmp_path / "work" / "data", "celeba")).shape == (24, 64, 64, 3)


TAMPERED = {
    "more training images": lambda m: m.update(n_train=m["n_train"] * 8),  # black padding decoded as images
    "celeba is the whole mixed set": lambda m: m.update(n_celeba=m["n_train"]),
    "a set renamed": lambda m: m["info"]["sets"].update(renamed=m["info"]["sets"].pop("style_eval")),
    "style names": lambda m: m["info"].update(style_names=["not", "these"]),
    "the mosaic's digest replaced": lambda m: m["files"].update({B.MOSAIC: "0" * 64}),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_run_refuses_a_bundle_json_whose_contents_its_digest_does_not_cover(case, bundle, tmp_path, monkeypatch):
    edit(bundle, TAMPERED[case])
    with pytest.raises(B.DeviceSessionError, match="changed after pack.*digest") as exc:
        run_stubbed(bundle, tmp_path, monkeypatch)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()  # checked before any side effect


def test_a_count_with_a_recomputed_digest_still_has_to_fit_the_mosaic(bundle, tmp_path, monkeypatch):
    edit(bundle, lambda m: m.update(n_train=50, digest=B.manifest_digest(dict(m, n_train=50))))
    with pytest.raises(B.DeviceSessionError, match=r"is 448x384 px, not the 512x448 of 50 images"):
        run_stubbed(bundle, tmp_path, monkeypatch)


INCOMPLETE = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "a list": lambda text: "[]",
    "no n_train": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "n_train"}),
    "n_train a string": lambda text: json.dumps({**json.loads(text), "n_train": "40"}),
    "no files": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "files"}),
    "format 1, no digest": lambda text: json.dumps({**{k: v for k, v in json.loads(text).items() if k != "digest"},
                                                     "format": 1}),
}


@pytest.mark.parametrize("case", list(INCOMPLETE))
def test_run_refuses_a_truncated_or_incomplete_bundle_json_in_one_line(case, bundle, tmp_path, monkeypatch):
    path = bundle / "bundle.json"
    path.write_text(INCOMPLETE[case](path.read_text()))
    with pytest.raises(B.DeviceSessionError, match="bundle.json.*pack again") as exc:
        run_stubbed(bundle, tmp_path, monkeypatch)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


# --------------------------------------------------------------------------------------------------
# travel: a bundle outside the repository refused before the index is touched (only in a temp repository)
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "wae_lib" / "weights").mkdir(parents=True)
    (repo / "reports").mkdir()
    (repo / "wae_lib" / "weights" / "model.pt").write_bytes(b"weights")
    (repo / "reports" / "fig.png").write_bytes(b"figure")
    (repo / "code.py").write_text("x = 1\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run([*git, *args], cwd=repo, check=True)
    monkeypatch.chdir(repo)  # `device travel` measures the repository it is run in
    return repo


def untouched(repo) -> tuple[str, str]:
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    return status.stdout, (repo / ".git" / "info" / "exclude").read_text()


@pytest.mark.parametrize("flags", [["--offload"], []])
def test_travel_refuses_a_bundle_outside_the_repository_before_touching_the_index(flags, repo, tmp_path, capsys):
    outside = tmp_path / "elsewhere" / "bundle"
    outside.mkdir(parents=True)
    (outside / "bundle.json").write_text("{}")
    before = untouched(repo)
    assert DEVICE_CMD(["travel", *flags, "--bundle", str(outside)]) == 1
    assert "is outside the repository" in one_line_error(capsys)
    assert untouched(repo) == before  # no deletion staged, no exclude lines


def test_travel_refuses_offload_and_restore_together(repo, capsys):
    before = untouched(repo)
    assert DEVICE_CMD(["travel", "--offload", "--restore"]) == 1
    assert "pass one of them" in one_line_error(capsys)
    assert untouched(repo) == before
    (repo / "build" / "device").mkdir(parents=True)  # the default bundle, inside: offload and restore still work
    (repo / "build" / "device" / "bundle.json").write_text("{}")
    assert DEVICE_CMD(["travel", "--offload"]) == 0 and DEVICE_CMD(["travel", "--restore"]) == 0
    assert untouched(repo)[0] == "?? build/\n"
