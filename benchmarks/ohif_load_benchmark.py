"""OHIF on medai's DICOMweb against OHIF on Orthanc's DICOMweb plugin (the anchor), on the same
200-slice MR series, in one run (issue 68, item 6: the viewer part).

What a radiologist waits for: from the moment the viewer's address is opened, the time until
the first slice is drawn, and the time until every slice of the series is in the viewer (so
scrolling never waits). Both are read inside the page from ``performance.now()`` (time since
the navigation began), by a script polling Cornerstone every 20 ms.

The two set-ups differ only in the DICOMweb server:

- **medai**: ``medai serve`` in its own process (SQLite, one worker, analysis threads off so no
  model competes), the series stored over STOW-RS, OHIF served by medai under ``/viewer`` with
  its generated ``app-config.js``; a signed-in radiologist's browser session.
- **Orthanc**: Debian's Orthanc with its DICOMweb plugin as the test suite runs it, the same
  series uploaded over REST; the same OHIF files, the same ``index.html`` and the same
  ``app-config.js`` (its DICOMweb root changed to Orthanc's) served by Debian's nginx on one
  origin with Orthanc behind it (``/dicom-web`` proxied), as OHIF's own Orthanc recipe does.

Each server is measured ``--runs`` times, alternating, each in a fresh browser context (an
empty HTTP cache), in Debian's headless Chromium; the medians are reported. The study's
first opening on each server is reported apart (medai builds each instance's DICOM JSON
then and keeps it per process; both read the files from disk for the first time). Once the first slice
is drawn, OHIF's stack prefetch loads the rest of the shown series by itself, as a radiologist
gets it.

Usage: ``flock /tmp/medai-heavy.lock .venv/bin/python benchmarks/ohif_load_benchmark.py``
(``--slices N``, ``--runs N``, ``--json``). Needs the OHIF files (``make viewer-deps``),
chromium and Playwright (``make browser-deps``), and Debian's orthanc, orthanc-dicomweb and
nginx-light.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# installed before OHIF's own scripts: every 20 ms, is a slice drawn, and how many of the shown
# series' slices are in Cornerstone's cache (their times since the navigation began)
PROBE = """
(() => {
  const out = window.__bench = {first: null, all: null, cached: 0, total: 0};
  const tick = () => {
    const cs = window.cornerstone;
    if (cs && cs.getEnabledElements) {
      for (const e of cs.getEnabledElements()) {
        const vp = e.viewport;
        if (!vp || !vp.getImageIds) continue;
        const ids = vp.getImageIds();
        if (out.first === null && vp.getImageData && vp.getImageData()) out.first = performance.now();
        if (ids.length) {
          out.total = ids.length;
          out.cached = ids.filter((id) => cs.cache.getImage(id)).length;
          if (out.all === null && out.cached === ids.length) out.all = performance.now();
        }
      }
    }
    if (out.all === null) setTimeout(tick, 20);
  };
  setTimeout(tick, 20);
})();
"""

NGINX = """{user}
worker_processes 2;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 256; }}
http {{
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path {home}/body;
  proxy_temp_path {home}/proxy;
  fastcgi_temp_path {home}/fastcgi;
  uwsgi_temp_path {home}/uwsgi;
  scgi_temp_path {home}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {home}/site;
    location /viewer/ {{ try_files $uri /viewer/index.html; }}
    location /dicom-web/ {{
      proxy_pass http://127.0.0.1:{orthanc};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }}
  }}
}}
"""


def viewer_files(site: Path, dicomweb_root: str) -> None:
    """OHIF's files as medai serves them under /viewer (the same index.html, the same
    app-config.js but for its DICOMweb root) in ``site``/viewer, for nginx."""
    from medai.platform.web import viewer

    root = viewer.viewer_dir()
    target = site / "viewer"
    target.mkdir(parents=True)
    for item in root.iterdir():
        if item.name not in ("index.html", "app-config.js"):
            (target / item.name).symlink_to(item)
    html, _ = viewer._index(str(root))
    (target / "index.html").write_bytes(html)
    config = viewer.app_config("en").replace(viewer.DICOMWEB_ROOT, dicomweb_root)
    (target / "app-config.js").write_text(config, encoding="utf-8")


@contextmanager
def nginx_in_front(home: Path, orthanc_port: int):
    from helpers.platform import free_port

    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (home / d).mkdir(parents=True, exist_ok=True)
    viewer_files(home / "site", "/dicom-web")
    port = free_port()
    conf = home / "nginx.conf"
    # as root, nginx's workers would run as nobody, who cannot read this private folder
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX.format(user=user, home=home, port=port, orthanc=orthanc_port))
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(home)], start_new_session=True)
    try:
        import urllib.request

        end = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/viewer/app-config.js", timeout=5)
                break
            except OSError as exc:
                if time.monotonic() > end:
                    log = (home / "error.log").read_text()
                    raise SystemExit(f"nginx did not start: {log}") from exc
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def load_once(browser, base: str, study: str, login: bool, timeout: float) -> dict:
    """One cold load of the study in a fresh context: first slice, whole series (ms)."""
    from helpers.browser import login_page

    if login:
        ctx, page = login_page(browser, base, viewport={"width": 1280, "height": 900}, lang="en")
    else:
        ctx = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
    try:
        page.add_init_script(PROBE)
        page.goto(f"/viewer/viewer?StudyInstanceUIDs={study}", wait_until="commit")
        end = time.monotonic() + timeout
        got: dict = {}
        while time.monotonic() < end:
            got = page.evaluate("() => window.__bench || {}")
            if got.get("all") is not None:
                break
            time.sleep(0.2)
        if got.get("first") is None or got.get("all") is None:
            raise SystemExit(f"{base}: the series did not load in {timeout:.0f} s: {got}")
        return {
            "first_image_s": round(got["first"] / 1000, 3),
            "whole_series_s": round(got["all"] / 1000, 3),
            "slices": got["total"],
        }
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import httpx

    from dicomweb_benchmark import build_series, to_orthanc
    from helpers.orthanc import running_orthanc
    from helpers.platform import cli_add_user, http_login, launched_browser, serving
    from medai.platform.web.viewer import installed

    if not installed():
        raise SystemExit("OHIF is not installed: make viewer-deps")
    work = Path(tempfile.mkdtemp(prefix="medai-ohifbench-"))
    study, _series, paths = build_series(work, args.slices)
    env = {**os.environ, "MEDAI_HOME": str(work / "home"), "MEDAI_JOB_THREADS": "0"}
    cli_add_user(env, "rad1", "radiologist")
    results: dict = {
        "slices": args.slices,
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "medai": [],
        "orthanc": [],
    }
    with serving(env) as base, running_orthanc() as orthanc, launched_browser() as browser:
        rad = http_login(base, "rad1")
        for start in range(0, len(paths), 50):
            import uuid

            boundary = uuid.uuid4().hex
            body = b"".join(
                b"--"
                + boundary.encode()
                + b"\r\nContent-Type: application/dicom\r\n\r\n"
                + p.read_bytes()
                + b"\r\n"
                for p in paths[start : start + 50]
            ) + (b"--" + boundary.encode() + b"--\r\n")
            r = httpx.post(
                f"{base}/api/v1/dicomweb/studies",
                content=body,
                headers={
                    **rad,
                    "content-type": f'multipart/related; type="application/dicom"; '
                    f"boundary={boundary}",
                },
                timeout=300,
            )
            if r.status_code != 200:
                raise SystemExit(f"STOW-RS into medai failed: {r.status_code} {r.text[:300]}")
        to_orthanc(orthanc.url, paths)
        with nginx_in_front(work / "nginx", orthanc.http_port) as anchor:
            # the study's first opening of each, reported apart and not in the medians: medai
            # makes each instance's DICOM JSON then (kept per process), and both read OHIF's
            # files and the instances from disk for the first time
            results["medai_first_open"] = load_once(browser, base, study, True, args.timeout)
            results["orthanc_first_open"] = load_once(browser, anchor, study, False, args.timeout)
            for _ in range(args.runs):
                results["medai"].append(load_once(browser, base, study, True, args.timeout))
                results["orthanc"].append(load_once(browser, anchor, study, False, args.timeout))
    for side in ("medai", "orthanc"):
        runs = results[side]
        results[f"{side}_median"] = {
            k: statistics.median(r[k] for r in runs) for k in ("first_image_s", "whole_series_s")
        }
    m, o = results["medai_median"], results["orthanc_median"]
    # a rate: Orthanc's time ÷ medai's (above 1.0, medai is the faster)
    results["ratio_first_image"] = round(o["first_image_s"] / m["first_image_s"], 2)
    results["ratio_whole_series"] = round(o["whole_series_s"] / m["whole_series_s"], 2)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.slices}-slice MR series in OHIF, {results['machine']}, {args.runs} runs each")
    print(f"{'median':24}{'medai':>10}{'Orthanc':>10}")
    for key in ("first_image_s", "whole_series_s"):
        print(f"{key:24}{m[key]:>10}{o[key]:>10}")
    mf, of = results["medai_first_open"], results["orthanc_first_open"]
    print("the study's first opening (not in the medians):")
    for key in ("first_image_s", "whole_series_s"):
        print(f"{key:24}{mf[key]:>10}{of[key]:>10}")
    print(
        f"rate medai ÷ Orthanc: {results['ratio_first_image']} (first image), "
        f"{results['ratio_whole_series']} (whole series)"
    )


if __name__ == "__main__":
    main()
