"""GraphiQL's third-party files: pinned npm packages, fetched once, verified every time.

Nothing third-party is committed. `PACKAGES` pins each package by name, exact version and
the npm registry's own integrity string (the sha512 of the tarball, as `npm` checks it).
`fetch()` downloads the tarballs from the npm registry (or the one `npm_config_registry`
names) at install time — `make` runs `balance-gateway graphiql fetch` — checks each against
its pin and keeps it as is in `assets_dir()`. `load()` checks every tarball again when the
gateway starts and reads just the files the page needs into memory; a missing or altered
tarball is reported, never served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import sys
import tarfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGISTRY = "https://registry.npmjs.org"
MAX_TARBALL_BYTES = 16 * 1024 * 1024
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity`: "sha512-" + base64 of the digest
    files: tuple[str, ...]  # paths inside the tarball's `package/` folder that are served

    @property
    def tarball_name(self) -> str:
        return f"{self.name.replace('/', '__')}-{self.version}.tgz"

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"

    def url_path(self, file: str) -> str:
        """Where the page finds `file`: versioned, so it can be cached for good."""
        return f"/graphiql/assets/{self.name}@{self.version}/{file}"


# The same major versions Strawberry's own GraphiQL page loads from a CDN; React 18 is the
# last React with browser (UMD) builds, which is what lets the page run without a bundler.
PACKAGES = (
    Package(
        "react",
        "18.3.1",
        "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
        ("umd/react.production.min.js",),
    ),
    Package(
        "react-dom",
        "18.3.1",
        "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
        ("umd/react-dom.production.min.js",),
    ),
    Package(
        "graphiql",
        "3.8.3",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        ("graphiql.min.js", "graphiql.min.css"),
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
        ("dist/index.umd.js", "dist/style.css"),
    ),
)


class AssetError(Exception):
    """A package that is missing, altered or unreadable; the message says which and why."""


def assets_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$GATEWAY_GRAPHIQL_DIR`, else inside the installation (the virtualenv)."""
    configured = env.get("GATEWAY_GRAPHIQL_DIR")
    return (
        Path(configured)
        if configured
        else Path(sys.prefix) / "share" / "balance-gateway" / "graphiql"
    )


def registry(env: Mapping[str, str] = os.environ) -> str:
    """The npm registry to fetch from: npm's own setting when present (a mirror)."""
    return env.get("npm_config_registry") or env.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def verified(package: Package, data: bytes) -> bytes:
    if not hmac.compare_digest(integrity_of(data), package.integrity):
        raise AssetError(
            f"{package.name}@{package.version}: the tarball does not match its pinned sha512"
        )
    return data


def download(url: str) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise AssetError(f"not an HTTP(S) registry URL: {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "balance-gateway"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - checked above
        data: bytes = response.read(MAX_TARBALL_BYTES + 1)
    if len(data) > MAX_TARBALL_BYTES:
        raise AssetError(f"{url} is larger than {MAX_TARBALL_BYTES} bytes")
    return data


def fetch(target: Path, registry_url: str = DEFAULT_REGISTRY) -> list[str]:
    """Make sure every pinned tarball is in `target`, verified; returns what was downloaded.
    A tarball already there and intact is kept; an altered one is replaced."""
    target.mkdir(parents=True, exist_ok=True)
    fetched = []
    for package in PACKAGES:
        path = target / package.tarball_name
        if path.exists():
            try:
                verified(package, path.read_bytes())
                continue
            except AssetError:
                pass
        url = package.tarball_url(registry_url)
        try:
            data = verified(package, download(url))
        except OSError as exc:
            raise AssetError(
                f"{package.name}@{package.version}: cannot fetch {url}: {exc}"
            ) from exc
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
        fetched.append(f"{package.name}@{package.version}")
    return fetched


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load(source: Path) -> dict[str, Asset]:
    """Every served file by its URL path, from tarballs verified against their pins."""
    assets: dict[str, Asset] = {}
    for package in PACKAGES:
        path = source / package.tarball_name
        try:
            data = verified(package, path.read_bytes())
        except FileNotFoundError:
            raise AssetError(
                f"{package.name}@{package.version} is not installed ({path})"
            ) from None
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for file in package.files:
                member = tar.extractfile(f"package/{file}")
                if member is None:
                    raise AssetError(f"{package.name}@{package.version} has no {file}")
                content_type = CONTENT_TYPES[Path(file).suffix]
                assets[package.url_path(file)] = Asset(member.read(), content_type)
    return assets
