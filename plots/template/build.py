"""Rebuild index.html, the page `dvc plots show` fills (.dvc/config: plots.html_template), offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so it stays blank without a
network. This one carries the three libraries inline, at the versions DVC's renderer asks for.
It has no `{scripts}` placeholder, so DVC adds no CDN tags to it.

Run `make vega-template` (needs npm and the npm registry) after upgrading DVC: it reads the
versions from the installed dvc_render, fetches each package with `npm pack`, checks the tarball
against the registry's integrity hash, copies the package's LICENSE beside the page, inlines its
minified build and records name, version, integrity and sha256 in vendor.json.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE / "index.html"
MANIFEST = HERE / "vendor.json"
# what each package's CDN address serves (its package.json "jsdelivr" field)
BUILDS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js", "vega-embed": "build/vega-embed.min.js"}
PLACEHOLDERS = ("{refresh_tag}", "{plot_divs}", "{scripts}")

PAGE_HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite and Vega-Embed are inlined below (versions and hashes: vendor.json): no network needed. -->
"""
PAGE_TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def dvc_versions() -> dict[str, str]:
    """{package: version} of the CDN scripts in the installed dvc_render's Vega page."""
    from dvc_render.vega import VegaRenderer

    found = dict(re.findall(r"npm/([a-z-]+)@([0-9][0-9.]*)", VegaRenderer.SCRIPTS))
    if set(found) != set(BUILDS):
        raise SystemExit(f"dvc_render loads {sorted(found)}, expected {sorted(BUILDS)}: update BUILDS")
    return found


def npm_pack(name: str, version: str, folder: Path) -> tuple[bytes, str]:
    """(tarball bytes, the registry's sha512 integrity) of name@version, verified."""
    spec = f"{name}@{version}"
    expected = subprocess.run(["npm", "view", spec, "dist.integrity"], check=True, capture_output=True, text=True).stdout.strip()
    packed = json.loads(subprocess.run(["npm", "pack", spec, "--json"], cwd=folder, check=True, capture_output=True, text=True).stdout)
    tarball = (folder / packed[0]["filename"]).read_bytes()
    actual = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{spec}: tarball integrity {actual} differs from the registry's {expected}")
    return tarball, expected


def member(tarball: bytes, path: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        extracted = archive.extractfile(f"package/{path}")
        if extracted is None:
            raise SystemExit(f"package/{path} missing from the tarball")
        return extracted.read()


def script_block(name: str, version: str, code: str) -> str:
    """One inline <script>; refused if the code could end the tag early or hold one of DVC's placeholders."""
    if re.search(r"</script", code, re.IGNORECASE) or any(p in code for p in PLACEHOLDERS):
        raise SystemExit(f"{name}: the build contains '</script' or a DVC placeholder; it cannot be inlined as is")
    return f"    <!-- {name} {version} ({BUILDS[name]}), license: LICENSE-{name} -->\n    <script>\n{code}\n    </script>\n"


def main() -> None:
    manifest, blocks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in dvc_versions().items():
            tarball, integrity = npm_pack(name, version, Path(tmp))
            code = member(tarball, BUILDS[name]).decode("utf-8").rstrip("\n")
            (HERE / f"LICENSE-{name}").write_bytes(member(tarball, "LICENSE"))
            blocks.append(script_block(name, version, code))
            manifest.append(
                {"name": name, "version": version, "file": BUILDS[name], "npm_integrity": integrity,
                 "sha256": hashlib.sha256(code.encode("utf-8")).hexdigest()}
            )  # fmt: skip
    PAGE.write_text(PAGE_HEAD + "".join(blocks) + PAGE_TAIL, encoding="utf-8")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {PAGE} ({PAGE.stat().st_size:,} bytes) and {MANIFEST}", file=sys.stderr)


if __name__ == "__main__":
    main()
