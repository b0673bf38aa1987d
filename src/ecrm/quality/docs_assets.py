"""The front-end assets GX Data Docs load from public CDNs, vendored from the npm registry.

GX 1.x's Data Docs pages load bootstrap, bootstrap-table, bootstrap-datepicker, jQuery, popper,
font-awesome and vega from jsdelivr, unpkg, cdnjs, code.jquery.com and bootstrapcdn, and its logo
from S3: behind a firewall they open unstyled, with no charts. `vendor_docs_assets(site)` downloads
each package's tarball from the npm registry (pinned version, checked against the registry's
sha512 integrity below), copies the files the pages use and the package's licence files into
`<site>/_vendor/<name>@<version>/`, and rewrites every CDN URL in the site's HTML and CSS to a
relative path to those copies. A page that still loads anything from outside after the rewrite
(a new GX release adding a CDN link) fails the build, naming the URL.

Tarballs are cached in `.ecrm/vendor-cache/` (gitignored; `ECRM_DOCS_ASSETS_CACHE` overrides), so
only the first build needs the registry; `ECRM_NPM_REGISTRY` points at a mirror (Artifactory, Nexus,
Verdaccio) where the public registry is unreachable. docs/quality.md, "Docs".
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

DEFAULT_REGISTRY = "https://registry.npmjs.org"
VENDOR = "_vendor"
LICENCE_NAMES = re.compile(r"^(licen[cs]e|copying|notice)([.-].*)?$", re.I)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity (sha512 of the tarball)
    licence: str  # SPDX, as package.json declares it
    files: dict[str, str] = field(default_factory=dict)  # CDN URL -> path inside the package
    extra: tuple[str, ...] = ()  # more paths (or folders, ending in /) the files need (fonts)

    @property
    def folder(self) -> str:
        return f"{self.name.replace('/', '__')}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


# The URLs are exactly those great_expectations 1.x's templates write (render/view/templates/*.j2).
# vega/vega-lite/vega-embed are unpinned majors on the CDN (vega@5, vega-lite@5, vega-embed@6), but
# GX draws its charts with altair 6 (requirements.lock), whose specs are Vega-Lite v6.4.1
# (altair.SCHEMA_VERSION; its VEGA_VERSION 6, VEGAEMBED_VERSION 7): vega-lite 5 warns on them. So the
# copies are the versions altair names (the UMD builds, build/*.min.js, jsdelivr's file for a bare
# package); test_docs fails on the warning if altair moves on. bootstrap-table-filter-control.css 1.19.0
# is served from 1.19.1's package (the same stylesheet; one tarball fewer).
PACKAGES: tuple[Package, ...] = (
    Package("bootstrap", "4.3.1",
            "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==", "MIT",
            {"https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "dist/css/bootstrap.min.css",
             "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "dist/js/bootstrap.min.js"}),
    Package("bootstrap-table", "1.19.1",
            "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==", "MIT",
            {"https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "dist/bootstrap-table.min.css",
             "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "dist/bootstrap-table.min.js",
             "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
                 "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
             "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
                 "dist/extensions/filter-control/bootstrap-table-filter-control.css",
             "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
                 "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"}),
    Package("bootstrap-datepicker", "1.9.0",
            "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==", "Apache-2.0",
            {"https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
                 "dist/css/bootstrap-datepicker.min.css",
             "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
                 "dist/js/bootstrap-datepicker.min.js"}),
    Package("@forevolve/bootstrap-dark", "1.1.0",
            "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==", "MIT",
            {"https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
                 "dist/css/bootstrap-prefers-dark.css"}),
    Package("@fortawesome/fontawesome-free", "6.6.0",
            "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
            "(CC-BY-4.0 AND OFL-1.1 AND MIT)",
            {"https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "css/all.min.css"},
            extra=("webfonts/",)),
    Package("jquery", "3.7.1",
            "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==", "MIT",
            {"https://code.jquery.com/jquery-3.7.1.min.js": "dist/jquery.min.js"}),
    Package("popper.js", "1.12.9",
            "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==", "MIT",
            {"https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "dist/umd/popper.min.js"}),
    Package("vega", "6.4.0",
            "sha512-rHXCq2LpEWCLMjXBEj7hocY9G0/i5TGYRayGGSj06VTF4+l2IG2Z7oeZKCjWbUh/7hTE/mVhbaOPB72wCElh6g==",
            "BSD-3-Clause", {"https://cdn.jsdelivr.net/npm/vega@5": "build/vega.min.js"}),
    Package("vega-lite", "6.4.1",
            "sha512-KO3ybHNouRK4A0al/+2fN9UqgTEfxrd/ntGLY933Hg5UOYotDVQdshR3zn7OfXwQ7uj0W96Vfa5R+QxO8am3IQ==",
            "BSD-3-Clause", {"https://cdn.jsdelivr.net/npm/vega-lite@5": "build/vega-lite.min.js"}),
    Package("vega-embed", "7.3.0",
            "sha512-wQ8s5GaSzqoKgmRfbRolgBrjE2CP7ZKHXqH7NijxMqPjpdWxSs4Dn8tvp9g0giQvh2cK+3p56sxjWWM0wNngGw==",
            "BSD-3-Clause", {"https://cdn.jsdelivr.net/npm/vega-embed@6": "build/vega-embed.min.js"}),
)

# GX's logo comes from S3; the same images ship in the package and GX copies them to static/images/.
GX_IMAGES = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGE_SUBSTITUTES = {"full_logo_dark.png": "logo-long.png"}  # the dark-mode logo is not in the package

# What a page loads: <script src>, <link href> (stylesheets, icons), <img src>, CSS url(...), @import.
LOADS = re.compile(r"""<(?:script|img|iframe|source|link)\b[^>]*?\b(?:src|href)\s*=\s*["']?(https?:)?//[^"'\s>]+"""
                   r"""|url\(\s*["']?(?:https?:)?//[^)"']+|@import\s+["'](?:https?:)?//[^"']+""", re.I)


