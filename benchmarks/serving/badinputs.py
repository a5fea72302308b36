"""The bad-input table of the serving benchmark: each hostile input, the status the server
gave, and the server's peak resident memory while it handled it."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

PATIENT = "Adım Ayşe Yılmaz TC 12345678901 tel 05321234567, göğsüm sıkışıyor. "


def _xray_like(rows: int, cols: int, source: Path | None) -> np.ndarray:
    """A real chest X-ray resized (so the gate accepts it and the whole path runs), else a
    smooth synthetic picture."""
    from PIL import Image

    if source is not None:
        img = Image.open(source).convert("L").resize((cols, rows), Image.Resampling.BILINEAR)
        return np.asarray(img)
    y, x = np.mgrid[0:rows, 0:cols]
    return ((np.sin(x / 37.0) * np.cos(y / 53.0) + 1) * 120).astype(np.uint8)


def _dicom(path: Path, frames: int, rows: int, cols: int, source: Path | None = None) -> Path:
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "DX", rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    frame = _xray_like(rows, cols, source).astype(np.uint16) * 16
    ds.PixelData = np.ascontiguousarray(np.broadcast_to(frame, (frames, rows, cols))).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _big_png(path: Path, source: Path | None, smooth: bool) -> Path:
    """6000 × 6600: a tiny file of a flat gradient (decompression bomb) or a real X-ray
    blown up (accepted by the gate, so prediction and Grad-CAM run at full size)."""
    from PIL import Image

    if smooth:
        x = np.linspace(0, 255, 6000, dtype=np.float32)
        img = np.broadcast_to(x[None, :], (6600, 6000)).astype(np.uint8)
    else:
        img = _xray_like(6600, 6000, source)
    Image.fromarray(img).save(path, optimize=smooth)
    return path


def _raw_stream(port: int, path: str, content_type: str, total: int) -> tuple[int, int]:
    """Stream up to ``total`` bytes chunked; returns (status, bytes sent before the answer)."""
    sent, response = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            f"{content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        head = (
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.dcm"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"\0" * (1 << 20)
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while sent < total and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(framed)
            except OSError:
                break
            sent += len(chunk)
        try:
            while b"\r\n" not in response:
                data = sock.recv(4096)
                if not data:
                    break
                response += data
        except OSError:
            pass
    status = int(response.split()[1]) if response.startswith(b"HTTP/") else 0
    return status, sent


def _declared_length(port: int, path: str, length: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            f"application/json\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        sock.sendall(b'{"text": "' + b"a" * (1 << 20))
        response = sock.recv(4096)
    return int(response.split()[1]) if response.startswith(b"HTTP/") else 0


def bad_input_table(
    server, work: Path, sampler_cls, cli: bool = True, xray: Path | None = None
) -> list[dict]:
    base, port = server.base, server.port
    multiframe = _dicom(work / "multiframe.dcm", 110, 540, 540, xray)
    bomb_png = _big_png(work / "bomb.png", xray, smooth=True)
    big_png = _big_png(work / "huge.png", xray, smooth=False)
    dicom_11mb = _dicom(work / "d11.dcm", 1, 2400, 2400, xray)
    cases = []

    def upload(route: str, path: Path, form: dict | None = None) -> str:
        with httpx.Client(timeout=300, headers=server.headers) as c:
            r = c.post(
                f"{base}{route}",
                data=form,
                files={"file": (path.name, path.read_bytes(), "image/png")},
            )
        code = (
            r.json().get("code", "")
            if r.headers.get("content-type") == "application/json" and r.status_code >= 400
            else ""
        )
        return f"{r.status_code} {code}".strip()

    def four_at_once() -> str:
        statuses: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: statuses.append(upload("/api/v1/imaging/cxr/predict", dicom_11mb))
            )
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return ",".join(str(s) for s in sorted(statuses))

    def triage_raw(body: bytes) -> int:
        return httpx.post(
            f"{base}/api/v1/triage",
            content=body,
            timeout=60,
            headers={**server.headers, "content-type": "application/json"},
        ).status_code

    long_nan = (json.dumps({"text": PATIENT * 300})[:-1] + ', "min_confidence": NaN}').encode()
    deep = "[" * 5000 + "]" * 5000
    table = [
        (
            f"multi-frame DICOM, 110 frames 540×540, {multiframe.stat().st_size / 2**20:.0f} MB",
            lambda: upload("/api/v1/imaging/cxr/predict", multiframe),
        ),
        (
            f"PNG 6000×6600 flat gradient, {bomb_png.stat().st_size / 1024:.0f} KB",
            lambda: upload("/api/v1/imaging/cxr/predict", bomb_png),
        ),
        (
            f"PNG 6000×6600 X-ray, {big_png.stat().st_size / 2**20:.0f} MB",
            lambda: upload("/api/v1/imaging/cxr/predict", big_png),
        ),
        ("PNG 6000×6600 X-ray, heatmap", lambda: upload("/api/v1/imaging/cxr/heatmap", big_png)),
        (f"four {dicom_11mb.stat().st_size / 2**20:.0f} MB DICOMs at once", four_at_once),
        (
            "triage JSON declaring 100 MB",
            lambda: _declared_length(port, "/api/v1/triage", 100 * 2**20),
        ),
        (
            "2 GB chunked upload (no Content-Length)",
            lambda: "{} after {:.0f} MB".format(
                *(lambda s, n: (s, n / 2**20))(
                    *_raw_stream(
                        port,
                        "/api/v1/imaging/cxr/predict",
                        "multipart/form-data; boundary=x",
                        2 * 2**30,
                    )
                )
            ),
        ),
        ("20,000+ character complaint with min_confidence NaN", lambda: triage_raw(long_nan)),
        (
            "min_confidence: false",
            lambda: triage_raw(b'{"text": "kulak", "min_confidence": false}'),
        ),
        (
            "findings nested 5,000 deep",
            lambda: (
                httpx.post(
                    f"{base}/api/v1/reports/draft",
                    data={"findings": deep},
                    timeout=60,
                    headers=server.headers,
                ).status_code
            ),
        ),
    ]
    for name, call in table:
        before = server.rss_mb()
        with sampler_cls(server, 0.01) as rss:
            start = time.perf_counter()
            try:
                status = call()
            except Exception as exc:  # a crash or a dropped connection is a result too
                status = f"client error: {type(exc).__name__}"
            elapsed = time.perf_counter() - start
        cases.append(
            {
                "case": name,
                "status": status,
                "seconds": round(elapsed, 2),
                "rss_before_mb": round(before),
                "peak_rss_mb": round(rss.peak),
                "server_alive": server.alive(),
            }
        )
        if not server.alive():
            break
    log = Path(server.log.name).read_text(errors="replace")
    cases.append(
        {
            "case": "server log holds patient text",
            "status": str("12345678901" in log or "Yılmaz" in log).lower(),
        }
    )
    if cli:
        cases += _cli_cases(work)
    return cases


def _cli_cases(work: Path) -> list[dict]:
    """CLI reads with limits: GNU time reports the peak RSS of the whole command."""
    import os

    fifo = work / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    rows = []
    for name, args in [
        ("triage predict --file /dev/zero", ["triage", "predict", "--file", "/dev/zero"]),
        ("imaging predict on a directory", ["imaging", "predict", str(work)]),
        ("imaging predict on a FIFO", ["imaging", "predict", str(fifo)]),
        ("imaging predict on a missing file", ["imaging", "predict", str(work / "missing.png")]),
    ]:
        out = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "MAXRSS %M",
                sys.executable,
                "-m",
                "medai.cli",
                *args,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        rss = next(
            (int(x.split()[1]) for x in out.stderr.splitlines() if x.startswith("MAXRSS")), 0
        )
        rows.append(
            {
                "case": f"CLI: {name}",
                "status": f"exit {out.returncode}",
                "peak_rss_mb": round(rss / 1024),
            }
        )
    return rows
