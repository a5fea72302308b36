"""The service worker's cache is named by what it caches: after an upgrade that changes any
script, a browser that installed the app installs a new worker and drops the old shell (a fixed
name kept it on the old scripts, cache-first, until the name was edited by hand)."""

from __future__ import annotations

import re

from medai.platform.web import routes


def _cache_name(source: str) -> str:
    return re.search(r'const CACHE = "([^"]+)";', source).group(1)


def test_the_cache_name_follows_the_content_of_the_shell(tmp_path, monkeypatch):
    served = routes.service_worker()
    name = _cache_name(served.body.decode())
    assert re.fullmatch(r"medai-shell-[0-9a-f]{16}", name)
    assert served.headers["Cache-Control"] == "no-cache"  # the browser asks again each visit

    static = tmp_path / "static"  # the same shell, one script changed by a release
    for path in (routes.HERE / "static").rglob("*"):
        if path.is_file():
            target = static / path.relative_to(routes.HERE / "static")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    monkeypatch.setattr(routes, "HERE", tmp_path)
    routes._service_worker_source.cache_clear()
    routes.static_version.cache_clear()
    assert _cache_name(routes._service_worker_source()) == name  # same files, same name
    (static / "worklist.js").write_text((static / "worklist.js").read_text() + "\n// next\n")
    routes._service_worker_source.cache_clear()
    routes.static_version.cache_clear()
    assert _cache_name(routes._service_worker_source()) != name
    routes._service_worker_source.cache_clear()
    routes.static_version.cache_clear()
