"""``medai outbox``: where AI results and signed reports went (PACS, FHIR, HL7), the delivery
loop on its own, and a retry of a failed delivery."""

from __future__ import annotations

from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _error
from medai.cli.operations import open_database, platform_or_exit
from medai.platform.access import audit
from medai.platform.delivery import outbox
from medai.platform.delivery.delivery import DeliveryLoop
from medai.platform.records.db import utcnow
from medai.server.logs import log_config
from medai.settings import get_settings

outbox_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


def _settings(as_json: bool):

    try:
        return get_settings()
    except ValueError as exc:  # a wrong destination variable or file
        _error(str(exc), "ValueError", as_json, 2)


def _text(dests: list[dict]) -> str:
    if not dests:
        return (
            "no destinations (set MEDAI_DICOM_SEND_TO, MEDAI_DICOMWEB_URL, MEDAI_FHIR_URL, "
            "MEDAI_HL7_MLLP or MEDAI_DESTINATIONS_FILE)"
        )
    lines = []
    for d in dests:
        c = d["counts"]
        lines.append(f"{d['name']:<12} {d['kind'] or '(not configured)':<9} {d['where'] or ''}")
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in c.items()))
        if d["next_attempt_at"] and c["retrying"]:
            lines.append(f"  next attempt {d['next_attempt_at']}")
        if d["last_problem"]:
            p = d["last_problem"]
            lines.append(
                f"  last problem: delivery {p['id']} {p['state']}: {p['code']} ({p['reason']})"
            )
    return "\n".join(lines)


@outbox_app.command("status")
def status(
    failed: Annotated[
        bool, typer.Option("--failed", help="Also list the failed deliveries (ids to retry).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Per destination: deliveries queued, retrying (and the next attempt), being sent,
    delivered, failed (with the reason) and skipped. No patient data."""

    settings = _settings(as_json)
    db = open_database(as_json)
    with db.reader() as s:
        dests = outbox.summary(s, settings.destinations())
        rows = (
            [outbox.as_dict(r) for r in outbox.items(s, state="failed", limit=1000)[0]]
            if failed
            else None
        )
    db.dispose()
    out = {"destinations": dests, **({"failed": rows} if rows is not None else {})}
    text = _text(dests)
    if rows:
        text += "\nfailed:\n" + "\n".join(
            f"  {r['id']:>6}  {r['destination']:<12} {r['event']:<8} study {r['study_id']} "
            f"{r['code']}: {r['reason']}"
            for r in rows
        )
    _emit(out, as_json, text)


@outbox_app.command("retry")
def retry(
    item_id: Annotated[int, typer.Argument(help="The failed delivery's id.")],
    as_json: JsonFlag = False,
) -> None:
    """Send a failed delivery again (a running loop picks it up at once)."""

    db = open_database(as_json)
    try:
        with db.session() as s:
            out = outbox.retry_by(s, item_id, utcnow(), audit.Actor("cli"))
    except outbox.OutboxError as exc:
        _error(str(exc), exc.code, as_json, 2)
    finally:
        db.dispose()
    _emit(out, as_json, f"delivery {item_id} to {out['destination']} queued again")


@outbox_app.command("run")
def run(
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, max=16, help="Delivery threads (default MEDAI_OUTBOX_THREADS, at least 1)."
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Deliver the outbox until stopped (Ctrl-C, SIGTERM), beside or instead of the loop in
    `medai serve` (MEDAI_OUTBOX_THREADS=0 there): same database (MEDAI_DATABASE_URL) and files
    (MEDAI_HOME). Several may run at once; each delivery is claimed by one."""
    import logging.config
    import signal
    import sys
    import threading

    settings = _settings(as_json)
    logging.config.dictConfig(log_config(settings.general.log_level))
    if not settings.destinations():
        _error(
            "no destinations configured (MEDAI_DICOM_SEND_TO, MEDAI_DICOMWEB_URL, "
            "MEDAI_FHIR_URL, MEDAI_HL7_MLLP, MEDAI_DESTINATIONS_FILE)",
            "ValueError",
            as_json,
            2,
        )
    p = platform_or_exit(as_json)
    loop = DeliveryLoop.from_settings(p, threads=threads or max(settings.outbox.outbox_threads, 1))
    if once:
        counts = loop.run_once()
        p.db.dispose()
        _emit(
            {"delivered": counts.get("delivered", 0), "outcomes": counts},
            as_json,
            ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing due",
        )
        return
    loop.start()
    _emit(
        {"running": True, "destinations": sorted(loop.destinations), "threads": loop.threads},
        as_json,
        f"delivering to {', '.join(sorted(loop.destinations))} ({loop.threads} thread(s))",
    )
    sys.stdout.flush()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    loop.stop()
    p.db.dispose()
