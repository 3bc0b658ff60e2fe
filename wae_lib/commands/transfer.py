"""``python -m wae_lib transfer``: style transfer of image files and folders from the shell (issue 9, item 3).

    python -m wae_lib transfer face.jpg starry_night.jpg -o out.png          # one pair -> one file
    python -m wae_lib transfer faces/ styles/ -o out/                         # every pair + out/grid.png
    python -m wae_lib transfer faces/ --style-mix a.jpg:0.3,b.jpg:0.7 -o out/
    python -m wae_lib transfer faces/ --style random --seed 3 -o out/

Everything is read, decoded and transferred in memory before the first byte is written; the outputs are written
to a staging folder beside them and then renamed into place with interrupts held back, so a failed run leaves
nothing behind (a folder it created is removed while empty) and removes nothing it did not write (the files:
the second part of this module). User errors (wae_lib.utils.UserError) end with one line ``error: ...`` on stderr and
exit status 1, never a traceback. Heavy imports (torch) happen in :func:`run`, so
``--help`` is fast.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..config import SHIPPED_MODELS, SMALL_PROFILES
from ..data.decode import Rejected, model_input
from ..utils import Interrupted, UserError

# --------------------------------------------------------------------------------------------------
# the files: the input images (listed, named, decoded to the model's 64 x 64 input), the model a --model value
# names, where each output goes, and writing the outputs as one step (staged beside them, then renamed into place
# with interrupts held back)
# --------------------------------------------------------------------------------------------------
IMAGE_EXTS = (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                  ".webp": "WEBP"}


GRID_NAME = "grid.png"


SIZE = 64  # the model's input and output size (wae_lib.model.wae.IMAGE_SIZE; not imported: --help stays torch-free)


def list_images(path: Path, role: str) -> list[Path]:
    """A file -> [file]; a folder -> its image files (by extension, not recursive, sorted by name)."""
    if not path.exists():
        raise UserError(f"{role} {path} does not exist")
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTS and not f.name.startswith(".")
                       and not f.is_dir())
        if not files:
            raise UserError(f"{role} folder {path} holds no images ({', '.join(IMAGE_EXTS)})")
        return files
    return [path]


def unique_names(paths: list[Path]) -> list[str]:
    """File stems, with the extension appended where two files share a stem (a.jpg, a.png -> a_jpg, a_png)."""
    counts = Counter(p.stem for p in paths)
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if counts[p.stem] > 1 else p.stem for p in paths]


def load_image(path: Path, role: str, size: int = SIZE):
    """Any image as the model takes it (wae_lib.data.decode.model_input) -> 3 x size x size in [0, 1]."""
    import torch

    try:
        crop = model_input(path, size)
    except Rejected as exc:
        raise UserError(f"{role} image {path} cannot be read: {exc.reason.replace('_', ' ')}"
                        f"{f' ({exc.detail})' if exc.detail else ''}") from None
    return torch.from_numpy(crop).permute(2, 0, 1).float() / 255


def model_problem(exc: BaseException) -> str:
    """One line saying why a checkpoint did not load (the library's messages span lines or wrap the cause)."""
    text = str(exc)
    if "Error(s) in loading state_dict" in text:  # another architecture or version: name the first mismatch
        detail = next((ln.strip() for ln in text.splitlines()[1:] if ln.strip()), "")
        return f"does not fit this version of wae_lib ({detail[:200]})"
    cause = exc.__cause__
    if cause is not None and "could not be read" in text:  # utils.load_weights wraps torch.load's error
        return f"is damaged or not a checkpoint ({type(cause).__name__} while reading it)"
    first = (text.strip().splitlines() or [""])[0]
    return f"could not be loaded: {type(exc).__name__}: {first[:300]}"


def load_model_spec(spec: str, device):
    """The model a --model value names (wae_lib.model.run.resolve_model) and a label for it."""
    from ..model.run import load_model, resolve_model

    try:
        source = resolve_model(spec)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    try:
        model = load_model(spec, device=device)
    except Exception as exc:  # unreadable, damaged or from an incompatible version: one line naming it
        raise UserError(f"model {spec} {model_problem(exc)}") from None
    if source.kind == "shipped":
        prov = getattr(model, "provenance", {}) or {}
        return model, f"{spec} ({prov.get('run', '?')}, step {prov.get('step', '?')})"
    info = getattr(model, "checkpoint_info", {}) or {}
    unfinished = "" if info.get("finished", True) else ", unfinished"
    return model, f"{spec} (step {info.get('step', '?')}{unfinished})"


def model_file(spec: str) -> str:
    """The file a --model value loaded: a shipped name's file in the package, a run folder's checkpoint."""
    from ..model.run import resolve_model

    return str(resolve_model(spec).path)


def output_plan(out: Path, content_names: list[str], styles: list[Style], inputs: list[Path], no_grid: bool
                ) -> tuple[bool, list[Path]]:
    """(single-file mode?, the output path of each pair, content-major) after checking OUT."""
    if out.suffix.lower() in IMAGE_EXTS and out.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"-o {out}: {out.suffix} images are read but not written; use one of "
                        f"{' '.join(OUTPUT_FORMATS)}, or a folder name without an image extension")
    single = out.suffix.lower() in OUTPUT_FORMATS
    n_pairs = len(content_names) * len(styles)
    if single:
        if n_pairs != 1:
            raise UserError(f"-o {out} names one image file but there are {n_pairs} content x style pairs; give "
                            f"a folder")
        if out.is_dir():
            raise UserError(f"-o {out} is an existing folder, but its extension makes it an image file name")
        resolved = out.resolve()
        if any(p.resolve() == resolved for p in inputs):
            raise UserError(f"-o {out} is one of the input images; choose another name")
        return True, [out]
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} exists and is not a folder (an image file name needs one of "
                        f"{' '.join(OUTPUT_FORMATS)})")
    resolved = out.resolve()
    inside = [p for p in inputs if p.resolve().parent == resolved]
    if inside:  # its outputs (and grid.png) could replace the inputs being read
        raise UserError(f"-o {out} holds input image {inside[0].name}; write into another folder")
    paths = [out / f"{c}__{s.name}.png" for c in content_names for s in styles]
    names = [p.name for p in paths] + ([] if no_grid else [GRID_NAME])
    dup = [n for n, k in Counter(names).items() if k > 1]
    if dup:
        raise UserError(f"two outputs would both be named {dup[0]} (rename an input)")
    return False, paths