class AssetError(RuntimeError):
    pass


def _registry() -> str:
    return os.environ.get("ECRM_NPM_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def _cache_dir() -> Path:
    from ..settings import get_settings

    return Path(os.environ.get("ECRM_DOCS_ASSETS_CACHE") or get_settings().root / ".ecrm" / "vendor-cache")


def _checked(package: Package, data: bytes) -> bool:
    algorithm, expected = package.integrity.split("-", 1)
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected


def fetch_tarball(package: Package, cache: Path | None = None) -> bytes:
    """The package's tarball, from the cache or the registry, checked against its pinned integrity."""
    cache = cache or _cache_dir()
    cached = cache / f"{package.folder}.tgz"
    if cached.exists():
        data = cached.read_bytes()
        if _checked(package, data):
            return data
        cached.unlink()  # a truncated or tampered copy: fetch it again
    url = f"{_registry()}/{package.tarball}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https registry URL)
            data = response.read()
    except OSError as exc:
        raise AssetError(f"cannot download {package.name}@{package.version} from {url}: {exc} "
                         "(set ECRM_NPM_REGISTRY to a reachable npm mirror)") from exc
    if not _checked(package, data):
        raise AssetError(f"{url} does not match the pinned integrity {package.integrity}: refusing it")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return data


def _extract(package: Package, data: bytes, dest: Path) -> list[str]:
    """Copy the used files, their `extra` folders and the licence files; returns the licence files."""
    wanted = set(package.files.values())
    folders = tuple(p for p in package.extra if p.endswith("/"))
    wanted |= {p for p in package.extra if not p.endswith("/")}
    licences, found, declared = [], set(), None
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and PurePosixPath(member.name).parts[1:] == ("package.json",):
                declared = json.loads(tar.extractfile(member).read()).get("license")
            if not member.isfile():
                continue
            parts = PurePosixPath(member.name).parts
            path = "/".join(parts[1:])  # tarballs hold package/<path> (some packages use another top folder)
            if ".." in parts[1:] or not path:
                continue
            is_licence = len(parts) == 2 and LICENCE_NAMES.match(parts[1])
            if path in wanted or path.startswith(folders) or is_licence:
                target = dest / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                found.add(path)
                if is_licence:
                    licences.append(path)
    missing = wanted - found
    if missing:
        raise AssetError(f"{package.name}@{package.version} has no {sorted(missing)}")
    if not licences:
        # popper.js 1.12.9 ships none: its licence is its package.json "license" and each file's header
        if declared != package.licence:
            raise AssetError(f"{package.name}@{package.version} ships no licence file and declares {declared!r}")
        headers = [f"{path}:\n{m.group(0)}" for path in sorted(package.files.values())
                   if (m := re.match(r"\s*/\*.*?\*/", (dest / path).read_text(errors="replace"), re.S))]
        if not headers:
            raise AssetError(f"{package.name}@{package.version} ships no licence file nor licence header")
        (dest / "LICENSE-NOTE.txt").write_text(
            f"{package.name}@{package.version} ships no licence file. Its package.json declares the licence "
            f"{declared}; the copied files carry these notices:\n\n" + "\n\n".join(headers) + "\n")
        licences.append("LICENSE-NOTE.txt")
    return licences


def vendor_docs_assets(site: Path, cache: Path | None = None) -> dict[str, Path]:
    """Vendor every pinned package into `site/_vendor/` and rewrite the site's pages to use it.

    Returns {CDN URL: local file}. Raises AssetError if a page still loads anything from outside.
    """
    local: dict[str, Path] = {}
    notes = ["Front-end assets of the GX Data Docs, vendored from the npm registry by ecrm.quality.docs_assets.",
             "package@version | licence (SPDX) | licence files | tarball integrity", ""]
    for package in PACKAGES:
        dest = site / VENDOR / package.folder
        licences = _extract(package, fetch_tarball(package, cache), dest)
        local.update({url: dest / path for url, path in package.files.items()})
        notes.append(f"{package.name}@{package.version} | {package.licence} | {', '.join(licences)} | "
                     f"{package.integrity}")
    (site / VENDOR / "THIRD-PARTY.txt").write_text("\n".join(notes) + "\n")
    rewrite_pages(site, local)
    return local


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def rewrite_pages(site: Path, local: dict[str, Path]) -> None:
    images = site / "static" / "images"
    # longest URL first, so "https://cdn.jsdelivr.net/npm/vega@5" does not eat the start of another URL
    urls = sorted(local, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(u) for u in urls) + r"(?=[\"'\s>)])")
    s3 = re.compile(re.escape(GX_IMAGES) + r"([\w.-]+)(\?[^\"'\s)>]*)?")
    outside: list[str] = []
    for page in sorted([*site.rglob("*.html"), *site.rglob("*.css")]):
        if VENDOR in page.relative_to(site).parts:
            continue
        text = page.read_text(encoding="utf-8")

        def to_image(m: re.Match, page: Path = page) -> str:
            name = GX_IMAGE_SUBSTITUTES.get(m.group(1), m.group(1))
            if not (images / name).exists():
                raise AssetError(f"{page}: GX image {m.group(0)} has no local copy in {images}")
            return _relative(images / name, page)

        new = pattern.sub(lambda m, page=page: _relative(local[m.group(0)], page), text)
        new = s3.sub(to_image, new)
        # the CDN's subresource-integrity hashes name the CDN's bytes; the copies are checked by the
        # tarball's integrity instead, and file:// pages cannot pass a crossorigin check
        new = re.sub(r'''(<(?:script|link)\b[^>]*?)\s+integrity=["'][^"']*["']\s+crossorigin=["'][^"']*["']''',
                     r"\1", new)
        outside += [f"{page.relative_to(site)}: {m.group(0)[-120:]}" for m in LOADS.finditer(new)]
        if new != text:
            page.write_text(new, encoding="utf-8")
    if outside:
        raise AssetError("the docs still load from outside (a new CDN link in GX's templates? add its package "
                         "to ecrm.quality.docs_assets.PACKAGES):\n  " + "\n  ".join(sorted(set(outside))))
