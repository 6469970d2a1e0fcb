"""GraphiQL's pinned packages: fetched from a registry by name and version, verified against
their pinned sha512 when fetched and again when the gateway starts, never served altered."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.server.pages.graphiql import CSP, DEMO_QUERY, GraphiQLPage
from gateway.server.pages.graphiql_assets import (
    PACKAGES,
    AssetError,
    assets_dir,
    fetch,
    integrity_of,
    load,
)
from tests.helpers import ROOT

INSTALLED = assets_dir()


def installed_or_skip() -> None:
    if not all((INSTALLED / p.tarball_name).exists() for p in PACKAGES):
        pytest.fail(f"GraphiQL's packages are not in {INSTALLED}: `make` fetches them")


@contextmanager
def registry(root: Path) -> Iterator[str]:
    """A registry on 127.0.0.1 laid out as npm's (`/<name>/-/<file>-<version>.tgz`)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish(root: Path, tamper: str | None = None) -> None:
    for package in PACKAGES:
        scope_path = root / package.name / "-"
        scope_path.mkdir(parents=True, exist_ok=True)
        target = scope_path / f"{package.name.split('/')[-1]}-{package.version}.tgz"
        data = (INSTALLED / package.tarball_name).read_bytes()
        target.write_bytes(data + b"\0" if package.name == tamper else data)


def test_the_pins_are_the_registrys_integrity_strings_of_the_installed_tarballs() -> None:
    installed_or_skip()
    for package in PACKAGES:
        data = (INSTALLED / package.tarball_name).read_bytes()
        assert integrity_of(data) == package.integrity
    assert {p.name for p in PACKAGES} == {
        "react",
        "react-dom",
        "graphiql",
        "@graphiql/plugin-explorer",
    }


def test_fetch_downloads_by_name_and_version_and_verifies(tmp_path: Path) -> None:
    installed_or_skip()
    publish(tmp_path / "registry")
    target = tmp_path / "assets"
    with registry(tmp_path / "registry") as url:
        assert len(fetch(target, url)) == len(PACKAGES)
        assert fetch(target, url) == []  # intact ones are kept, not fetched again
    assets = load(target)
    assert "/graphiql/assets/graphiql@3.8.3/graphiql.min.js" in assets
    assert "/graphiql/assets/react@18.3.1/umd/react.production.min.js" in assets


def test_an_altered_tarball_is_refused_when_fetched_and_when_loaded(tmp_path: Path) -> None:
    installed_or_skip()
    publish(tmp_path / "registry", tamper="graphiql")
    target = tmp_path / "assets"
    with registry(tmp_path / "registry") as url, pytest.raises(AssetError, match="sha512"):
        fetch(target, url)
    assert not (target / "graphiql-3.8.3.tgz").exists()
    shutil.copytree(INSTALLED, target, dirs_exist_ok=True)
    (target / "react-18.3.1.tgz").write_bytes(b"not react")
    with pytest.raises(AssetError, match=r"react@18\.3\.1"):
        load(target)


def test_an_unreachable_registry_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="cannot fetch"):
        fetch(tmp_path, "http://127.0.0.1:9")  # discard port: nothing listens


async def test_without_its_packages_the_page_says_how_to_install_them(tmp_path: Path) -> None:
    page = GraphiQLPage(tmp_path)  # nothing installed here
    response = page.page()
    body = bytes(response.body).decode()
    assert response.status_code == 503
    assert "graphiql fetch" in body and "<script" not in body
    assert response.headers["content-security-policy"] == CSP


async def test_assets_are_served_with_their_types_and_cached_for_good() -> None:
    installed_or_skip()
    from starlette.applications import Starlette

    app = Starlette(routes=GraphiQLPage(INSTALLED).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        script = await c.get("/graphiql/assets/graphiql@3.8.3/graphiql.min.js")
        style = await c.get("/graphiql/assets/graphiql@3.8.3/graphiql.min.css")
        own = await c.get("/graphiql/app.js")
        other = await c.get("/graphiql/assets/graphiql@3.8.3/package.json")
        escape = await c.get("/graphiql/../pyproject.toml")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "immutable" in script.headers["cache-control"]
    assert style.headers["content-type"].startswith("text/css")
    assert own.status_code == 200 and own.headers["cache-control"] == "no-cache"
    assert other.status_code == 404 and escape.status_code == 404  # only the listed files


def test_graphiqls_first_tab_is_the_readmes_demo_query() -> None:
    """One source: the page's default query is the README's first example, word for word."""

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- example: demo-query -->\n```graphql\n", 1)[1].split("```", 1)[0]
    code = "".join(line for line in DEMO_QUERY.splitlines(True) if not line.startswith("#"))
    assert code == shown
