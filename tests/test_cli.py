"""`python -m wae_lib transfer`: outputs, options and error paths (in-process via main(argv); CPU, a tiny model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wae_lib.__main__ import main
from wae_lib.commands import transfer as transfer_cmd
from wae_lib.commands import transfer as transfer_io
from wae_lib.config import Config
from wae_lib.eval.color import rgb_to_lab
from wae_lib.grids import grid_geometry, grid_layout
from wae_lib.model.checkpoint import CHECKPOINT
from wae_lib.model.run import load_model
from wae_lib.model.wae import WAEStyle

ROOT = Path(__file__).resolve().parents[1]


def blobs(h: int, w: int, seed: int) -> np.ndarray:
    """h x w x 3 uint8 of smooth colour blobs: image-like and cheap."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return (img[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory, hed_vgg) -> dict[str, Path]:
    """A tiny untrained model saved as a run folder, and content/style folders of odd sizes and formats."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    cfg = Config(content_dim=16, width=0.125, style_hidden=32, style_dim_per_layer=8, vgg_source="hed")
    model = WAEStyle(cfg, vgg=hed_vgg, verbose=False)
    model.data_init(torch.from_numpy(np.stack([blobs(64, 64, s) for s in range(16)])).permute(0, 3, 1, 2) / 255)
    run = root / "run"
    run.mkdir()
    torch.save({"model": model.state_dict(), "config": model.config.to_dict(), "step": 0, "finished": True},
               run / CHECKPOINT)
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    Image.fromarray(blobs(90, 120, 1)).save(content / "a.jpg", quality=95)  # landscape JPEG
    Image.fromarray(blobs(50, 40, 2)).convert("RGBA").save(content / "b.png")  # portrait, alpha channel
    Image.fromarray(blobs(64, 64, 3)).convert("L").save(content / "c.bmp")  # greyscale BMP
    (content / "notes.txt").write_text("not an image: ignored by extension")
    Image.fromarray(blobs(200, 200, 4)).save(style / "s1.png")
    Image.fromarray(blobs(30, 70, 5)).save(style / "s2.webp")
    return {"run": run, "content": content, "style": style, "root": root}


def transfer(files, *args: str) -> int:
    return main(["transfer", *args, "--model", str(files["run"]), "--device", "cpu"])


def png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255


def test_help_lists_commands_and_states_the_input_rule():
    top = subprocess.run([sys.executable, "-m", "wae_lib", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert top.returncode == 0 and "transfer" in top.stdout
    sub = subprocess.run([sys.executable, "-m", "wae_lib", "transfer", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    text = " ".join(sub.stdout.split())
    for phrase in ("centre-cropped to a square and resized to the model's 64x64", "--style-mix", "--preserve-color",
                   "Gatys et al. (2017)", "--device", "Output rule"):
        assert phrase in text, phrase


def test_single_pair_writes_one_64px_png(files, tmp_path, capsys):
    out = tmp_path / "sub" / "out.png"
    assert transfer(files, str(files["content"] / "a.jpg"), str(files["style"] / "s1.png"), "-o", str(out)) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png"]  # no temporary file left
    im = Image.open(out)
    assert im.size == (64, 64) and im.mode == "RGB" and im.format == "PNG"
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote 1 image") and str(out) in line and "VGG16: HED" in line and "run" in line


def test_folders_give_every_pair_and_a_grid(files, tmp_path):
    out = tmp_path / "out"
    assert transfer(files, str(files["content"]), str(files["style"]), "-o", str(out)) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{c}__{s}.png" for c in "abc" for s in ("s1", "s2")] + ["grid.png"])
    # each file is the model's transfer of the centre-cropped, resized images
    model = load_model(files["run"])
    c, s = transfer_io.load_image(files["content"] / "a.jpg", "c"), transfer_io.load_image(files["style"] / "s2.webp", "s")
    expected = model.transfer(c[None], s[None])[0]
    assert (png(out / "a__s2.png") - expected).abs().max() <= 1 / 255 + 1e-6
    # grid: header row + 3 contents, content column + 2 styles, cells at 2x
    lay = grid_layout([torch.zeros(3, 3, 64, 64)] * 4, ["style", "a", "b", "c"], ["content", "s1", "s2"], "x" * 50)
    geo = grid_geometry(4, 3, lay["label_width"], True, 0)
    grid = Image.open(out / "grid.png")
    assert grid.width == 2 * geo["width"] and grid.height > 2 * geo["height"]


def test_alpha_zero_is_the_reconstruction_and_differs_from_alpha_one(files, tmp_path):
    c, s = str(files["content"] / "a.jpg"), str(files["style"] / "s1.png")
    assert transfer(files, c, s, "-o", str(tmp_path / "a0.png"), "--alpha", "0") == 0
    assert transfer(files, c, s, "-o", str(tmp_path / "a1.png"), "--alpha", "1") == 0
    a0, a1 = png(tmp_path / "a0.png"), png(tmp_path / "a1.png")
    recon = load_model(files["run"]).reconstruct(transfer_io.load_image(Path(c), "c")[None])[0]
    assert (a0 - recon).abs().max() <= 1 / 255 + 1e-6
    assert (a0 - a1).abs().mean() > 1e-3


def test_style_mix_of_one_image_is_plain_transfer_and_weights_are_normalised(files, tmp_path):
    c, s1, s2 = str(files["content"]), files["style"] / "s1.png", files["style"] / "s2.webp"
    assert transfer(files, c, str(s1), "-o", str(tmp_path / "plain")) == 0
    assert transfer(files, c, "--style-mix", f"{s1}:1", "-o", str(tmp_path / "mix1")) == 0
    assert transfer(files, c, "--style-mix", f"{s1}:1,{s2}:3", "-o", str(tmp_path / "mixA")) == 0
    assert transfer(files, c, "--style-mix", f"{s1}:0.25,{s2}:0.75", "-o", str(tmp_path / "mixB")) == 0
    assert torch.equal(png(tmp_path / "plain" / "a__s1.png"), png(tmp_path / "mix1" / "a__mix_s1-1.png"))
    assert torch.equal(png(tmp_path / "mixA" / "a__mix_s1-0.25_s2-0.75.png"),
                       png(tmp_path / "mixB" / "a__mix_s1-0.25_s2-0.75.png"))
    # the mixed latent is the weighted mean of the two style latents
    model = load_model(files["run"])
    x = torch.stack([transfer_io.load_image(p, "s") for p in (s1, s2)])
    z = 0.25 * model.encode_style(x[:1])[0] + 0.75 * model.encode_style(x[1:])[0]
    content = transfer_io.load_image(files["content"] / "a.jpg", "c")[None]
    expected = model.decode(model.encode_content(content)[0], z)[0].detach()
    assert (png(tmp_path / "mixA" / "a__mix_s1-0.25_s2-0.75.png") - expected).abs().max() <= 1 / 255 + 1e-6


def test_random_style_is_deterministic_per_seed(files, tmp_path):
    c = str(files["content"] / "b.png")
    for name, seed in (("r0", "0"), ("r0b", "0"), ("r1", "1")):
        assert transfer(files, c, "--style", "random", "--seed", seed, "-o", str(tmp_path / name)) == 0
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == ["b__random1.png", "grid.png"]
    a, b, other = png(tmp_path / "r0" / "b__random0.png"), png(tmp_path / "r0b" / "b__random0.png"), \
        png(tmp_path / "r1" / "b__random1.png")
    assert torch.equal(a, b) and (a - other).abs().mean() > 1e-3


def test_preserve_color_keeps_the_contents_ab_channels(files, tmp_path):
    c, s = files["content"] / "a.jpg", str(files["style"] / "s1.png")
    assert transfer(files, str(c), s, "-o", str(tmp_path / "keep.png"), "--preserve-color") == 0
    assert transfer(files, str(c), s, "-o", str(tmp_path / "plain.png")) == 0
    ab = rgb_to_lab(transfer_io.load_image(c, "c")[None])[..., 1:]
    keep = rgb_to_lab(png(tmp_path / "keep.png")[None])
    plain = rgb_to_lab(png(tmp_path / "plain.png")[None])
    err_keep, err_plain = np.abs(keep[..., 1:] - ab).mean(), np.abs(plain[..., 1:] - ab).mean()
    assert err_keep < 1.5 and err_keep < err_plain / 3, (err_keep, err_plain)
    assert np.abs(keep[..., 0] - plain[..., 0]).mean() < 2  # lightness from the transfer


def test_shipped_pretrained_model_is_the_default(files, tmp_path, capsys):
    out = tmp_path / "p.jpg"
    assert main(["transfer", str(files["content"] / "a.jpg"), str(files["style"] / "s2.webp"), "-o", str(out),
                 "--device", "cpu"]) == 0
    assert Image.open(out).size == (64, 64) and Image.open(out).format == "JPEG"
    line = capsys.readouterr().out
    assert "model: pretrained (" in line and "stand-in" in line  # says the offline VGG16 stand-in was used
    assert f"from {ROOT / 'wae_lib' / 'weights' / 'pretrained.pt'}" in line  # and which file it loaded


@pytest.mark.parametrize("name", ["pretrained", "pretrained-paper"])
def test_both_shipped_models_take_every_option(name, files, tmp_path, capsys):
    """--alpha, --style-mix and --preserve-color work with ours (style modulation) and the paper's model."""
    c, s1, s2 = str(files["content"] / "a.jpg"), str(files["style"] / "s1.png"), str(files["style"] / "s2.webp")
    outs = {}
    for key, extra in (("plain", [s1]), ("half", [s1, "--alpha", "0.5"]), ("keep", [s1, "--preserve-color"]),
                       ("mix", ["--style-mix", f"{s1}:0.3,{s2}:0.7"])):
        out = tmp_path / f"{key}.png"
        assert main(["transfer", c, *extra, "-o", str(out), "--model", name, "--device", "cpu"]) == 0
        outs[key] = png(out)
    assert f"model: {name} (" in capsys.readouterr().out
    for key in ("half", "keep", "mix"):  # each option changes the output
        assert (outs[key] - outs["plain"]).abs().mean() > 0.002, key