STAGING_PREFIX = ".wae-transfer-"  # OUT/.wae-transfer-<pid>/: a run's outputs before they are moved into place


def remove_stale_staging(folder: Path) -> None:
    """Staging folders of runs that are no longer alive (a SIGKILL leaves them), and the ``.<name>.tmp<pid>`` files
    of earlier versions (wae_lib.utils.remove_stale_temporaries); a live run's are left alone."""
    from ..utils import pid_alive, remove_stale_temporaries

    if not folder.is_dir():
        return
    remove_stale_temporaries(folder)
    for p in folder.glob(f"{STAGING_PREFIX}*"):
        pid = p.name[len(STAGING_PREFIX):]
        if p.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def write_all(files: list[tuple[Path, object]]) -> None:
    """Write images (PIL or H x W x 3 uint8), all into one folder, as close to all-or-nothing as the file system
    allows: every file goes to a staging folder beside the targets first (same file system), then each is renamed
    into place with Ctrl-C and SIGTERM held back until the last one. On a failure before that, the staging folder
    and the folders this run created (if nothing else was put in them) are removed; nothing else is touched."""
    import signal

    from PIL import Image

    folders = {p.parent for p, _ in files}
    if len(folders) != 1:
        raise ValueError(f"write_all writes into one folder, got {sorted(map(str, folders))}")
    folder = folders.pop()
    created = [d for d in [folder, *folder.parents] if not d.exists()][::-1]  # top-most first
    staging = folder / f"{STAGING_PREFIX}{os.getpid()}"
    path = files[0][0] if files else folder
    moved = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(folder)
        staging.mkdir()
        for path, img in files:
            fmt = OUTPUT_FORMATS[path.suffix.lower()]
            img = img if isinstance(img, Image.Image) else Image.fromarray(img)
            img.save(staging / path.name, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
        path = folder
        held: list[int] = []
        old = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
               for sig in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
        try:
            for target, _ in files:
                os.replace(staging / target.name, target)
                moved += 1
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        staging.rmdir()
        if held:
            raise Interrupted(f"interrupted while moving the outputs into place; all {moved} were already written "
                              f"to {folder}")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}"
                        + (f" ({moved} of {len(files)} outputs were already moved into {folder})" if moved else "")
                        ) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if moved == 0:  # folders this run created, bottom-up, only while empty (another run may write there)
            for d in reversed(created):
                try:
                    d.rmdir()
                except OSError:
                    break


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# float32 bytes per content pixel at the peak of one forward pass of the shipped map model: an estimate, not a
# measurement (the channels of the encoder's and decoder's stages summed over their resolutions, x2 for a layer's input
# and output, rounded up to 160 channels at full resolution), so the check errs on the side of a smaller batch
BYTES_PER_PIXEL = 4 * 2 * 160


