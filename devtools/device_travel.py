"""What travels to a lent device, and making it fit (issue 17's prepared GPU call).

    python -m devtools device travel                 # what the next call would send, and whether it fits
    python -m devtools device travel --offload       # move the tracked files the device never reads out of the tree
    python -m devtools device travel --restore       # ... and back, after the call

The device tool sends a copy of the working tree (tracked files and untracked ones git does not ignore) plus the
carried paths, 64 MiB in all (devtools.device_bundle.CARRY_LIMIT). The tracked tree alone outgrew that: the two shipped
models are ~21 MB each and the committed figures ~26 MB, none of which a device stage reads (it trains, and notebooks
03-05 read only the bundle's sets and the runs it trains). ``--offload`` untracks those folders (OFFLOAD) in the
index and ignores them in ``.git/info/exclude``, the files staying in place; ``--restore`` undoes both. Never commit
between the two: the index then records the folders as deleted (``git status`` shows it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from wae_lib.utils import UserError

OFFLOAD = ("wae_lib/weights", "reports")  # tracked folders no device stage reads: the shipped weights, the figures
MARK = "# wae_lib device travel --offload:"  # the comment line above the exclude lines offload writes (git
#   has no end-of-line comments in ignore files); restore removes it and them


class TravelError(UserError, RuntimeError):
    """The tree cannot be measured, offloaded or restored; the message names the file."""


def traveling_files(repo: Path) -> list[Path]:
    """The files the device tool copies: tracked and untracked-not-ignored ones that exist in the working tree."""
    out = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    names = sorted({n for n in out.split("\0") if n})
    return [repo / n for n in names if (repo / n).is_file()]


def travel_size(repo: Path, carried: list[Path]) -> tuple[int, list[tuple[int, str]]]:
    """(bytes that would travel, the ten largest files with their sizes): the working tree plus ``carried``."""
    files = traveling_files(repo) + [f for c in carried for f in ([c] if c.is_file() else sorted(c.rglob("*")))
                                     if f.is_file()]
    sizes = sorted(((f.stat().st_size, str(f.relative_to(repo))) for f in files), reverse=True)
    return sum(s for s, _ in sizes), sizes[:10]


def _git(repo: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise TravelError(f"{repo}: git {' '.join(args)} failed ({getattr(exc, 'stderr', '') or exc})") from None


def _exclude_file(repo: Path) -> Path:
    return repo / _git(repo, "rev-parse", "--git-path", "info/exclude").strip()


def offload(repo: Path) -> list[str]:
    """Keep OFFLOAD from travelling: untrack it in the index (`git rm --cached`: the files stay where they are) and
    ignore it in .git/info/exclude (marked lines), as the README's manual recipe for the first device calls did."""
    exclude = _exclude_file(repo)
    text = exclude.read_text() if exclude.is_file() else ""
    if MARK in text:
        raise TravelError(f"{exclude} holds {MARK!r} lines: an earlier offload was not restored; run --restore first")
    moved = [n for n in _git(repo, "ls-files", "-z", "--", *OFFLOAD).split("\0") if n]
    exclude.parent.mkdir(parents=True, exist_ok=True)
    block = f"{MARK} {len(OFFLOAD)} lines\n" + "".join(f"/{top}/\n" for top in OFFLOAD)
    exclude.write_text(text + ("" if not text or text.endswith("\n") else "\n") + block)
    if moved:
        _git(repo, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *OFFLOAD)
    return moved


def restore(repo: Path) -> list[str]:
    """Undo :func:`offload`: the index entries of OFFLOAD back from HEAD (`git reset`), the marked lines gone. The
    files never moved, so uncommitted edits to them are kept (their staged state, if any, is not)."""
    exclude = _exclude_file(repo)
    text = exclude.read_text() if exclude.is_file() else ""
    if MARK not in text:
        raise TravelError(f"{exclude} holds no {MARK!r} lines: nothing was offloaded")
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(MARK))
    exclude.write_text("".join(lines[:start] + lines[start + 1 + int(lines[start].split()[-2]):]))
    _git(repo, "reset", "-q", "--", *OFFLOAD)
    return [n for n in _git(repo, "ls-files", "-z", "--", *OFFLOAD).split("\0") if n]
