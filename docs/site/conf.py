"""Sphinx configuration of the course website (built by ``docs/site/build.py``).

Why Sphinx + myst-nb + sphinx-book-theme: it is the stack Jupyter Book 1 was built on, each
part well kept and installed from PyPI, and it builds fully offline: myst-nb renders the
committed notebooks with their stored outputs (``nb_execution_mode = "off"``), the book theme
gives the syllabus sidebar and a search box backed by Sphinx's own client-side index, and
autodoc/autosummary document the package from its docstrings. Jupyter Book 2 (mystmd) was
ruled out because it downloads its theme at build time; Sphinx's default MathJax comes from a
CDN, so MathJax 2.7 is served from the ``jupyter-server-mathjax`` package (the Jupyter
project's offline MathJax) and copied into the site: nothing is fetched at build or view time.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jupyter_server_mathjax

project = "mmcourse"
author = "the mmcourse authors"
copyright = "the mmcourse authors, MIT licence"
root_doc = "index"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.mathjax"]
templates_path = [str(Path(__file__).parent / "templates")]
exclude_patterns = ["**.ipynb_checkpoints"]

# --- notebooks: never re-executed, no widget JavaScript from a CDN --------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}                     # explorers need a kernel: the site shows screenshots
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_update_mathjax = False               # its settings are for MathJax 3; see mathjax2_config

# --- maths: MathJax 2.7 from the jupyter-server-mathjax package ------------------------------
# The package ships MathJax's combined TeX configuration with the HTML-CSS renderer and the
# STIX-Web fonts (the set-up of Jupyter's classic notebook); that is what is copied into the site.
MATHJAX_DIR = Path(jupyter_server_mathjax.__file__).parent / "static"
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": True},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    "MathMenu": {"showRenderer": False, "showLocale": False},
    "messageStyle": "none",
}
# Left out of the site: the SVG renderer's fonts (the package lacks that renderer) and the
# translations of the maths menu (it offers no other language).
MATHJAX_UNUSED = shutil.ignore_patterns("SVG", "localization")

# --- package reference: autosummary walks whatever modules mmcourse has ---------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
add_module_names = False

# --- theme ------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_static_path = [str(Path(__file__).parent / "static")]
html_css_files = ["site.css"]
html_title = "mmcourse"
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None


# The package's docstrings are plain text with Unicode maths, e.g.
#
#     Attention(Q, K, V) = softmax(QK^T / sqrt(d_k)) V,
#
# an indented block after a paragraph. Read as reStructuredText it would be a block quote whose
# text is markup (``|x|`` a substitution, ``*`` emphasis, deeper indents an error); shown as a
# literal block, each formula renders exactly as written, alignment included. A ``|`` elsewhere
# (outside ``inline literals``) is a plain bar too, and a heading of several lines directly over
# an indented block is read as one definition-list term (reST wants the term on one line).
LIST_ITEM = re.compile(r"\s*([-*+•]|\d+[.)])\s")
INLINE_LITERAL = re.compile(r"(``.+?``)")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def plain_text_formulas(app, what, name, obj, options, lines: list[str]) -> None:
    out, literal_indent, i = [], None, 0    # literal_indent: that of the paragraph opening a literal
    while i < len(lines):
        line, indent = lines[i], indent_of(lines[i])
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                out.append(line)
                i += 1
                continue
            literal_indent = None
        starts = not out or not out[-1].strip() or indent_of(out[-1]) > indent
        if line.strip() and starts and not LIST_ITEM.match(line):
            end = i                          # a paragraph of several lines over an indented block
            while end + 1 < len(lines) and lines[end + 1].strip() and indent_of(lines[end + 1]) == indent:
                end += 1
            below = lines[end + 1] if end + 1 < len(lines) else ""
            if end > i and below.strip() and indent_of(below) > indent:
                line, i = " " * indent + " ".join(part.strip() for part in lines[i:end + 1]), end
        if not line.rstrip().endswith("::"):
            line = "".join(part if part.startswith("``") else part.replace("|", "\\|")
                           for part in INLINE_LITERAL.split(line))
        blank = lines[i + 1] if i + 1 < len(lines) else "x"
        block = lines[i + 2] if i + 2 < len(lines) else ""
        opens_block = (line.strip() and not blank.strip() and block.strip() and indent_of(block) > indent
                       and not LIST_ITEM.match(block) and not LIST_ITEM.match(line)
                       and not line.lstrip().startswith((".. ", ":")))
        if opens_block and not line.rstrip().endswith("::"):
            line = line.rstrip() + (":" if line.rstrip().endswith(":") else " ::")
        if line.rstrip().endswith("::"):
            literal_indent = indent
        out.append(line)
        i += 1
    lines[:] = out


def copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(MATHJAX_DIR, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True,
                        ignore=MATHJAX_UNUSED)


def setup(app):
    app.connect("autodoc-process-docstring", plain_text_formulas)
    app.connect("build-finished", copy_mathjax)