def available_memory() -> int:
    """Bytes of memory free for this process (Linux: MemAvailable; elsewhere: no limit known)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def check_size(size: int, model, name: str, batch_size: int, n_pairs: int) -> int:
    """--size against the model and the memory: one line naming the problem; returns the batch size that fits."""
    stride = model.size_multiple
    if size == SIZE:  # the size every model trained on: nothing to check (as before --size existed)
        return batch_size
    if not stride:
        raise UserError(f"--size {size}: model {name} codes the content as a vector (the paper's Table 1) and takes "
                        f"{SIZE} px images only; use a spatial-content model (e.g. --model pretrained) or --size {SIZE}")
    if stride and size % stride:
        raise UserError(f"--size {size}: model {name} needs a multiple of {stride} px (its content map's stride), e.g. "
                        f"{size - size % stride or stride} or {size - size % stride + stride}")
    free = available_memory()
    outputs = n_pairs * size * size * 3  # uint8, all kept until written
    per_image = size * size * BYTES_PER_PIXEL
    if outputs + per_image > free * 0.8:
        raise UserError(f"--size {size}: {n_pairs} outputs need ~{(outputs + per_image) / 2**30:.1f} GiB, more than the "
                        f"{free / 2**30:.1f} GiB free; use fewer images or a smaller --size")
    fits = max(1, int((free * 0.8 - outputs) // per_image))
    if fits < batch_size:
        print(f"[wae_lib] --size {size}: batch size lowered from {batch_size} to {fits} to fit the "
              f"{free / 2**30:.1f} GiB free", file=sys.stderr)
    return min(batch_size, fits)


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
ALPHA_MAX = 1.5
GRID_MAX = (64, 32)  # the grid shows at most this many contents (rows) and styles (columns); all pairs are files

HELP = "style-transfer images or folders of images with a trained model (default: the shipped one)"
DESCRIPTION = f"""\
Transfer the style of STYLE onto CONTENT with a style-transfer WAE (content latent of the content image,
style latent of the style image, one decoder pass).

Images: any size and any format PIL reads (EXIF orientation applied, alpha composited on white, greyscale
and CMYK converted to RGB). Each image is centre-cropped to a square and resized to the model's {SIZE}x{SIZE}
input (area filter when shrinking, bicubic when enlarging); outputs are {SIZE}x{SIZE}. With --size N a model whose
content is a spatial map (the shipped `pretrained`, Config.content_map) takes the content images at N x N and
writes N x N outputs; style images stay at {SIZE} px (the style latent was trained on {SIZE} px Gram matrices).

CONTENT and STYLE may each be an image file or a folder: its images, not recursive, sorted by name, by
extension ({" ".join(IMAGE_EXTS)}). Every content x style pair is transferred.

