"""Committed experiments' ``README.md`` rendered to HTML, their figures copied beside the page.

Relative images and links of a README are resolved against its folder: a file that exists is
copied into the site at the same relative path (so the page's own links keep working from
``file://``), unless it is larger than ``max_copy_mb``, in which case the link points back at the
original, relative to the page. A folder link points at the original folder. A link to nothing is
rendered as plain text, so the site never holds a dead link.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Experiment:
    """One experiment folder with a README."""

    name: str
    folder: Path
    title: str


def find_experiments(results_dir: Path) -> list[Experiment]:
    """Every ``<results_dir>/experiments/<name>/README.md``; the title is its first heading."""
    found = []
    for readme in sorted(results_dir.glob("experiments/*/README.md")):
        heading = next((ln.lstrip("#").strip() for ln in readme.read_text().splitlines() if ln.startswith("#")),
                       readme.parent.name)
        found.append(Experiment(readme.parent.name, readme.parent, heading))
    return found


def _is_relative(url: str) -> bool:
    parts = urlsplit(url)
    return bool(url) and not parts.scheme and not parts.netloc and not url.startswith(("#", "/"))


def _place(url: str, source: Path, page_dir: Path, max_copy_mb: float) -> str | None:
    """The URL to use in the page for ``url`` (relative to ``source``); ``None`` when it names nothing."""
    parts = urlsplit(url)
    target = (source / unquote(parts.path)).resolve()
    suffix = f"#{parts.fragment}" if parts.fragment else ""
    if not target.exists():
        return None
    inside = source.resolve() in target.parents
    if target.is_file() and inside and target.stat().st_size <= max_copy_mb * 2**20:
        dest = page_dir / target.relative_to(source.resolve())
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, dest)
        return dest.relative_to(page_dir).as_posix() + suffix
    return Path(os.path.relpath(target, page_dir.resolve())).as_posix() + suffix


def _rewrite(tokens: list[Token], source: Path, page_dir: Path, max_copy_mb: float) -> None:
    for token in tokens:
        children = token.children or []
        for i, child in enumerate(children):
            attr = "src" if child.type == "image" else "href" if child.type == "link_open" else None
            url = str(child.attrGet(attr)) if attr and child.attrGet(attr) is not None else ""
            if not attr or not _is_relative(url):
                continue
            placed = _place(url, source, page_dir, max_copy_mb)
            if placed is not None:
                child.attrSet(attr, placed)
            elif child.type == "image":
                log.warning("%s: image %s not found; shown as its alt text", source / "README.md", url)
                children[i] = Token("text", "", 0, content=f"[missing figure: {child.content or url}]")
            else:
                log.warning("%s: link %s not found; shown as plain text", source / "README.md", url)
                close = next(j for j in range(i + 1, len(children)) if children[j].type == "link_close")
                children[i] = Token("text", "", 0, content="")
                children[close] = Token("text", "", 0, content="")


def render_readme(experiment: Experiment, page_dir: Path, max_copy_mb: float) -> str:
    """The README of ``experiment`` as HTML, with its assets placed for a page in ``page_dir``."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse((experiment.folder / "README.md").read_text())
    _rewrite(tokens, experiment.folder, page_dir, max_copy_mb)
    return md.renderer.render(tokens, md.options, {})
