"""Delivery of results through the outbox (issue 25): N DICOM studies uploaded, analysed by the
embedded pool with a tiny chest X-ray model and signed, then one delivery loop thread sends
everything due to a real Orthanc (C-STORE: findings SR + heatmap SC, report SR), a FHIR server
and an MLLP receiver (``tests/helpers/outbox_peers.py``), all on localhost. Prints the wall time, this
process's CPU time and the median and worst time per kind of delivery.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/outbox_delivery_benchmark.py 20

Needs Debian's Orthanc with its DICOMweb plugin (tests/helpers/orthanc.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(n: int) -> None:
    from pydicom.uid import generate_uid

    from conftest import make_imaging_model_dir
    from helpers.dicom import make_dicom
    from helpers.orthanc import _stop, start_orthanc
    from helpers.outbox_peers import FhirServer, MllpServer
    from helpers.platform import bearer, clinic, wait_status
    from medai.platform.delivery.delivery import DeliveryLoop

    tmp = Path(tempfile.mkdtemp(prefix="medai-outbox-bench-"))
    (tmp / "orthanc").mkdir()
    pacs = start_orthanc(tmp / "orthanc")
    fhir, hl7 = FhirServer().start(), MllpServer().start()
    os.environ.update(
        {
            "MEDAI_DICOM_SEND_TO": f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}",
            "MEDAI_FHIR_URL": fhir.url,
            "MEDAI_HL7_MLLP": f"127.0.0.1:{hl7.port}",
        }
    )
    cxr = make_imaging_model_dir(tmp / "cxr")
    triage = ROOT / "src/medai/assets/models/triage-default"
    try:
        with clinic("sqlite", tmp / "home", triage, cxr, outbox_threads=0) as (app, client):
            rad = bearer(client, "rad1")
            ids = []
            for i in range(n):
                path = make_dicom(
                    tmp / f"s{i}.dcm", "CR", study=generate_uid(), seed=i, rows=1024, cols=1024
                )
                r = client.post(
                    "/api/v1/studies",
                    headers=rad,
                    data={"task": "cxr"},
                    files={"file": ("s.dcm", path.read_bytes(), "application/dicom")},
                )
                ids.append(r.json()["id"])
            for sid in ids:
                wait_status(client, rad, sid, {"ai_drafted"}, timeout=600)
                client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json={"version": 1})
            loop = DeliveryLoop(app.state.platform)
            per: dict[tuple[str, str], list[float]] = {}
            deliver = loop.deliver

            def timed(item):
                t0 = time.perf_counter()
                out = deliver(item)
                per.setdefault((item.event, item.kind), []).append(time.perf_counter() - t0)
                return out

            loop.deliver = timed
            wall, cpu = time.perf_counter(), time.process_time()
            counts = loop.run_once()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{n} studies (1024x1024 CR): {counts} in {wall:.2f} s wall "
                f"({wall / n * 1000:.0f} ms per study), {cpu:.2f} s CPU of this process"
            )
            for (event, kind), times in sorted(per.items()):
                print(
                    f"  {event:<8} {kind:<6} median {statistics.median(times) * 1000:5.0f} ms"
                    f"  worst {max(times) * 1000:5.0f} ms  ({len(times)})"
                )
            print(
                f"  received: FHIR {fhir.requests} transactions, HL7 {len(hl7.messages)} "
                f"messages, Orthanc {len(pacs.rest('/instances'))} instances"
            )
    finally:
        fhir.stop()
        hl7.stop()
        _stop(pacs.process)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
