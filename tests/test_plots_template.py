"""The page `dvc plots show` fills (plots/template/index.html): Vega inlined, pinned, offline."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from configobj import ConfigObj
from dvc_render import render_html
from dvc_render.vega import VegaRenderer

from tests.browser import count_near, external_resources, screenshot, share_not_white
from tests.isolation import REPO

TEMPLATE = REPO / "plots" / "template" / "index.html"
MANIFEST = REPO / "plots" / "template" / "vendor.json"
DVC_PURPLE = (0x94, 0x5D, 0xD6)  # the colour DVC gives the first revision's line
INLINE = re.compile(
    r"<!-- (?P<name>[\w-]+) (?P<version>[\d.]+) \([^)]*\), license: LICENSE-[\w-]+ -->\n    <script>\n(?P<code>.*?)\n    </script>", re.S
)


def test_dvc_uses_the_template_by_default():
    configured = ConfigObj(str(REPO / ".dvc" / "config"))["plots"]["html_template"]
    assert (REPO / ".dvc" / configured).resolve() == TEMPLATE


def test_template_loads_nothing_from_the_network():
    page = TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN <script src=...> tags
    assert external_resources(page) == []
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # the page without the inlined code
    assert "src=" not in markup and "href=" not in markup


def test_inlined_libraries_are_the_pinned_builds_dvc_asks_for():
    manifest = {entry["name"]: entry for entry in json.loads(MANIFEST.read_text())}
    wanted = dict(re.findall(r"npm/([a-z-]+)@([0-9.]+)", VegaRenderer.SCRIPTS))
    assert {name: entry["version"] for name, entry in manifest.items()} == wanted
    inlined = list(INLINE.finditer(TEMPLATE.read_text(encoding="utf-8")))
    assert [m["name"] for m in inlined] == ["vega", "vega-lite", "vega-embed"]  # dependencies first
    for match in inlined:
        entry = manifest[match["name"]]
        assert match["version"] == entry["version"]
        assert hashlib.sha256(match["code"].encode("utf-8")).hexdigest() == entry["sha256"], match["name"]
        assert entry["npm_integrity"].startswith("sha512-")
        assert "Redistribution and use in source and binary forms" in (TEMPLATE.parent / f"LICENSE-{match['name']}").read_text()


def test_a_plot_rendered_with_the_template_draws_offline_in_a_real_browser(tmp_path: Path):
    points = [{"epoch": e, "loss": 1.0 / (e + 1), "rev": "workspace", "filename": "loss.csv", "field": "loss"} for e in range(20)]
    renderer = VegaRenderer(points, "loss.csv", x="epoch", y="loss", title="loss per epoch")
    page = Path(render_html([renderer], tmp_path / "out" / "index.html", html_template=str(TEMPLATE)))
    html = page.read_text(encoding="utf-8")
    assert external_resources(html) == [] and "vegaEmbed(" in html
    pixels = screenshot(page, tmp_path)
    assert share_not_white(pixels) > 0.01  # axes, labels and the line
    assert count_near(pixels, DVC_PURPLE) > 150  # the line itself
