"""Every relative link in every committed markdown file leads to a committed file (issue 32): the README is a
front page that sends readers into docs/ and reports/, so a moved or uncommitted target is a broken manual."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def tracked(pattern: str = "") -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", *([pattern] if pattern else [])], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed files cannot be listed")
    return out.splitlines()


def relative_links(text: str) -> list[str]:
    """The link targets in ``text`` that point into the repository (not URLs, not anchors of the same page), outside
    code fences and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_link_finder_sees_links_and_skips_code():
    text = "see [a](docs/a.md#x) and ![f](f.png)\n```\n[no](x.md)\n```\n`[no](y.md)` [web](https://e.org) [h](#top)"
    assert relative_links(text) == ["docs/a.md#x", "f.png"]


def test_every_relative_link_in_the_committed_markdown_resolves_to_a_committed_path():
    files = set(tracked())
    folders = {str(parent) for f in files for parent in Path(f).parents}
    broken = []
    for md in tracked("*.md"):
        base = (ROOT / md).parent
        for target in relative_links((ROOT / md).read_text(encoding="utf-8")):
            path = unquote(target.split("#", 1)[0])
            if not path:
                continue
            resolved = (base / path).resolve()
            try:
                rel = str(resolved.relative_to(ROOT))
            except ValueError:
                broken.append(f"{md}: {target} (outside the repository)")
                continue
            if rel not in files and rel not in folders:
                broken.append(f"{md}: {target}")
    assert not broken, "links to files that are not committed:\n" + "\n".join(broken)
