"""``crmsync report``: one self-contained HTML file built from the store for the people
who act on it: the response queue, influencers, ambassadors and detractors with what they
said lately, sentiment over time per source and brand, listening volume per brand term.

:mod:`.data` reads the store into plain data; :mod:`.render` turns it into HTML with
Jinja2 (autoescaped) and matplotlib charts inlined as SVG: no script, no network when the
file is opened.
"""

from .data import report_data
from .render import render_html

__all__ = ["render_html", "report_data"]