def test_model_may_be_a_checkpoint_or_an_exported_file(files, tmp_path, capsys):
    from wae_lib.model.pretrained import export_pretrained

    exported = export_pretrained(load_model(files["run"]), tmp_path / "tiny.pt", run="tiny", step=0)
    c, s = str(files["content"] / "a.jpg"), str(files["style"] / "s1.png")
    for name, model in (("ckpt.png", files["run"] / CHECKPOINT), ("exported.png", exported)):
        assert main(["transfer", c, s, "-o", str(tmp_path / name), "--model", str(model), "--device", "cpu"]) == 0
    assert (png(tmp_path / "ckpt.png") - png(tmp_path / "exported.png")).abs().max() < 0.05  # fp16 weights
    (tmp_path / "junk.pt").write_bytes(b"junk")
    capsys.readouterr()
    assert main(["transfer", c, s, "-o", str(tmp_path / "j.png"), "--model", str(tmp_path / "junk.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.pt" in err[0] and not (tmp_path / "j.png").exists()


# --------------------------------------------------------------------------------------------------
# error paths: exit status != 0, one line naming the culprit, nothing written
# --------------------------------------------------------------------------------------------------
def error_cases(f: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    bad = f["root"] / "bad"
    if not bad.exists():
        bad.mkdir()
        (bad / "garbage.jpg").write_bytes(b"this is not a jpeg" * 10)
        jpg = f["root"] / "full.jpg"
        Image.fromarray(blobs(64, 64, 9)).save(jpg)
        (bad / "truncated.jpg").write_bytes(jpg.read_bytes()[:300])
        (f["root"] / "empty").mkdir()
        (f["root"] / "noimg").mkdir()
        (f["root"] / "noimg" / "readme.txt").write_text("x")
        broken = f["root"] / "broken_run"
        broken.mkdir()
        (broken / CHECKPOINT).write_bytes(b"not a checkpoint")
        ck = torch.load(f["run"] / CHECKPOINT, weights_only=True)
        torch.save({**ck, "optimizer": {}}, f["root"] / "renamed.pt")  # a run's checkpoint.pt under another name
        other = f["root"] / "other_run"  # a checkpoint of another architecture (content_dim changed)
        other.mkdir()
        ck = torch.load(f["run"] / CHECKPOINT, weights_only=True)
        ck["config"]["content_dim"] = 24
        torch.save(ck, other / CHECKPOINT)
    c, s, s1 = str(f["content"]), str(f["style"]), str(f["style"] / "s1.png")
    a = str(f["content"] / "a.jpg")
    return {
        "corrupt image": ([str(bad / "garbage.jpg"), s], "garbage.jpg"),
        "truncated image": ([c, str(bad / "truncated.jpg")], "truncated.jpg"),
        "empty folder": ([str(f["root"] / "empty"), s], "empty"),
        "folder without images": ([c, str(f["root"] / "noimg")], "noimg"),
        "missing content": ([str(f["root"] / "nope.jpg"), s], "nope.jpg"),
        "missing style": ([c, str(f["root"] / "nostyle")], "nostyle"),
        "alpha not a number": ([c, s, "--alpha", "abc"], "--alpha"),
        "alpha out of range": ([c, s, "--alpha", "1.6"], "--alpha"),
        "alpha nan": ([c, s, "--alpha", "nan"], "--alpha"),
        "mix weight not a number": ([c, "--style-mix", f"{s1}:x"], "'x'"),
        "mix weight negative": ([c, "--style-mix", f"{s1}:0.5,{s1}:-0.2"], "-0.2"),
        "mix weights sum to zero": ([c, "--style-mix", f"{s1}:0,{s1}:0"], "sum to 0"),
        "mix image missing": ([c, "--style-mix", f"{f['root'] / 'gone.png'}:1"], "gone.png"),
        "mix image corrupt": ([c, "--style-mix", f"{s1}:1,{bad / 'garbage.jpg'}:1"], "garbage.jpg"),
        "no style": ([c], "STYLE"),
        "two styles": ([c, s, "--style", "random"], "STYLE"),
        "positional random": ([c, "random"], "--style random"),
        "file out, many pairs": ([c, s, "-o", str(f["root"] / "one.png")], "one.png"),
        "missing model": ([a, s1, "--model", str(f["root"] / "no_run")], "no_run"),
        "folder is no run": ([a, s1, "--model", str(f["content"])], str(f["content"])),
        "unreadable checkpoint": ([a, s1, "--model", str(f["root"] / "broken_run")], "broken_run"),
        "incompatible checkpoint": ([a, s1, "--model", str(f["root"] / "other_run")], "other_run"),
        "bad device": ([a, s1, "--device", "tpu"], "--device"),
        "bad batch size": ([a, s1, "--batch-size", "0"], "--batch-size"),
        "unknown option": ([a, s1, "--alhpa", "1"], "--alhpa"),
        # issue 18, item 8 and 5: each of these was a traceback, a silent zero latent or a silent folder before
        "seed too large": ([a, "--style", "random", "--seed", "18446744073709551616"], "--seed"),
        "mix weights overflow": ([c, "--style-mix", f"{s1}:1e308,{s1}:1e308"], "too large"),
        "gif output": ([a, s1, "-o", str(f["root"] / "out.gif")], ".gif"),
        "empty output": ([a, s1, "-o", ""], "-o is empty"),
        "output folder holds inputs": ([c, s1, "-o", c], "holds input image"),
        "renamed training checkpoint": ([a, s1, "--model", str(f["root"] / "renamed.pt")], "training checkpoint"),
    }


ERROR_NAMES = ["corrupt image", "truncated image", "empty folder", "folder without images", "missing content",
               "missing style", "alpha not a number", "alpha out of range", "alpha nan", "mix weight not a number",
               "mix weight negative", "mix weights sum to zero", "mix image missing", "mix image corrupt", "no style",
               "two styles", "positional random", "file out, many pairs", "missing model", "folder is no run",
               "unreadable checkpoint", "incompatible checkpoint", "bad device", "bad batch size", "unknown option",
               "seed too large", "mix weights overflow", "gif output", "empty output", "output folder holds inputs",
               "renamed training checkpoint"]


def test_error_names_cover_every_case(files):
    assert sorted(error_cases(files)) == sorted(ERROR_NAMES)


@pytest.mark.parametrize(("name", "out_exists"), [(n, e) for n in ERROR_NAMES for e in (False, True)
                                                   if not (e and n == "file out, many pairs")])
def test_errors_give_one_line_naming_the_culprit_and_write_nothing(files, tmp_path, capsys, name, out_exists):
    """Every error path, with OUT absent (it must stay absent) and with OUT an existing folder (unchanged)."""
    args, culprit = error_cases(files)[name]
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
        (out / "keep.txt").write_text("unchanged")
    argv = ["transfer", *args]
    argv += [] if "-o" in args else ["-o", str(out)]
    argv += [] if "--model" in args else ["--model", str(files["run"])]
    argv += [] if "--device" in args else ["--device", "cpu"]
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    if out_exists:
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists()
    assert not (files["root"] / "one.png").exists() and not (files["root"] / "out.gif").exists()
    assert sorted(p.name for p in files["content"].iterdir()) == ["a.jpg", "b.png", "c.bmp", "notes.txt"]


def test_cuda_requested_but_unavailable(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "o.png"
    code = main(["transfer", str(files["content"] / "a.jpg"), str(files["style"] / "s1.png"), "-o", str(out),
                 "--model", str(files["run"]), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--device cuda" in err[0] and "CUDA" in err[0] and not out.exists()


def test_a_failed_write_leaves_no_partial_output(files, tmp_path, capsys, monkeypatch):
    """Disk full on the 3rd file: the temporary files and the folder this run created are removed."""
    real_save, calls = Image.Image.save, []

    def failing_save(self, fp, *a, **k):
        calls.append(fp)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    out = tmp_path / "new" / "out"
    assert transfer(files, str(files["content"]), str(files["style"]), "-o", str(out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left" in err[0]
    assert not (tmp_path / "new").exists() and len(calls) == 3


# --------------------------------------------------------------------------------------------------
# output folders (issue 18, items 3 and 4): a run removes only what it wrote, interrupts say what is there
# --------------------------------------------------------------------------------------------------
def test_a_failed_run_keeps_what_another_run_wrote_into_its_new_folder(files, tmp_path, capsys, monkeypatch):
    real_save, calls = Image.Image.save, []
    out = tmp_path / "oshare"

    def save_then_fail(self, fp, *a, **k):
        calls.append(fp)
        if len(calls) == 2:  # meanwhile another run finished a file in the folder this run created
            real_save(Image.fromarray(blobs(64, 64, 7)), out / "other_run.png")
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    assert transfer(files, str(files["content"]), str(files["style"]), "-o", str(out)) == 1
    assert "No space left" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["other_run.png"]  # the other run's file, and nothing of ours


def test_interrupt_while_moving_outputs_into_place_finishes_and_says_so(files, tmp_path, capsys, monkeypatch):
    import os
    import signal

    out = tmp_path / "out"
    out.mkdir()
    (out / "a__s1.png").write_bytes(b"old")
    real_replace, moves = os.replace, []

    def replace_with_ctrl_c(src, dst):
        moves.append(dst)
        if len(moves) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_replace(src, dst)

    monkeypatch.setattr(transfer_io.os, "replace", replace_with_ctrl_c)
    code = transfer(files, str(files["content"]), str(files["style"]), "-o", str(out))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and len(err) == 1 and "all 7 were already written" in err[0], err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{c}__{st}.png" for c in "abc" for st in ("s1", "s2")] + ["grid.png"])
    assert (out / "a__s1.png").read_bytes() != b"old"


def test_sigterm_while_writing_leaves_nothing_and_stale_staging_is_removed(files, tmp_path, capsys, monkeypatch):
    import os
    import signal

    out = tmp_path / "new"
    real_save, calls = Image.Image.save, []

    def save_then_term(self, fp, *a, **k):
        calls.append(fp)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save_then_term)
    assert transfer(files, str(files["content"]), str(files["style"]), "-o", str(out)) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err and not out.exists()
    monkeypatch.undo()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    out.mkdir()
    (out / f"{transfer_io.STAGING_PREFIX}{dead}").mkdir()
    (out / f".a__s1.png.tmp{dead}").write_bytes(b"x")  # the temporaries of earlier versions
    assert transfer(files, str(files["content"]), str(files["style"]), "-o", str(out)) == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_nan_weights_are_refused_in_one_line(files, tmp_path, capsys):
    run = tmp_path / "nan_run"
    run.mkdir()
    ck = torch.load(files["run"] / CHECKPOINT, weights_only=True)
    name = next(k for k, v in ck["model"].items() if v.is_floating_point() and not k.startswith("vgg."))
    ck["model"][name] = torch.full_like(ck["model"][name], float("nan"))
    torch.save(ck, run / CHECKPOINT)
    out = tmp_path / "o.png"
    assert main(["transfer", str(files["content"] / "a.jpg"), str(files["style"] / "s1.png"), "-o", str(out),
                 "--model", str(run), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or inf" in err[0] and not out.exists()


def test_style_may_follow_the_options(files, tmp_path):
    out = tmp_path / "late.png"
    assert main(["transfer", str(files["content"] / "a.jpg"), "-o", str(out), str(files["style"] / "s1.png"),
                 "--model", str(files["run"]), "--device", "cpu"]) == 0
    assert Image.open(out).size == (64, 64)


def test_plain_pickle_model_and_read_only_folder_are_one_line(files, tmp_path, capsys, monkeypatch):
    import argparse
    import errno
    import pickle

    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(argparse.Namespace(a=1)))  # not a checkpoint: torch warns, then refuses
    a, s1 = str(files["content"] / "a.jpg"), str(files["style"] / "s1.png")
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # a warning would print before the line on a terminal
        warnings.simplefilter("always")
        assert main(["transfer", a, s1, "-o", str(tmp_path / "p.png"), "--model", str(plain)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plain.pkl" in err[0] and not caught, (err, [str(w.message)[:80] for w in caught])

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    out = tmp_path / "ro"
    out.mkdir()
    monkeypatch.setattr(Image.Image, "save", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)  # a cleanup that unlinks would fail the same way
    assert transfer(files, a, s1, "-o", str(out / "x.png")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Read-only file system" in err[0] and "x.png" in err[0], err


def test_a_quick_profile_model_is_labelled_as_such(files, tmp_path, capsys):
    run = tmp_path / "quick_run"
    run.mkdir()
    ck = torch.load(files["run"] / CHECKPOINT, weights_only=True)
    ck["config"] = {**ck["config"], "profile": "quick", "steps": 60, "batch_size": 8}
    torch.save(ck, run / CHECKPOINT)
    assert main(["transfer", str(files["content"] / "a.jpg"), str(files["style"] / "s1.png"), "-o",
                 str(tmp_path / "q.png"), "--model", str(run), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "quick-profile model (60 steps of 8)" in err and "pretrained" in err


def test_a_mix_has_a_header_cell_of_its_images_and_a_label_that_fits(files):
    """Issue 19: the random/mix grids had a blank style row and a `mix_candy-` column label."""
    s1, s2 = (transfer_io.load_image(files["style"] / n, "s") for n in ("s1.png", "s2.webp"))
    mix = transfer_cmd.Style("mix_s1-0.25_s2-0.75", files=(Path("s1.png"), Path("s2.webp")), weights=(0.25, 0.75),
                    image_batch=torch.stack([s1, s2]))
    cell = transfer_cmd.style_header_cell(mix)[0]
    assert torch.equal(cell[:, :, :16], s1[:, :, :16]) and torch.equal(cell[:, :, 16:], s2[:, :, 16:])
    assert transfer_cmd.style_column_label(mix) == "mix of 2"
    single = transfer_cmd.Style("s1", image=s1, files=(Path("s1.png"),), weights=(1.0,), image_batch=s1[None])
    assert torch.equal(transfer_cmd.style_header_cell(single)[0], s1) and transfer_cmd.style_column_label(single) == "s1"
    assert transfer_cmd.style_column_label(transfer_cmd.Style("random3")) == "random3"


def test_one_command_line_lists_and_runs_every_command(capsys):
    """issue 20 item 2, issue 36 item 1: `python -m wae_lib <command>` reaches every command, --help lists them, and
    a command's failure is one line with exit status 1; the repository's tooling is `python -m devtools`."""
    from devtools.__main__ import main as devtools
    from wae_lib.__main__ import COMMANDS, main

    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in COMMANDS)
    assert main(["train", "--help"]) == 0 and "--content-dim" in capsys.readouterr().out
    assert main(["train", "--profile", "smoke"]) == 1 and "--out is required" in capsys.readouterr().err
    assert main(["headless", "x.ipynb"]) == 1  # not a wae_lib command any more
    assert devtools(["headless", "no_such_notebook.ipynb"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error:")


def test_size_transfers_at_that_size_with_a_spatial_model_and_refuses_otherwise(files, tmp_path, capsys):
    """Issue 33 item 3: --size N with the shipped spatial-content model writes N x N outputs (every option still
    works), a grid of N px cells; the vector model, a size off the map's stride and an absurd size are one line."""
    c, s1, s2 = str(files["content"] / "a.jpg"), str(files["style"] / "s1.png"), str(files["style"] / "s2.webp")
    out = tmp_path / "big"
    assert main(["transfer", str(files["content"]), str(files["style"]), "-o", str(out), "--size", "128",
                 "--device", "cpu", "--alpha", "0.7", "--grid-scale", "1"]) == 0
    assert Image.open(out / "a__s1.png").size == (128, 128)
    lay = grid_layout([torch.zeros(3, 3, 128, 128)] * 4, ["style", "a", "b", "c"], ["content", "s1", "s2"])
    geo = grid_geometry(4, 3, lay["label_width"], True, 0, cell=128)
    assert Image.open(out / "grid.png").width == geo["width"]
    # the 128 px output is the model's transfer of the 128 px content image (the style image stays at 64 px)
    model = load_model("pretrained")
    x = transfer_io.load_image(files["content"] / "a.jpg", "c", 128)
    want = model.transfer(x[None], transfer_io.load_image(files["style"] / "s1.png", "s")[None], strength=0.7)[0]
    assert (png(out / "a__s1.png") - want).abs().max() <= 1 / 255 + 1e-6
    assert main(["transfer", c, "--style-mix", f"{s1}:0.3,{s2}:0.7", "-o", str(tmp_path / "m.png"), "--size", "96",
                 "--preserve-color", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "m.png").size == (96, 96)
    capsys.readouterr()
    for args, words in ((["--model", "pretrained-paper", "--size", "128"], "codes the content as a vector"),
                        (["--size", "130"], "multiple of 4 px"), (["--model", str(files["run"]), "--size", "128"],
                                                                   "takes 64 px images only")):
        assert main(["transfer", c, s1, "-o", str(tmp_path / "x.png"), "--device", "cpu", *args]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --size") and words in err and "\n" not in err, err
    assert not (tmp_path / "x.png").exists()
    assert main(["transfer", c, s1, "-o", str(tmp_path / "x.png"), "--size", "4096"]) == 1
    assert "--size: 4096 is outside [16, 1024]" in capsys.readouterr().err
