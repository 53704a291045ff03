"""Fetch again the JavaScript that a dashboard snapshot inlines, into bertology_widgets/static/snapshot/.

    python scripts/fetch_snapshot_js.py            # npm for the manager and require.js
    python scripts/fetch_snapshot_js.py --from DIR # DIR holds the two ``npm pack`` tarballs already

- ``@jupyter-widgets/html-manager`` (``dist/embed-amd.js``) and ``requirejs`` come from the npm registry
  (``npm pack``); bqplot and bqscales from the installed Python packages'
  ``share/jupyter/nbextensions/*/index.js`` (the npm registry has no build of the installed front ends).
- The manager's ipywidgets-7 compatibility modules (``base7``, ``controls7``) are left out: the manager does not
  depend on them and a snapshot holds ipywidgets-8 state only.
- Font Awesome: its ``woff2`` files become ``data:`` URIs; its other formats become empty ``data:`` URIs, so a
  page opened from ``file://`` never asks for a file beside it.
- bqplot and bqscales are anonymous AMD modules; they are named (``define("bqplot", ...)``) so that require.js
  can hold them in one page.
- Source-map comments are dropped (the maps are not shipped).

Writes ``versions.json`` (what was inlined, checked by tests/unit/test_snapshot.py) and each licence.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

HTML_MANAGER = "1.0.15"
REQUIREJS = "2.3.8"
OUT = Path(__file__).resolve().parents[1] / "bertology_widgets" / "static" / "snapshot"
FONT_EXPORT = re.compile(r'e\.exports=\w\.p\+"([0-9a-f]{20})\.(woff2|woff|ttf|eot|svg)"')
SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)
COMPAT_START = "/*! For license information please see base7.js.LICENSE.txt */"
COMPAT_END = "/*! For license information please see index.js.LICENSE.txt */\ndefine(\"@jupyter-widgets/html-manager\""
REQUIREJS_LICENCE = """MIT License

Copyright jQuery Foundation and other contributors, https://jquery.org/

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of
the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def npm_pack(spec: str, into: Path) -> Path:
    subprocess.run(["npm", "pack", spec, "--silent"], cwd=into, check=True, stdout=subprocess.DEVNULL)
    name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
    return into / f"{name}-{spec.rsplit('@', 1)[1]}.tgz"


def unpack(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        archive.extractall(into / tarball.stem, filter="data")
    return into / tarball.stem / "package"


def inline_fonts(js: str, dist: Path) -> str:
    def replace(match: re.Match) -> str:
        digest, kind = match.groups()
        if kind != "woff2":
            return 'e.exports="data:,"'
        data = base64.b64encode((dist / f"{digest}.woff2").read_bytes()).decode()
        return f'e.exports="data:font/woff2;base64,{data}"'

    return FONT_EXPORT.sub(replace, js)


def manager_js(package: Path) -> str:
    js = (package / "dist" / "embed-amd.js").read_text(encoding="utf-8")
    start, end = js.index(COMPAT_START), js.index(COMPAT_END)
    js = js[:start] + js[end:]
    if '"@jupyter-widgets/base7"' in js or '"@jupyter-widgets/controls7"' in js:  # a module name, not a CSS path
        raise SystemExit("embed-amd.js: the compatibility modules are still required; check the cut")
    return SOURCE_MAP.sub("", inline_fonts(js, package / "dist"))


def named_module(name: str, path: Path) -> str:
    js = path.read_text(encoding="utf-8")
    anonymous = re.search(r"^(/\*!.*?\*/\s*)?define\(\[", js, re.DOTALL)
    if anonymous is None:
        raise SystemExit(f"{path}: expected an anonymous define([...]) at the top")
    at = anonymous.end() - 1
    return SOURCE_MAP.sub("", js[: at] + f'"{name}",' + js[at:])


def installed_front_end(name: str) -> tuple[Path, str, Path]:
    """``(index.js, version, licence)`` of the installed Python package ``name``'s front end."""
    share = Path(sysconfig.get_paths()["data"]) / "share" / "jupyter"
    version = json.loads((share / "labextensions" / name / "package.json").read_text())["version"]
    from importlib.metadata import distribution

    dist = distribution(name)
    licence = next(Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == "LICENSE")
    return share / "nbextensions" / name / "index.js", version, licence


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="folder with the npm tarballs (default: npm pack into a temporary folder)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tarballs = []
        for spec in (f"@jupyter-widgets/html-manager@{HTML_MANAGER}", f"requirejs@{REQUIREJS}"):
            if args.source is None:
                tarballs.append(npm_pack(spec, work))
            else:
                name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
                tarballs.append(args.source / f"{name}-{spec.rsplit('@', 1)[1]}.tgz")
        manager, requirejs = (unpack(t, work) for t in tarballs)
        manifest = json.loads((manager / "package.json").read_text())
        (OUT / "embed-amd.js").write_text(manager_js(manager), encoding="utf-8")
        shutil.copyfile(manager / "dist" / "embed.js.LICENSE.txt", OUT / "embed-amd.THIRD-PARTY.txt")
        shutil.copyfile(requirejs / "require.js", OUT / "require.js")
        (OUT / "require.LICENSE.txt").write_text(REQUIREJS_LICENCE, encoding="utf-8")
        from importlib.metadata import distribution

        ipywidgets = distribution("ipywidgets")
        licence = next(Path(str(ipywidgets.locate_file(f))) for f in ipywidgets.files or () if f.name == "LICENSE")
        shutil.copyfile(licence, OUT / "embed-amd.LICENSE.txt")
    versions = {"@jupyter-widgets/html-manager": manifest["version"], "requirejs": REQUIREJS,
                "html-manager dependencies": {k: v for k, v in manifest["dependencies"].items()
                                              if k in ("@jupyter-widgets/base", "@jupyter-widgets/controls")}}
    for name in ("bqplot", "bqscales"):
        index, version, licence = installed_front_end(name)
        (OUT / f"{name}.js").write_text(named_module(name, index), encoding="utf-8")
        shutil.copyfile(licence, OUT / f"{name}.LICENSE.txt")
        versions[name] = version
    (OUT / "versions.json").write_text(json.dumps(versions, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(OUT.glob("*.js"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