Output rule: if OUT ends in {" ".join(OUTPUT_FORMATS)} it is one image file (exactly one pair
needed). Otherwise OUT is a folder (created if needed) that receives OUT/<content-stem>__<style-stem>.png for
each pair plus OUT/{GRID_NAME}: styles across the top, contents down the left, transfers in the cells, cells
upscaled by --grid-scale (nearest neighbour), at most the first {GRID_MAX[0]} contents and {GRID_MAX[1]} styles (its caption
says so). Files of the same names are replaced; nothing is written when any input fails."""
EPILOG = f"""\
style source (exactly one): STYLE, --style PATH|random, or --style-mix.
--alpha: 0 gives the content image's own style latent (its reconstruction), 1 the style's. Values in
  (1, {ALPHA_MAX}] extrapolate past the style latent and exaggerate the style. Further out the latent leaves the
  region the decoder was trained on (shipped model: RMS of the style latent 1.4 at alpha 1, 2.2 at 1.5, 3.0 at
  2, against 1 for the prior) and outputs saturate with stripe artefacts; negative values move away from the
  style. Both are refused.
--preserve-color: luminance-only transfer after Gatys et al. (2017), "Controlling perceptual factors in
  neural style transfer": the lightness L of the output with the a, b channels of the content in CIELAB.

