"""reports/validation/index.html: the validation results as one self-contained page.

Great Expectations' Data Docs load their CSS and JavaScript from CDNs and read poorly offline. This
page is rendered from summary.json alone, with inline CSS and no external address: a headline
(passed or failed, how many expectations), the table counts, then per suite each expectation with
its result, column, what it fails on, the unexpected count, what was observed and examples. It
takes the place of the Data Docs' own index page and links the Data Docs pages beside it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.data.validation import SUMMARY_FILE
from pipeline.io import read_json

PAGE = "index.html"
COUNT_LABELS = {"n_ratings": "ratings", "n_users": "users", "n_rated_movies": "rated movies", "n_movies": "movies"}
DATA_DOCS_GLOBS = ("expectations/*.html", "validations/**/*.html")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #1f2328; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.verdict { display: inline-block; padding: 0.3em 0.8em; border-radius: 0.3em; color: #fff; font-weight: 600; }
.passed { background: #1a7f37; } .failed { background: #cf222e; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; }
th, td { border: 1px solid #d0d7de; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.problem { min-width: 14em; }
tr.fail td { background: #ffebe9; }
.badge { font-weight: 700; white-space: nowrap; }
.badge.pass { color: #1a7f37; } .badge.fail { color: #cf222e; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; }
footer { color: #57606a; font-size: 0.9em; }
"""


def _text(value: Any) -> str:
    """A summary value as escaped text: strings as they are, integers with thousands separators,
    other values as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return html.escape(shown)


def _count(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def _row(result: Mapping[str, Any]) -> str:
    passed = bool(result.get("success"))
    badge = '<span class="badge pass">&#10003; pass</span>' if passed else '<span class="badge fail">&#10007; FAIL</span>'
    examples = ", ".join(_text(e) for e in result.get("examples") or [])
    cells = [
        badge,
        # long names may wrap after an underscore instead of widening the table
        f"<code>{_text(result.get('expectation')).replace('_', '_<wbr>')}</code>",
        _text(result.get("column")),
        f'<td class="problem">{_text(result.get("problem"))}</td>',
        f'<td class="number">{_count(result.get("unexpected_count"))}</td>',
        _text(result.get("observed")),
        examples,
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
    return f'<tr class="{"pass" if passed else "fail"}">{tds}</tr>'


def _suite(name: str, suite: Mapping[str, Any], file: str | None) -> str:
    results = suite.get("results", [])
    # failures first, so a failed run shows what went wrong at the top of each suite
    ordered = sorted(results, key=lambda r: bool(r.get("success")))
    where = f" (<code>{html.escape(file)}</code>)" if file else ""
    header = "".join(f"<th>{h}</th>" for h in ("result", "expectation", "column", "fails on", "unexpected", "observed", "examples"))
    return (
        f"<h2>{html.escape(name)}{where}: {suite.get('evaluated', len(results)) - suite.get('failed', 0)} of "
        f"{suite.get('evaluated', len(results))} passed</h2>\n"
        f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n" + "\n".join(_row(r) for r in ordered) + "\n</tbody>\n</table>"
    )


def render(summary: Mapping[str, Any], files: Mapping[str, str] | None = None, links: Sequence[str] = ()) -> str:
    """The page for a summary.json mapping; `files` names the file each suite checked, `links` are
    relative paths of the Data Docs pages to list at the bottom."""
    files = files or {}
    passed = bool(summary.get("success"))
    evaluated, failed = summary.get("evaluated", 0), summary.get("failed", 0)
    verdict = "passed" if passed else "failed"
    counts = summary.get("counts", {})
    count_rows = "".join(
        f'<tr><th>{html.escape(COUNT_LABELS.get(k, k))}</th><td class="number">{_count(v)}</td></tr>' for k, v in counts.items()
    )
    suites = "\n".join(_suite(name, suite, files.get(name)) for name, suite in summary.get("suites", {}).items())
    listed = "".join(f'<li><a href="{html.escape(link)}">{html.escape(link)}</a></li>' for link in links)
    docs = f"<p>Great Expectations Data Docs (their styles load from the internet):</p><ul>{listed}</ul>" if links else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data validation: {verdict}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Data validation <span class="verdict {verdict}">{verdict.upper() if not passed else verdict}</span></h1>
<p>{evaluated - failed} of {evaluated} expectations passed, {failed} failed.</p>
<table>{count_rows}</table>
{suites}
<footer>Rendered from summary.json by the validate stage.{docs}</footer>
</body>
</html>
"""


def write_page(folder: str | Path, files: Mapping[str, str] | None = None) -> Path:
    """Render `folder`/summary.json into `folder`/index.html, linking the Data Docs pages found there."""
    folder = Path(folder)
    summary = read_json(folder / SUMMARY_FILE)
    links = sorted({p.relative_to(folder).as_posix() for pattern in DATA_DOCS_GLOBS for p in folder.glob(pattern)})
    page = folder / PAGE
    page.write_text(render(summary, files, links), encoding="utf-8")
    return page
