"""The README and the docs pages hold together as plain Markdown: every relative link and image exists, every anchor
names a heading (the same on a code host and in the MkDocs site), every figure in ``docs/img`` is shown, and every
page is in the site's nav. ``mkdocs build --strict`` (CI) checks the site itself."""

import glob
import os
import re
import unicodedata

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(DOCS, "*.md")))]
LINK = re.compile(r"!?\[(?:[^\]]|\\\])*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _headings(path: str) -> list[str]:
    """The headings of a page, as the text a reader sees (inline code marks removed)."""
    text = re.sub(r"^```.*?^```", "", open(path).read(), flags=re.S | re.M)
    return [h.replace("`", "").strip() for h in re.findall(r"^#{1,6} (.+)$", text, re.M)]


def _mkdocs_slug(heading: str) -> str:
    """Python-Markdown's ``toc`` slug, as MkDocs builds it."""
    value = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _host_slug(heading: str) -> str:
    """A code host's slug (GitHub's): lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _links(path: str) -> list[str]:
    return LINK.findall(_prose(open(path).read()))


def test_every_relative_link_and_image_exists_and_every_anchor_names_a_heading():
    broken = []
    for page in PAGES:
        for target in _links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
            where = f"{os.path.relpath(page, ROOT)}: {target}"
            if not os.path.exists(dest):
                broken.append(f"{where} (no such file)")
            elif anchor:
                headings = _headings(dest)
                if anchor not in {_mkdocs_slug(h) for h in headings}:
                    broken.append(f"{where} (no such heading in the site)")
                elif anchor not in {_host_slug(h) for h in headings}:
                    broken.append(f"{where} (the heading's anchor differs on a code host: keep linked headings plain)")
    assert not broken, "\n".join(broken)


def test_links_within_the_docs_stay_inside_them():
    # MkDocs sees only docs/: a page linking to the README or to source files would break the site's build.
    outside = [f"{os.path.relpath(page, ROOT)}: {t}" for page in PAGES[1:] for t in _links(page)
               if not re.match(r"[a-z][a-z0-9+.-]*:", t) and t.split("#")[0]
               and not os.path.normpath(os.path.join(DOCS, t.split("#")[0])).startswith(DOCS + os.sep)]
    assert not outside, outside


def test_every_figure_is_shown_on_a_page():
    shown = {os.path.normpath(os.path.join(os.path.dirname(p), t)) for p in PAGES for t in _links(p)}
    figures = glob.glob(os.path.join(DOCS, "img", "*"))
    assert figures
    unused = [os.path.relpath(f, ROOT) for f in figures if os.path.normpath(f) not in shown]
    assert not unused, unused


def test_every_page_is_in_the_nav_and_the_versions_are_pinned():
    config = yaml.safe_load(open(os.path.join(ROOT, "mkdocs.yml")))

    def pages(nav):
        for item in nav:
            for value in (item.values() if isinstance(item, dict) else [item]):
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(config["nav"]))
    on_disk = {os.path.relpath(p, DOCS) for p in PAGES[1:]}
    assert listed == on_disk, (on_disk - listed, listed - on_disk)
    pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert re.search(r'"mkdocs==[0-9.]+"', pyproject) and re.search(r'"mkdocs-material==[0-9.]+"', pyproject)
