"""A real PACS for the integration tests: Debian's Orthanc with its DICOMweb plugin, started on
free ports with a temporary configuration and storage, stopped at teardown.

Orthanc's own AE title is ``ORTHANC_TEST``; medai's AE (``MEDAI``, calling from localhost) is
registered as a modality, and only registered modalities may store (``DicomAlwaysAllowStore``
off), as a hospital PACS is set up: another calling AE gets its C-STORE refused (Orthanc
aborts the association). HTTP (REST and DICOMweb under ``/dicom-web/``) listens on localhost
only, without authentication. Unknown SOP classes are refused at association; an instance
without its Series Instance UID gets C-STORE status 0xA700.

Use the ``orthanc`` fixture (import it into a test module: ``from helpers.orthanc import
orthanc``); it skips, saying why, where Orthanc or its DICOMweb plugin is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.platform import free_port

ORTHANC = os.environ.get("MEDAI_TEST_ORTHANC", "/usr/sbin/Orthanc")
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")
ORTHANC_AET = "ORTHANC_TEST"
MEDAI_AET = "MEDAI"
START_TIMEOUT_S = 20.0


class OrthancUnavailable(RuntimeError):
    """Orthanc or its DICOMweb plugin is not installed here."""


@dataclass(frozen=True)
class OrthancServer:
    """A running Orthanc: where to reach it, and its files (the log says why it failed)."""

    http_port: int
    dicom_port: int
    aet: str
    home: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def log(self) -> str:
        path = self.home / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def rest(self, path: str, method: str = "GET", body: bytes | None = None) -> object:
        """One call of Orthanc's REST API, decoded from JSON."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")


def find_plugin() -> Path:
    for folder in PLUGIN_DIRS:
        for path in sorted(Path(folder).glob("libOrthancDicomWeb.so*")):
            if path.is_file():
                return path
    raise OrthancUnavailable(
        f"the Orthanc DICOMweb plugin is not in {', '.join(PLUGIN_DIRS)} "
        "(Debian package orthanc-dicomweb)"
    )


def configuration(
    home: Path, http_port: int, dicom_port: int, plugin: Path, medai_port: int = 11112
) -> dict:
    """Orthanc's JSON configuration: storage in ``home``, localhost only, DICOMweb on."""
    return {
        "Name": "medai-test-pacs",
        "StorageDirectory": str(home / "storage"),
        "IndexDirectory": str(home / "index"),
        "StorageCompression": False,
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": ORTHANC_AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": {
            "medai": {"AET": MEDAI_AET, "Host": "127.0.0.1", "Port": medai_port, "AllowStore": True}
        },
        "UnknownSopClassAccepted": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 8,
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/system", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _dicom_listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_orthanc(home: Path, attempts: int = 3) -> OrthancServer:
    """Start Orthanc in ``home`` and wait until its REST API and DICOM port answer (a port
    taken between choosing it and binding it is retried with new ports)."""
    if not (os.path.isfile(ORTHANC) and os.access(ORTHANC, os.X_OK)):
        raise OrthancUnavailable(
            f"Orthanc is not installed ({ORTHANC} missing; Debian "
            "packages orthanc and orthanc-dicomweb)"
        )
    plugin = find_plugin()
    last = ""
    for _ in range(attempts):
        http_port, dicom_port = free_port(), free_port()
        config = home / "orthanc.json"
        config.write_text(json.dumps(configuration(home, http_port, dicom_port, plugin), indent=2))
        log = home / "orthanc.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [ORTHANC, f"--logfile={log}", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = OrthancServer(http_port, dicom_port, ORTHANC_AET, home, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(server.url) and _dicom_listens(dicom_port):
                return server
            time.sleep(0.05)
        last = server.log[-2000:]
        _stop(process)
    raise RuntimeError(f"Orthanc did not start in {START_TIMEOUT_S:.0f} s; its log:\n{last}")


@contextlib.contextmanager
def running_orthanc() -> Iterator[OrthancServer]:
    home = Path(tempfile.mkdtemp(prefix="medai-orthanc-"))
    try:
        server = start_orthanc(home)
        try:
            yield server
        finally:
            _stop(server.process)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    """A fresh Orthanc per test module; skipped, with the reason, where it is not installed."""
    try:
        with running_orthanc() as server:
            yield server
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))
