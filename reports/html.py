"""Render the report as ONE self-contained HTML file: inline CSS, PNGs as data: URIs, no external URL."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_html(frame: pd.DataFrame, extra_class: str = "") -> Markup:
    if not len(frame):
        return Markup("<p class='muted'>(none)</p>")
    classes = ["data", extra_class] if extra_class else ["data"]
    return Markup(frame.to_html(index=False, border=0, classes=classes, escape=True, na_rep="-"))


def strong(text: str) -> Markup:
    """Escape, then turn the recommendation's **name** into <strong>name</strong>."""
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(escape(text))))


def code(text: str) -> Markup:
    """Escape, then turn `name` into <code>name</code> (the notes are written in Markdown too)."""
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", str(escape(text))))


def render(context: dict[str, Any]) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(data_uri=data_uri, table=table_html, strong=strong, code=code)
    return environment.get_template("report.html.j2").render(**context)
