"""The files of ``python -m wae_lib transfer`` (wae_lib.tools.transfer): the input images (listed, named, decoded
to the model's 64 x 64 input), the model a ``--model`` value names, where each output goes, and writing the outputs
as one step (staged beside them, then renamed into place with interrupts held back). Problems the user can fix
raise wae_lib.utils.UserError.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SHIPPED_MODELS
from ..data.decode import Rejected, model_input
from ..utils import Interrupted, UserError

if TYPE_CHECKING:
    from .transfer import Style

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
    """The model and a label for it: 'pretrained', a run folder, a run's checkpoint.pt, or an exported .pt."""
    from ..model.checkpoint import CHECKPOINT
    from ..model.pretrained import load_pretrained
    from ..model.run import load_model

    path = Path(spec)
    try:
        if spec in SHIPPED_MODELS:  # a shipped name is the shipped model, whatever the working directory holds
            model = load_model(spec, device=device)
            prov = getattr(model, "provenance", {}) or {}
            return model, f"{spec} ({prov.get('run', '?')}, step {prov.get('step', '?')})"
        if not path.exists():
            raise UserError(f"model {spec} does not exist (give {' or '.join(map(repr, SHIPPED_MODELS))}, a run folder "
                            f"holding {CHECKPOINT}, or a .pt file)")
        if path.is_dir():
            if not (path / CHECKPOINT).is_file():
                raise UserError(f"model {spec} is a folder without {CHECKPOINT} (not a training run folder)")
            model = load_model(path, device=device)
        elif path.name == CHECKPOINT:
            model = load_model(path.parent, device=device)
        else:
            model = load_pretrained(path, device=device)
    except UserError:
        raise
    except Exception as exc:  # unreadable, damaged or from an incompatible version: one line naming it
        raise UserError(f"model {spec} {model_problem(exc)}") from None
    info = getattr(model, "checkpoint_info", {}) or {}
    unfinished = "" if info.get("finished", True) else ", unfinished"
    return model, f"{spec} (step {info.get('step', '?')}{unfinished})"


def model_file(spec: str) -> str:
    """The file a --model value loaded: a shipped name's file in the package, a run folder's checkpoint."""
    from ..model.checkpoint import CHECKPOINT
    from ..model.pretrained import shipped_file

    if spec in SHIPPED_MODELS:
        return str(shipped_file(spec))
    path = Path(spec)
    return str(path / CHECKPOINT if path.is_dir() else path)


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
