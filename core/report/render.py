"""The report as one HTML file: Jinja2 (autoescaped: what people wrote is text, never
markup) and matplotlib charts inlined as SVG.

matplotlib because its SVG needs no script and no network to show, it is the best-kept
plotting library in Python, and it draws a few hundred weekly points in milliseconds;
Jinja2 because it escapes by default. Both are the ``report`` extra.
"""

from __future__ import annotations

import io
from typing import Any

PALETTE = ["#1b6ca8", "#d1495b", "#2e8b57", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#c17c74"]


def _chart(series: dict[str, list[Any]], *, title: str, ylabel: str, value: int = 1) -> str | None:
    """An SVG line chart of ``series`` (name -> [(week, value, ...)]), or None when empty."""
    if not any(series.values()):
        return None
    import matplotlib

    matplotlib.use("svg")  # no display, no GUI toolkit
    import matplotlib.pyplot as plt

    weeks = sorted({point[0] for points in series.values() for point in points})
    index = {w: i for i, w in enumerate(weeks)}
    fig, ax = plt.subplots(figsize=(8.5, 3.2), dpi=96)
    for n, (name, points) in enumerate(sorted(series.items())):
        xs = [index[p[0]] for p in points]
        ys = [p[value] for p in points]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.6, color=PALETTE[n % len(PALETTE)], label=name)
    step = max(1, len(weeks) // 10)
    ax.set_xticks(range(0, len(weeks), step), [weeks[i] for i in range(0, len(weeks), step)], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # without the XML declaration and doctype: inline in HTML


def render_html(data: dict[str, Any]) -> str:
    """The report's HTML (one file: styles and charts inline)."""
    try:
        import jinja2
    except ModuleNotFoundError as exc:
        msg = f"crmsync report needs {exc.name}: pip install 'crmsync[report]'"
        raise RuntimeError(msg) from None
    env = jinja2.Environment(loader=jinja2.PackageLoader("crmsync.report", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    charts = {
        "sentiment_by_source": _chart(data["sentiment_by_source"], title="Mean sentiment per week, by source", ylabel="sentiment (-1..1)"),
        "sentiment_by_brand": _chart(data["sentiment_by_brand"], title="Mean sentiment per week, by brand", ylabel="sentiment (-1..1)"),
        "volume_by_term": _chart({term: [(w, n) for w, n in weeks] for term, weeks in data["volume_by_term"].items()}, title="Mentions per week, by brand term", ylabel="interactions"),
    }
    return env.get_template("report.html.j2").render(data=data, charts=charts)


__all__ = ["render_html"]
