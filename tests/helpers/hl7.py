"""HL7 v2 orders as a RIS's interface engine sends them over MLLP (a TCP socket framing each
message with 0x0B … 0x1C 0x0D, the ACK read back): the messages and the client the order tests
share."""

from __future__ import annotations

import socket
import ssl
import uuid

ACUTE = "Bugün yeni gelişen sağ hemiparezi ve konuşma bozukluğu"
CALM = "Kronik öksürük, kontrol grafisi"
START, END = b"\x0b", b"\x1c\x0d"


def orm(
    accession: str,
    question: str,
    *,
    patient: str = "P-1",
    priority: str = "R",
    control: str = "NW",
    sender: str = "RIS^HASTANE",
    msg_id: str | None = None,
    charset: str = "UNICODE UTF-8",
) -> str:
    """An ORM^O01 as a RIS sends it (IHE SWF: the accession in OBR-18, the question in
    OBR-31, the priority in ORC-7.6, the ordering physician in ORC-12)."""
    app, facility = sender.split("^")
    return "\r".join(
        [
            f"MSH|^~\\&|{app}|{facility}|MEDAI|RADYOLOJI|20261128101500||ORM^O01^ORM_O01|"
            f"{msg_id or uuid.uuid4().hex[:16]}|P|2.5.1|||AL|NE||{charset}",
            f"PID|1||{patient}^^^HASTANE^MR||YILMAZ^AYŞE||19700101|F",
            "PV1|1|E",
            f"ORC|{control}|PL-{accession}|{accession}||SC||^^^^^{priority}||20261128101400|||"
            "1234^ÖZTÜRK^MEHMET^^^Dr.",
            f"OBR|1|PL-{accession}|{accession}|71020^Akciğer grafisi PA^L|||20261128101400|||||"
            f"||||1234^ÖZTÜRK^MEHMET^^^Dr.||{accession}|RP-1||||||||||||^{question}",
        ]
    )


def omi(accession: str, question: str, *, patient: str = "P-1", priority: str = "S") -> str:
    """An OMI^O23 (2.5: the accession in IPC-1, the priority in TQ1-9)."""
    return "\r".join(
        [
            f"MSH|^~\\&|RIS|HASTANE|MEDAI|RADYOLOJI|20261128101500||OMI^O23^OMI_O23|"
            f"{uuid.uuid4().hex[:16]}|P|2.5.1|||AL|NE||UNICODE UTF-8",
            f"PID|1||{patient}^^^HASTANE^MR||YILMAZ^AYŞE||19700101|F",
            "ORC|NW|PL-9|F-9||SC||||20261128101400|||5678^KAYA^ZEYNEP^^^Uzm. Dr.",
            f"TQ1|1||||||||{priority}",
            f"OBR|1|PL-9|F-9|70551^Beyin MR^L|||20261128101400||||||{question}",
            f"IPC|{accession}|RP-9|1.2.3.4.5|SPS-9",
        ]
    )


def send(
    port: int, message: str, encoding: str = "utf-8", tls: ssl.SSLContext | None = None
) -> dict[str, str]:
    """Send one framed message over MLLP (over TLS with ``tls``) and read its ACK: MSA-1,
    MSA-2, MSA-3."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        sock = tls.wrap_socket(raw, server_hostname="localhost") if tls is not None else raw
        sock.sendall(START + message.encode(encoding) + END)
        buf = b""
        while END not in buf:
            chunk = sock.recv(65536)
            assert chunk, "the listener closed the connection without an ACK"
            buf += chunk
    text = buf[buf.index(START) + 1 : buf.index(END)].decode()
    msa = next(s for s in text.split("\r") if s.startswith("MSA")).split("|")
    return {"code": msa[1], "control": msa[2], "text": msa[3] if len(msa) > 3 else ""}
