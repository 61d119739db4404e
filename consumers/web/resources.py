"""The page's JavaScript and HTML template, shipped as package data beside this module.

Browser code lives in ``js/*.js`` rather than in Python strings so that it reads, diffs and
lints as JavaScript. Each file is the body of one Bokeh callback (CustomJS, CustomJSHover or
CustomJSTickFormatter); its first comment names the arguments Bokeh passes in. Files are read
through importlib.resources, so an installed wheel or container image finds them as the
source tree does (pyproject.toml lists them as package data).
"""

from __future__ import annotations

import functools
from importlib import resources

from jinja2 import Template


@functools.cache
def script(*names: str) -> str:
    """The code of ``js/NAME.js`` for each name, in order (a shared prefix first)."""
    return "".join(_text("js", f"{name}.js") for name in names)


def template() -> Template:
    """The page's HTML template: Bokeh's, on the plot's background."""
    page: Template = Template(_text("templates", "index.html"))
    return page


def _text(folder: str, name: str) -> str:
    return (resources.files(__package__) / folder / name).read_text(encoding="utf-8")