examples:
  python -m wae_lib transfer face.jpg starry_night.jpg -o out.png
  python -m wae_lib transfer faces/ styles/ -o out/ --alpha 0.7
  python -m wae_lib transfer faces/ styles/ -o out256/ --size 256
  python -m wae_lib transfer faces/ --style-mix candy.jpg:0.3,udnie.jpg:0.7 -o out/ --preserve-color
  python -m wae_lib transfer faces/ --style random --seed 3 -o out/ --model models/mixed_c128"""


# --------------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------------
def alpha_value(text: str) -> float:
    try:
        a = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= a <= ALPHA_MAX:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is outside [0, {ALPHA_MAX}] (see --help)")
    return a


SIZE_MAX = 1024  # --size: beyond this a 2-core machine takes minutes an image, and the model never saw such faces


def size_value(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (a side in pixels, e.g. 128)") from None
    if not 16 <= n <= SIZE_MAX:
        raise argparse.ArgumentTypeError(f"{n} is outside [16, {SIZE_MAX}] pixels")
    return n


def seed_value(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= seed < 2**63:  # torch.Generator.manual_seed's range
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 2^63)")
    return seed


def style_mix_value(text: str) -> list[tuple[Path, float]]:
    """``a.jpg:0.3,b.jpg:0.7`` -> [(a.jpg, 0.3), (b.jpg, 0.7)]; a missing weight is 1 (equal mix)."""
    items = []
    for part in text.split(","):
        if not part.strip():
            raise argparse.ArgumentTypeError(f"empty entry in {text!r} (expected PATH:WEIGHT,PATH:WEIGHT,...)")
        path, sep, weight = part.rpartition(":")
        if not sep:
            path, weight = part, "1"
        try:
            w = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight {weight!r} of {path!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise argparse.ArgumentTypeError(f"weight {weight} of {path!r} must be a finite number >= 0")
        items.append((Path(path), w))
    total = sum(w for _, w in items)
    if total <= 0:
        raise argparse.ArgumentTypeError(f"the weights of {text!r} sum to 0")
    if not math.isfinite(total):  # 1e308 + 1e308: normalising would give zero weights, a zero style latent
        raise argparse.ArgumentTypeError(f"the weights of {text!r} are too large to add up; scale them down")
    return items


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", metavar="CONTENT", help="content image file or folder of images")
    p.add_argument("style", metavar="STYLE", nargs="?", help="style image file or folder (omit with --style or "
                   "--style-mix)")
    p.add_argument("-o", "--out", metavar="OUT", required=True, help="output image file (ends in an image "
                   "extension) or folder (anything else); see the output rule above")
    p.add_argument("--style", dest="style_opt", metavar="PATH|random", help="the style as an option: a file, a "
                   "folder, or 'random' for a style latent drawn from the prior N(0, prior_sigma^2 I) (outputs "
                   "named random<seed>)")
    p.add_argument("--style-mix", metavar="A:WA,B:WB,...", type=style_mix_value, help="mix the style latents of "
                   "several images with these weights (normalised to sum 1; >= 0; a missing weight is 1)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of --style random (default 0)")
    p.add_argument("--alpha", type=alpha_value, default=1.0, help=f"style strength in [0, {ALPHA_MAX}]: 0 keeps "
                   "the content image's own style latent, 1 uses the style's (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the content image's colours "
                   "(luminance-only transfer, Gatys et al. 2017)")
    p.add_argument("--model", default="pretrained", help="'pretrained' (ours, shipped in wae_lib/weights, "
                   "default), 'pretrained-paper' (the paper's training, shipped), a training run folder holding "
                   "checkpoint.pt, or a .pt file written by wae_lib.model.pretrained.export_pretrained")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default auto: cuda when "
                   "available")
    p.add_argument("--batch-size", type=int, default=64, help="content images per forward pass (default 64; "
                   "lowered for large --size when memory is short)")
    p.add_argument("--size", type=size_value, default=SIZE, help=f"side of the content images and outputs in pixels "
                   f"(default {SIZE}, what every model trained on); other sizes need a spatial-content model "
                   f"(Config.content_map: the shipped `pretrained`) and a multiple of its stride (4 px for it)")
    p.add_argument("--grid-scale", type=int, choices=(1, 2, 3, 4), default=2, help="upscaling of the grid's "
                   "cells (default 2: 128 px cells)")
    p.add_argument("--no-grid", action="store_true", help=f"do not write OUT/{GRID_NAME}")


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------
@dataclass
class Style:
    name: str  # used in output file names
    image: object = None  # 3 x 64 x 64 tensor for the grid's header; None for random and mixed styles (a mix's
    #   header shows strips of its images)
    files: tuple = ()  # images whose style latents are mixed
    weights: tuple = ()
    image_batch: object = None  # len(files) x 3 x 64 x 64, decoded

    @property
    def is_mix(self) -> bool:  # --style-mix (even of one image): no single header image
        return self.image_batch is not None and self.image is None


def resolve_styles(args) -> list[Style]:
    """The style source named on the command line, as a list of Style (images decoded, files checked)."""
    given = [s for s in (args.style, args.style_opt, args.style_mix) if s is not None]
    if len(given) != 1:
        raise UserError("give the style exactly one way: STYLE, --style PATH|random, or --style-mix "
                         f"(got {len(given)})")
    if args.style_mix is not None:
        files = [p for p, _ in args.style_mix]
        for f in files:
            if not f.is_file():
                raise UserError(f"--style-mix image {f} {'is a folder' if f.is_dir() else 'does not exist'}")
        total = sum(w for _, w in args.style_mix)
        weights = tuple(w / total for _, w in args.style_mix)
        name = "mix_" + "_".join(f"{n}-{w:.2g}" for n, w in zip(unique_names(files), weights))
        return [Style(name, files=tuple(files), weights=weights)]
    if args.style_opt == "random":  # the keyword wins over a file named 'random' (write ./random for that)
        return [Style(f"random{args.seed}")]
    source = Path(args.style if args.style is not None else args.style_opt)
    if args.style == "random" and not source.exists():
        raise UserError("style random does not exist (for a style drawn from the prior, use --style random)")
    paths = list_images(source, "style")
    return [Style(n, files=(p,), weights=(1.0,)) for n, p in zip(unique_names(paths), paths)]


# --------------------------------------------------------------------------------------------------
# transfer and writing
# --------------------------------------------------------------------------------------------------
def style_latents(model, styles: list[Style], prior_seed: int, batch_size: int, device):
    """S x style_dim: each image's style latent (mean) encoded once, mixed by weight; random ones from the prior."""
    import torch

    images = [st.image_batch for st in styles if st.files]
    if images:  # every style image through the VGG16 and the style encoder once, in batches
        x = torch.cat(images)
        z_all = torch.cat([model.encode_style(x[i:i + batch_size].to(device))[0] for i in range(0, len(x), batch_size)])
        z_files = iter(z_all.split([len(im) for im in images]))
    out = []
    for st in styles:
        if not st.files:  # --style random: z ~ N(0, prior_sigma^2 I), seeded on the CPU (device independent)
            g = torch.Generator().manual_seed(prior_seed)
            z = torch.randn(1, model.config.style_dim, generator=g) * model.config.prior_sigma
            out.append(z.to(device))
            continue
        out.append(model.mix_styles(next(z_files), st.weights))
    return torch.cat(out)


