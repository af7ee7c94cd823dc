"""One self-contained HTML page: inline CSS, plotly.js inline (works offline from a file:// URL), images as data URIs."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.atomic import atomic_write_text

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#b8c2d0;font-size:13px}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:12px 16px;margin-bottom:16px}
section h2{font-size:16px;margin:0 0 10px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #e4e8ee;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}
.note{color:#6a7383;font-size:12px}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}
.thumb{width:260px;font-size:12px;cursor:pointer}.thumb img{width:100%;border:1px solid #ccd}
.panel{margin-bottom:12px;font-size:12px}.panel img{max-width:100%;border:1px solid #ccd}
.flag{display:inline-block;background:#fde2e1;color:#9b1c1c;border-radius:3px;padding:0 4px;margin:2px 2px 0 0}
pre{background:#f0f2f5;padding:8px;overflow:auto;font-size:12px;max-height:420px}
video{max-width:100%;background:#000}
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
"""


@dataclass
class Page:
    """Sections in order; `render` makes the whole document."""

    title: str
    subtitle: str = ""
    sections: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)

    def add(self, heading: str, body: str, section_id: str | None = None) -> None:
        ident = f' id="{escape(section_id)}"' if section_id else ""
        self.sections.append(f"<section{ident}><h2>{escape(heading)}</h2>{body}</section>")

    def render(self) -> str:
        from plotly.offline import get_plotlyjs

        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(self.title)}</title>"
                f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
                f"<header><h1>{escape(self.title)}</h1><p>{escape(self.subtitle)}</p></header>"
                f"<main>{''.join(self.sections)}</main>"
                + "".join(f"<script>{script}</script>" for script in self.scripts)
                + "</body></html>")

    def write(self, path: Path) -> Path:
        atomic_write_text(path, self.render())
        return path


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def figure_div(fig: Any, div_id: str, height: int | None = None) -> str:
    """A plotly figure as a <div> (plotly.js comes once, in the page head)."""
    if height is not None:
        fig.update_layout(height=height)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image_uri(rgb: np.ndarray, max_width: int | None = None, quality: int = 85) -> str:
    """An H×W×3 uint8 RGB image as a JPEG data URI, shrunk to `max_width` when wider."""
    import cv2

    if max_width is not None and rgb.shape[1] > max_width:
        height = max(1, round(rgb.shape[0] * max_width / rgb.shape[1]))
        rgb = cv2.resize(rgb, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data_uri(encoded.tobytes(), "image/jpeg")


def file_uri(path: Path, mime: str) -> str:
    return data_uri(path.read_bytes(), mime)


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def pre(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def note(text: str) -> str:
    return f"<p class=\"note\">{escape(text)}</p>"
