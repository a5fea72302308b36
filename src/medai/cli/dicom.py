"""``medai dicom``: the DICOM node on its own (``medai serve --dicom-port`` runs the same node
inside the API process)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _error
from medai.cli.operations import open_database
from medai.destinations_config import check_ae_title, check_http_url
from medai.platform.boot import open_platform
from medai.platform.dicom.deid import (
    Deidentifier,
    DeidError,
    deidentify_files,
    pseudonym_of,
    site_secret,
)
from medai.platform.intake.dicom_node import DicomNode, server_tls_from_settings
from medai.platform.intake.dicomweb_pull import Puller, PullError
from medai.platform.jobs.queue import analysis_dispatch
from medai.platform.ops.metrics import CertificateWatch
from medai.server.logs import log_config
from medai.settings import check_allow_list, get_settings

dicom_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


@dicom_app.command("listen")
def listen(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default MEDAI_DICOM_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port (default MEDAI_DICOM_PORT, 11112; 0: a free one, printed)."
        ),
    ] = None,
    ae_title: Annotated[
        str | None,
        typer.Option(
            "--ae-title",
            help="This node's AE title; senders must call it (default "
            "MEDAI_DICOM_AE_TITLE, MEDAI).",
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="A calling AE title allowed to send (repeat for several; default "
            "MEDAI_DICOM_ALLOW). Associations from any other are rejected; with none "
            "given or configured, every association is rejected (the log says why). "
            "'*' alone: any caller that can reach the port (a test bench).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer C-ECHO and C-STORE until stopped (Ctrl-C, SIGTERM). Received studies go to the
    same database and files as `medai serve` (MEDAI_DATABASE_URL, MEDAI_HOME): they show in
    the worklist, are routed to the model that reads them (CR/DX chest → cxr, MR brain → mri;
    anything else is kept as 'no model') and analysed by this process's job threads
    (MEDAI_JOB_THREADS; 0: by a `medai serve` on the same database) or by Celery workers
    when MEDAI_BROKER_URL is set."""
    import logging.config
    import signal
    import threading

    settings = get_settings()
    logging.config.dictConfig(log_config(settings.general.log_level))
    try:
        title = check_ae_title(ae_title or settings.dicom.dicom_ae_title)
        allowed = check_allow_list(allow or settings.dicom.dicom_allow)
    except ValueError as exc:
        _error(str(exc), "ValueError", as_json, 2)

    open_database(as_json).dispose()  # migrated, or exit 2 naming the revisions
    p = open_platform(settings=settings)

    try:  # a TLS setting the node cannot honour stops it here, never falls back to plain
        tls = server_tls_from_settings(settings.dicom) or False
    except (OSError, ValueError) as exc:
        _error(
            f"cannot load the DICOM TLS certificate or key (MEDAI_DICOM_TLS_CERT, "
            f"MEDAI_DICOM_TLS_KEY, MEDAI_DICOM_TLS_CA): {type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or exc}",
            "TLSError",
            as_json,
            2,
        )
    dispatch, stop_jobs = analysis_dispatch(p)
    node = DicomNode(
        p,
        dispatch,
        ae_title=title,
        host=host or settings.dicom.dicom_host,
        port=settings.dicom.dicom_port if port is None else port,
        allow=allowed,
        tls=tls,
    )
    try:
        node.start()
    except OSError as exc:  # the port is taken or not ours to bind
        stop_jobs()
        _error(
            f"cannot listen on {node.host}:{node.port}: {exc.strerror or exc}",
            "OSError",
            as_json,
            1,
        )

    CertificateWatch.from_settings(settings).check()  # a TLS certificate near its end: in the log
    analysis = (
        "celery"
        if settings.storage.broker_url
        else "threads"
        if settings.serving.job_threads > 0
        else "medai serve"
    )
    callers = (
        "any calling AE title"
        if node.any_caller
        else "from " + ", ".join(node.allow)
        if node.allow
        else "no calling AE title allowed: every association is refused"
    )
    _emit(
        {
            "listening": True,
            "ae_title": node.ae_title,
            "host": node.host,
            "port": node.port,
            "allow": list(node.allow),
            "tls": node.tls is not None,
            "analysis": analysis,
        },
        as_json,
        f"DICOM node {node.ae_title} listening on {node.host}:{node.port} "
        f"({callers}; {'DICOM TLS' if node.tls is not None else 'plain DICOM'}; "
        f"analysis by {analysis})",
    )
    import sys

    sys.stdout.flush()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    node.stop()
    stop_jobs()
    p.db.dispose()