def transfer_all(model, contents, z_styles, alpha: float, preserve: bool, batch_size: int, device, progress):
    """N x S x 64 x 64 x 3 uint8: content i with style latent j; content batches are encoded once for all styles."""
    import torch

    from ..eval.color import preserve_color
    from ..utils import to_uint8_hwc

    n, s, side = len(contents), len(z_styles), contents.shape[-1]
    out = torch.empty(n, s, side, side, 3, dtype=torch.uint8)
    for i in range(0, n, batch_size):
        x = contents[i:i + batch_size].to(device)
        z_c = model.encode_content(x)[0]
        z_own = model.encode_own_style(x)[0] if alpha != 1.0 else None
        for j in range(s):
            z_s = model.at_strength(z_own, z_styles[j:j + 1].expand(len(x), -1), alpha)
            y = model.decode(z_c, z_s).float()
            if not torch.isfinite(y).all():  # written as uint8 it would be a black image and exit status 0
                raise UserError("the model produced NaN or inf pixels (damaged weights?); nothing was written")
            if preserve:
                y = preserve_color(y, x)
            out[i:i + len(x), j] = torch.from_numpy(to_uint8_hwc(y))
            progress.update(len(x))
    return out


def style_header_cell(st: Style, side: int = SIZE):
    """1 x 3 x side x side: the style image; for a mix, vertical strips of its images, each as wide as its weight;
    for --style random, a blank cell (there is no image; the column label names it)."""
    import torch
    import torch.nn.functional as F

    from ..grids import blank_cells

    if side != SIZE:  # --size: the header shows the 64 px style image at the cells' size
        cell = style_header_cell(st, SIZE)
        return F.interpolate(cell, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)
    if st.image is not None:
        return st.image[None]
    if not st.is_mix:
        return blank_cells()
    cell, edges = st.image_batch[0].clone(), torch.tensor((0.0, *st.weights)).cumsum(0) * SIZE
    for img, a, b in zip(st.image_batch, edges[:-1].round().int(), edges[1:].round().int()):
        cell[:, :, a:b] = img[:, :, a:b]
    return cell[None]


def style_column_label(st: Style) -> str:
    """The grid shows ~10 characters of a label: a mix is "mix of N" (the caption lists its images and weights)."""
    return f"mix of {len(st.files)}" if st.is_mix else st.name


def grid_image(contents, styles: list[Style], outputs, content_names: list[str], caption: str, scale: int):
    """Header row of styles, a column of contents, transfers in the cells; cells upscaled ``scale`` x (nearest).
    At most GRID_MAX contents and styles (a 597 x 15 grid at 128 px would need half a gigabyte)."""
    import torch
    from PIL import Image

    from ..grids import blank_cells, image_grid

    n, s = min(len(contents), GRID_MAX[0]), min(len(styles), GRID_MAX[1])
    if (n, s) != (len(contents), len(styles)):
        caption += f" | grid: first {n} of {len(contents)} contents, {s} of {len(styles)} styles"

    def as_float(u8):  # N x H x W x 3 uint8 -> N x 3 x H x W in [0, 1]
        return u8.permute(0, 3, 1, 2).float() / 255

    for st in styles[:s]:
        if st.is_mix:
            caption += " | mix: " + " + ".join(f"{p.stem} {w:.2g}" for p, w in zip(st.files, st.weights))
    side = contents.shape[-1]
    corner = torch.nn.functional.interpolate(blank_cells(), size=(side, side)) if side != SIZE else blank_cells()
    header = torch.cat([corner] + [style_header_cell(st, side) for st in styles[:s]])
    rows = [header] + [torch.cat([contents[i:i + 1], as_float(outputs[i, :s])]) for i in range(n)]
    labels = ["style"] + [c if len(c) <= 16 else c[:15] + "~" for c in content_names[:n]]
    grid = image_grid(rows, row_labels=labels, col_labels=["content"] + [style_column_label(st) for st in styles[:s]],
                      caption=caption)
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST) if scale > 1 else grid


