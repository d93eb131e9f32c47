"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``): keep the docs readable on GitHub and on the site.

- A link from a page to a repository file outside ``docs/`` (``../examples/openai_rft.py``)
  works on GitHub but not on the site; it is rewritten to the file's page at ``repo_url``.
  A link to a path that does not exist is left alone, so ``--strict`` still reports it.
- A ``nav`` entry whose page is not written yet is left out (logged), so a page another
  engineer is still writing never breaks the strict build; it appears once it exists.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.rlft")

# [text](target) or [text](target "title"); a target never holds spaces or parentheses here.
_LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?(?:\s+\"[^\"]*\")?\))")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _prune(nav: Any, docs_dir: Path) -> Any:
    """``nav`` without the entries whose markdown file does not exist."""
    if isinstance(nav, list):
        kept = [_prune(item, docs_dir) for item in nav]
        return [item for item in kept if item is not None]
    if isinstance(nav, dict):
        ((title, value),) = nav.items()
        pruned = _prune(value, docs_dir)
        return None if pruned in (None, []) else {title: pruned}
    page = isinstance(nav, str) and nav.endswith(".md") and "://" not in nav
    if page and not (docs_dir / nav).is_file():
        log.info("nav: %s is not written yet; left out of this build", nav)
        return None
    return nav


def on_config(config: Any) -> Any:
    if config.nav:
        config.nav = _prune(config.nav, Path(config.docs_dir))
    return config


def _rewrite(target: str, page_dir: Path, docs_dir: Path, root: Path, repo_url: str) -> str:
    if "://" in target or target.startswith(("mailto:", "/")):
        return target
    resolved = (page_dir / target).resolve()
    if resolved.is_relative_to(docs_dir) or not resolved.is_relative_to(root):
        return target  # a page of the site (mkdocs checks it), or outside the repository
    if not resolved.exists():
        return target  # broken: leave it for mkdocs to report
    kind = "tree" if resolved.is_dir() else "blob"
    return f"{repo_url.rstrip('/')}/{kind}/main/{resolved.relative_to(root).as_posix()}"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo_url = config.repo_url
    if not repo_url:
        return markdown
    docs_dir = Path(config.docs_dir).resolve()
    root = Path(config.config_file_path).resolve().parent
    page_dir = (docs_dir / page.file.src_path).parent
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = _LINK.sub(
                lambda m: (
                    m.group(1)
                    + _rewrite(m.group(2), page_dir, docs_dir, root, repo_url)
                    + m.group(3)
                ),
                line,
            )
        lines.append(line)
    return "".join(lines)
