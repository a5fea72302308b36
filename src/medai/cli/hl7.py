"""``medai hl7``: the HL7 v2 order listener (ORM^O01 / OMI^O23 over MLLP)."""

from __future__ import annotations

from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _error
from medai.cli.operations import open_database
from medai.platform.boot import open_platform
from medai.platform.intake.dicom_node import server_tls_context
from medai.platform.intake.hl7_listener import Hl7Listener
from medai.server.logs import log_config
from medai.settings import check_hl7_senders, get_settings

hl7_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


@hl7_app.command("listen")
def listen(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default MEDAI_HL7_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port (default MEDAI_HL7_PORT, 2575; 0: a free one, printed)."
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="A sender whose orders are taken: APP (MSH-3) or APP^FACILITY (MSH-3^MSH-4); "
            "repeat for several (default MEDAI_HL7_ALLOW). Any other sender's message is "
            "answered AR; with none given or configured, every message is (the log says "
            "why). '*' alone: any sender (a test bench).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Take imaging orders until stopped (Ctrl-C, SIGTERM). Each order is kept, sealed, by
    its accession number and matched to the study of that accession whether the images came
    before it or come after: the study then shows the order's clinical question, priority
    and ordering physician, its red flags (and a STAT priority) rank it, and the AI's
    unsigned draft states the question. Same database as `medai serve` (MEDAI_DATABASE_URL)."""
    import logging.config
    import signal
    import ssl
    import sys
    import threading

    settings = get_settings()
    logging.config.dictConfig(log_config(settings.general.log_level))
    try:
        senders = check_hl7_senders(allow or settings.hl7.hl7_allow)
    except ValueError as exc:
        _error(str(exc), "ValueError", as_json, 2)

    open_database(as_json).dispose()  # migrated, or exit 2 naming the revisions
    h = settings.hl7
    try:  # a TLS setting it cannot honour stops it: never plain MLLP instead
        tls = (
            server_tls_context(h.hl7_tls_cert, h.hl7_tls_key, h.hl7_tls_ca)
            if h.hl7_tls_cert is not None and h.hl7_tls_key is not None
            else None
        )
    except (OSError, ssl.SSLError) as exc:
        _error(
            f"MEDAI_HL7_TLS_*: cannot load the certificate or key ({exc})", "SSLError", as_json, 2
        )
    p = open_platform(settings=settings)
    listener = Hl7Listener(
        p,
        host=host or settings.hl7.hl7_host,
        port=settings.hl7.hl7_port if port is None else port,
        allow=senders,
        max_connections=settings.hl7.hl7_max_connections,
        idle_s=settings.hl7.hl7_idle_s,
        tls=tls,
    )
    try:
        listener.start()
    except OSError as exc:
        _error(
            f"cannot listen on {listener.host}:{listener.port}: {exc.strerror or exc}",
            "OSError",
            as_json,
            1,
        )
    who = (
        "any sender"
        if "*" in senders
        else "from " + ", ".join(senders)
        if senders
        else "no sender allowed: every message is refused (AR)"
    )
    _emit(
        {
            "listening": True,
            "host": listener.host,
            "port": listener.port,
            "allow": list(senders),
            "tls": tls is not None,
            "mutual_tls": h.hl7_tls_ca is not None,
            "messages": ["ORM^O01", "OMI^O23"],
        },
        as_json,
        f"HL7 order listener on {listener.host}:{listener.port} "
        f"({'MLLP over TLS' if tls is not None else 'plain MLLP, no TLS'}; ORM^O01, OMI^O23; "
        f"{who})",
    )
    sys.stdout.flush()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    listener.stop()
    p.db.dispose()
