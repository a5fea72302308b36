"""medai's DICOMweb read (QIDO-RS/WADO-RS) against Orthanc's DICOMweb plugin (the anchor), on
the same 200-slice MR series, in one run (issue 68, item 6: the dicomweb-client part).

What it does: builds a synthetic 200-slice MR series (256×256, 16-bit, explicit VR little
endian, one patient, geometry along the axial normal), stores it in medai (STOW-RS into the
platform app, served by uvicorn in this process with the job threads off, so no analysis
competes) and in a local Orthanc with its DICOMweb plugin (REST upload), then runs the
measuring client in a separate process (so the client and medai's server do not share one
interpreter's lock) through ``dicomweb-client`` against both:

- series metadata: the first request (medai makes each instance's DICOM JSON then) and the
  median of the next five;
- frames/s: every frame of the series, one request per instance as dicomweb-client sends it,
  one connection; and with 4 threads at once (a viewer loads a series in parallel).

Usage: ``flock /tmp/medai-heavy.lock .venv/bin/python benchmarks/dicomweb_benchmark.py``
(``--slices N``, ``--json`` for the raw numbers). Needs Debian's orthanc and
orthanc-dicomweb.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_series(folder: Path, slices: int) -> tuple[str, str, list[Path]]:
    from pydicom.uid import generate_uid

    from helpers.dicom import make_dicom

    study, series = generate_uid(), generate_uid()
    paths = [
        make_dicom(
            folder / f"s{i:03d}.dcm",
            "MR",
            body_part="BRAIN",
            view=None,
            study=study,
            series=series,
            accession="BENCH-DW",
            description="T1 AX",
            rows=256,
            cols=256,
            seed=i,
            InstanceNumber=i + 1,
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[-120.0, -120.0, float(i)],
            PixelSpacing=[0.9, 0.9],
            SliceThickness=1.0,
        )
        for i in range(slices)
    ]
    return study, series, paths


def stow(client, paths: list[Path]) -> None:
    import uuid

    for start in range(0, len(paths), 50):
        boundary = uuid.uuid4().hex
        body = b"".join(
            b"--"
            + boundary.encode()
            + b"\r\nContent-Type: application/dicom\r\n\r\n"
            + p.read_bytes()
            + b"\r\n"
            for p in paths[start : start + 50]
        ) + (b"--" + boundary.encode() + b"--\r\n")
        ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
        r = client.post("/api/v1/dicomweb/studies", content=body, headers={"content-type": ctype})
        if r.status_code != 200:
            raise SystemExit(f"STOW-RS into medai failed: {r.status_code} {r.text[:300]}")


def to_orthanc(url: str, paths: list[Path]) -> None:
    import urllib.request

    for p in paths:
        req = urllib.request.Request(f"{url}/instances", data=p.read_bytes(), method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()


def measure(url: str, headers: dict, study: str, series: str) -> dict:
    """The client side, in its own process: metadata and frames through dicomweb-client."""
    from concurrent.futures import ThreadPoolExecutor

    from dicomweb_client import DICOMwebClient

    dw = DICOMwebClient(url, headers=headers)
    t0 = time.perf_counter()
    meta = dw.retrieve_series_metadata(study, series)
    first = time.perf_counter() - t0
    again = []
    for _ in range(5):
        t0 = time.perf_counter()
        dw.retrieve_series_metadata(study, series)
        again.append(time.perf_counter() - t0)
    sops = [m["00080018"]["Value"][0] for m in meta]
    accept = (("application/octet-stream", "*"),)
    t0 = time.perf_counter()
    total = 0
    for sop in sops:
        (frame,) = dw.retrieve_instance_frames(study, series, sop, [1], media_types=accept)
        total += len(frame)
    one = time.perf_counter() - t0

    local = threading.local()

    def fetch(sop: str) -> int:
        if not hasattr(local, "dw"):
            local.dw = DICOMwebClient(url, headers=headers)
        (frame,) = local.dw.retrieve_instance_frames(study, series, sop, [1], media_types=accept)
        return len(frame)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(fetch, sops))
    four = time.perf_counter() - t0
    assert sum(sizes) == total
    return {
        "instances": len(meta),
        "metadata_first_s": round(first, 4),
        "metadata_median_s": round(statistics.median(again), 4),
        "frames": len(sops),
        "frame_bytes": total // len(sops),
        "frames_per_s_1": round(len(sops) / one, 1),
        "frames_per_s_4": round(len(sops) / four, 1),
    }


def client_process(url: str, headers: dict, study: str, series: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, json.dumps(headers), study, series],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"the measuring client failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def served(home: Path, workers: int, headers: dict, study: str, series: str) -> dict:
    """The same measurement against ``medai serve --workers N`` in its own processes, on the
    database and store the in-process app filled (the bearer token is valid there too)."""
    import os
    import signal

    from helpers.platform import free_port, start_serve

    env = {
        **os.environ,
        "MEDAI_HOME": str(home),
        "MEDAI_DATABASE_URL": f"sqlite:///{home / 'medai.sqlite'}",
        "MEDAI_JOB_THREADS": "0",
    }
    proc, base = start_serve(env, free_port(), workers=workers)
    try:
        return client_process(f"{base}/api/v1/dicomweb", headers, study, series)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="also measure `medai serve --workers N` (its own processes, the same database "
        "and store, analysis threads off) as a deployment runs it; 0: skip",
    )
    ap.add_argument("--client", nargs=4, metavar=("URL", "HEADERS", "STUDY", "SERIES"))
    args = ap.parse_args()
    if args.client:
        url, headers, study, series = args.client
        print(json.dumps(measure(url, json.loads(headers), study, series)))
        return

    import uvicorn

    from helpers.orthanc import running_orthanc
    from helpers.platform import free_port, signed_in

    work = Path(tempfile.mkdtemp(prefix="medai-dwbench-"))
    study, series, paths = build_series(work, args.slices)
    results: dict = {
        "slices": args.slices,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    }
    with signed_in(work / "home", "radiologist") as (app, client):
        stow(client, paths)
        port = free_port()
        srv = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                log_config=None,
                lifespan="off",
            )
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        while not srv.started:
            time.sleep(0.05)
        headers = {"Authorization": client.headers["Authorization"]}
        try:
            with running_orthanc() as orthanc:
                to_orthanc(orthanc.url, paths)
                results["orthanc"] = client_process(orthanc.dicomweb_url, {}, study, series)
                results["medai"] = client_process(
                    f"http://127.0.0.1:{port}/api/v1/dicomweb", headers, study, series
                )
                if args.workers:
                    results[f"medai_serve_{args.workers}"] = served(
                        work / "home", args.workers, headers, study, series
                    )
        finally:
            srv.should_exit = True
            thread.join(10)
    m, o = results["medai"], results["orthanc"]
    if args.workers:
        w = results[f"medai_serve_{args.workers}"]
        results["ratio_frames_1_serve"] = round(w["frames_per_s_1"] / o["frames_per_s_1"], 2)
        results["ratio_frames_4_serve"] = round(w["frames_per_s_4"] / o["frames_per_s_4"], 2)
    results["ratio_frames_1"] = round(m["frames_per_s_1"] / o["frames_per_s_1"], 2)
    results["ratio_frames_4"] = round(m["frames_per_s_4"] / o["frames_per_s_4"], 2)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.slices}-slice MR series, {results['machine']}")
    print(f"{'':24}{'medai':>10}{'Orthanc':>10}")
    for key in (
        "metadata_first_s",
        "metadata_median_s",
        "frames_per_s_1",
        "frames_per_s_4",
    ):
        print(f"{key:24}{m[key]:>10}{o[key]:>10}")
    print(
        f"frames/s medai ÷ Orthanc: {results['ratio_frames_1']} (1 connection), "
        f"{results['ratio_frames_4']} (4)"
    )


if __name__ == "__main__":
    main()