@dicom_app.command("pull")
def pull(
    url: Annotated[
        str | None,
        typer.Option(help="The PACS's DICOMweb base URL (default MEDAI_DICOMWEB_PULL_URL)."),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            min=5, help="Pull again every this many seconds until stopped (default: once)."
        ),
    ] = None,
    lookback_days: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=3650,
            help="Ask for the studies of this many days back (default "
            "MEDAI_DICOMWEB_PULL_LOOKBACK_DAYS, 1).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fetch the studies medai does not hold yet from a PACS over DICOMweb (QIDO-RS finds
    them, WADO-RS fetches only the instances not stored yet) and file them like received
    ones: routed and queued for analysis. Once (the default) prints what it did and leaves
    the analyses to `medai serve` or the Celery workers; with --every it keeps pulling until
    Ctrl-C / SIGTERM and analyses with its own job threads (MEDAI_JOB_THREADS) or Celery."""
    import signal
    import threading

    settings = get_settings()
    target = url or settings.dicom.dicomweb_pull_url
    if not target:
        _error("give --url or set MEDAI_DICOMWEB_PULL_URL", "ValueError", as_json, 2)
    try:
        check_http_url(target)
    except ValueError as exc:
        _error(str(exc), "ValueError", as_json, 2)

    open_database(as_json).dispose()  # the keys open the site's data (or exit 3), migrated
    p = open_platform()
    days = settings.dicom.dicomweb_pull_lookback_days if lookback_days is None else lookback_days
    try:
        if every is None:  # the analyses stay queued for `medai serve` or the workers
            try:
                report = Puller(p, target, None, lookback_days=days).pull()
            except PullError as exc:
                _error(f"the PACS could not be asked: {exc}", "PullError", as_json, 1, exc.code)
            _emit(
                report.as_dict(),
                as_json,
                f"{report.studies} studies; fetched {report.fetched} new instances, "
                f"{report.known} already held, refused {sum(report.refused.values())}; "
                f"{len(set(report.queued))} analyses queued",
            )
            return
        dispatch, stop_jobs = analysis_dispatch(p)
        puller = Puller(p, target, dispatch, every_s=every, lookback_days=days).start()
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
        puller.stop()
        stop_jobs()
    finally:
        p.db.dispose()


@dicom_app.command("deidentify")
def deidentify(
    sources: Annotated[
        list[Path],
        typer.Argument(exists=True, help="DICOM files or folders (searched recursively)."),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for the de-identified files (created; never inside "
            "MEDAI_HOME's blob store).",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Write de-identified copies (DICOM PS3.15 Basic Application Level Confidentiality
    Profile) for training or for leaving the hospital, each named by its new SOP Instance UID.
    UIDs and the PatientID are replaced by HMACs under this site's secret: the same study
    exported twice gets the same pseudonymous UIDs, and nothing in the output (or beside it)
    maps them back; `medai dicom pseudonym` checks a patient's pseudonym inside medai."""
    settings = get_settings()
    try:
        report = deidentify_files(
            list(sources),
            out,
            Deidentifier(site_secret()),
            forbidden=settings.storage.home / "blobs",
        )
    except DeidError as exc:
        _error(str(exc), "DeidError", as_json, 2, exc.code)
    _emit(
        report,
        as_json,
        f"{report['written']} instances of {report['studies']} studies "
        f"de-identified into {report['out']}"
        + (f"; {report['skipped']} non-DICOM files skipped" if report["skipped"] else "")
        + (
            f"; {report['burned_in']} with burned-in annotation left out"
            if report["burned_in"]
            else ""
        ),
    )


@dicom_app.command("pseudonym")
def pseudonym(
    patient_id: Annotated[str, typer.Argument(help="The hospital's PatientID.")],
    as_json: JsonFlag = False,
) -> None:
    """The pseudonym this site's de-identified exports give a patient: re-identification is
    this check, made inside medai with its key, never a table shipped with an export."""
    value = pseudonym_of(patient_id)
    _emit({"pseudonym": value}, as_json, value)
