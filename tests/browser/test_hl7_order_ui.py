"""An HL7 order on screen (issue 69 §3), in headless Chromium against a real ``medai serve``
with ``medai hl7 listen`` and ``medai dicom listen`` beside it on the same database, as a
hospital runs them: the RIS sends a STAT order with a stroke question before the modality
sends the images; the worklist ranks the study and says why, the study page shows the
question and the order (priority, ordering physician), and the draft opens with the
question — in Turkish and English, on a phone and at desktop width."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from contextlib import ExitStack

import pytest

from helpers.dicom import make_dicom, need_dcmtk, storescu
from helpers.paths import SRC
from helpers.platform import PASSWORD, ui_server

pytestmark = [pytest.mark.server, pytest.mark.dcmtk]

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
QUESTION = "Bugün yeni gelişen sağ hemiparezi ve konuşma bozukluğu"
START, END = b"\x0b", b"\x1c\x0d"


def _listen(stack: ExitStack, args: list[str], env: dict[str, str]) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "medai.cli", *args, "--json", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, **env},
    )

    def stop() -> None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)

    stack.callback(stop)
    return int(json.loads(proc.stdout.readline())["port"])


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    need_dcmtk()
    home = tmp_path_factory.mktemp("hl7-ui-home")
    env = {"MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}"}
    with ui_server(home, {"rad1": "radiologist"}, **env) as base, ExitStack() as stack:
        common = {"MEDAI_HOME": str(home), "MEDAI_JOB_THREADS": "0", **env}
        hl7 = _listen(stack, ["hl7", "listen", "--allow", "RIS"], common)
        dicom = _listen(stack, ["dicom", "listen"], common)
        yield base, hl7, dicom, home


def _order(port: int, accession: str) -> str:
    message = "\r".join(
        [
            "MSH|^~\\&|RIS|HASTANE|MEDAI|RADYOLOJI|20261128101500||ORM^O01^ORM_O01|"
            f"M-{accession}|P|2.5.1|||AL|NE||UNICODE UTF-8",
            "PID|1||PAT-HL7^^^HASTANE^MR||YILMAZ^AYŞE||19700101|F",
            f"ORC|NW|PL-1|{accession}||SC||^^^^^S||20261128101400|||1234^ÖZTÜRK^MEHMET^^^Dr.",
            f"OBR|1|PL-1|{accession}|71020^Akciğer grafisi PA^L|||20261128101400|||||||||"
            f"1234^ÖZTÜRK^MEHMET^^^Dr.||{accession}|RP-1||||||||||||^{QUESTION}",
        ]
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(START + message.encode() + END)
        buf = b""
        while END not in buf:
            chunk = sock.recv(4096)
            assert chunk
            buf += chunk
    return buf.decode()


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_stat_order_before_its_images_ranks_the_study_and_shows_on_its_page(
    site, browser, shots, lang
):
    base, hl7, dicom, home = site
    t = T[lang]
    accession = f"HL7-{lang.upper()}"
    assert "MSA|AA|" in _order(hl7, accession)
    film = make_dicom(home / f"{accession}.dcm", accession=accession, patient_id="PAT-HL7")
    assert storescu(dicom, film).returncode == 0
    for width, height, kind in ((360, 740, "phone"), (1280, 900, "desktop")):
        ctx = browser.new_context(base_url=base, viewport={"width": width, "height": height})
        page = ctx.new_page()
        page.goto(f"/login?lang={lang}")
        page.locator("#username").fill("rad1")
        page.locator("#password").fill(PASSWORD)
        page.locator("#login-form button[type=submit]").click()
        page.wait_for_url(lambda url: "/login" not in url)
        for _ in range(1200):
            items = page.request.get(f"/api/v1/studies?accession={accession}").json()["items"]
            if items and items[0]["status"] == "ai_drafted":
                break
            page.wait_for_timeout(100)
        (study,) = items
        page.goto("/worklist")
        page.locator("#f-accession").fill(accession)
        page.wait_for_function(
            "(a) => { const r = document.querySelectorAll('#worklist tbody tr');"
            " return r.length === 1 && r[0].innerText.includes(a); }",
            arg=accession,
        )
        row = page.locator("#worklist tbody tr").first
        assert t["reason_stat"] in row.inner_text()
        page.screenshot(path=str(shots / f"hl7-worklist-{lang}-{kind}.png"), full_page=True)
        page.goto(f"/studies/{study['id']}")
        facts = page.locator("#study-facts")
        facts.wait_for(state="visible")
        assert page.locator("#study-facts dd[data-field=question]").inner_text() == QUESTION
        order = page.locator("#study-facts dd[data-field=order]").inner_text()
        assert order == f"{t['order_priority_S']} · Dr. MEHMET ÖZTÜRK"
        why = page.locator("#study-urgent-why").inner_text()
        assert t["urgent_reason_stat"] in why and t["urgent_reason_question"] in why
        # the draft is in the node's language (Turkish) whatever the reader's screen is in
        for _ in range(300):  # the draft is filled in once the report has loaded
            if page.locator("#sec-technique").input_value():
                break
            page.wait_for_timeout(50)
        assert page.locator("#sec-technique").input_value().startswith(f"Klinik bilgi: {QUESTION}")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width
        page.screenshot(path=str(shots / f"hl7-study-{lang}-{kind}.png"), full_page=False)
        ctx.close()