def run(args: argparse.Namespace) -> int:
    """The ``transfer`` command; raises UserError for problems the user can fix. Everything before the outputs are
    written happens in memory and the outputs are staged before they are moved into place: Ctrl-C or SIGTERM before
the move leaves nothing."""
    try:
        files, message = compute(args)
        write_all(files)  # stopped while moving outputs into place, it raises Interrupted saying what is there
    except KeyboardInterrupt:  # before that: its staged files are removed again
        raise Interrupted("interrupted; nothing was written") from None
    print(message)
    return 0


def compute(args: argparse.Namespace) -> tuple[list, str]:
    """Every output image in memory, and the line that says what was written."""
    if args.batch_size < 1:
        raise UserError(f"argument --batch-size: {args.batch_size} must be >= 1")
    content_paths = list_images(Path(args.content), "content")
    styles = resolve_styles(args)
    content_names = unique_names(content_paths)
    if not args.out.strip():  # Path("") is the working directory
        raise UserError("-o is empty: give an image file name or a folder")
    out = Path(args.out)
    style_files = [f for st in styles for f in st.files]
    single, out_paths = output_plan(out, content_names, styles, content_paths + style_files, args.no_grid)
    from ..model.run import resolve_model

    try:
        resolve_model(args.model)  # fail fast, before decoding every image
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None

    import torch

    from ..utils import resolve_device

    try:
        device = resolve_device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device}: CUDA is not available here; use --device cpu or auto") from None
    # decode every input before the model loads and before anything is written
    contents = torch.stack([load_image(p, "content", args.size) for p in content_paths])
    for st in styles:
        if st.files:
            st.image_batch = torch.stack([load_image(p, "--style-mix" if args.style_mix else "style") for p in st.files])
            st.image = st.image_batch[0] if len(st.files) == 1 and not args.style_mix else None
    model, model_label = load_model_spec(args.model, device)
    cfg = model.config
    args.batch_size = check_size(args.size, model, args.model, args.batch_size, len(contents) * len(styles))
    if cfg.profile in SMALL_PROFILES:  # e.g. the README's example with a `make reproduce` model
        print(f"[wae_lib] note: {args.model} is a {cfg.profile}-profile model ({cfg.steps} steps of {cfg.batch_size}): "
              f"it shows that the pipeline trains, not what the method does; the shipped models "
              f"({', '.join(SHIPPED_MODELS)}) are the ones to look at", file=sys.stderr)

    from tqdm import tqdm

    n_pairs = len(contents) * len(styles)
    with torch.inference_mode(), tqdm(total=n_pairs, desc="transfer", unit="img", file=sys.stderr,
                                      disable=None if n_pairs > 1 else True) as bar:
        z_styles = style_latents(model, styles, args.seed, args.batch_size, device)
        outputs = transfer_all(model, contents, z_styles, args.alpha, args.preserve_color, args.batch_size, device,
                               bar)
    flat = outputs.reshape(-1, *outputs.shape[2:]).numpy()
    files = list(zip(out_paths, flat))  # size x size x 3 uint8 arrays, made PIL images one at a time when written
    vgg = model.vgg_source.label
    if not single and not args.no_grid:
        caption = (f"model: {model_label} | VGG16: {vgg} | alpha={args.alpha:g}"
                   + (" | colours of the content kept" if args.preserve_color else ""))
        files.append((out / GRID_NAME, grid_image(contents, styles, outputs, content_names, caption,
                                                  args.grid_scale)))
    where = out if single else f"{out}{os.sep}"
    grid = "" if single or args.no_grid else f" + {GRID_NAME}"
    what = f"{n_pairs} image{'s' if n_pairs != 1 else ''} ({len(contents)} content x {len(styles)} style){grid}"
    return files, f"wrote {what} to {where} | model: {model_label} from {model_file(args.model)} | VGG16: {vgg}"
