"""One error vocabulary: ``MedaiError`` (a ``code`` and, where the API answers with it, an
HTTP ``status``) and ``CODES``, the one table of every code the server, the CLI's ``--json``
output and the job results use, with the line that documents it (the OpenAPI ``ErrorOut``
description is generated from it: ``codes_doc``).

An exception class keeps its standard base beside ``MedaiError`` (``class
AccountError(MedaiError, ValueError)``): ``except ValueError`` callers and the CLI's exit
codes are unchanged. ``status`` comes from the class or the instance, never from the code
(``no_site_set`` is a 409 on a refused promotion, a 422 on a job). A class with
``status = None`` is not an answer of the API: the kernel's handler re-raises it and the
client gets the plain 500 ``internal`` (its message, which may hold patient text, is never
sent). Imports nothing from medai: every layer may use it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    status: int | None
    """The HTTP status it is sent with; None: never an HTTP answer (CLI ``--json``, jobs)."""
    text: str
    """One line: what it means (the OpenAPI ``ErrorOut`` docs, ``medai … --json``)."""
    also: tuple[int, ...] = ()
    """Other statuses it is sent with (``image_too_large``: 413 on an upload)."""


CODES: dict[str, Code] = {
    # 400
    "bad_request": Code(400, "a body that is not parseable, a bad Content-Length or Host"),
    "invalid_idempotency_key": Code(
        400, "an Idempotency-Key that is not 1-128 printable ASCII characters"
    ),
    # 401
    "unauthenticated": Code(401, "not signed in, or a wrong user name or password"),
    "kiosk_unknown": Code(401, "a kiosk credential that is unknown or was replaced"),
    "kiosk_revoked": Code(401, "a kiosk an administrator revoked"),
    # 403
    "forbidden": Code(403, "this role may not do this (or a missing CSRF token)"),
    "measurement_forbidden": Code(
        403, "only an account that may report files measurements (a TID 1500 SR over STOW-RS)"
    ),
    "measurement_unusable": Code(
        422, "a measurement report medai cannot file (no study held, or an image not its own)"
    ),
    "approval_pending": Code(403, "the account waits for a colleague's approval"),
    "approval_self": Code(403, "an account cannot approve itself"),
    "not_own_account": Code(
        403, "an account's full name and title are set by its own user (or an administrator)"
    ),
    # 404
    "not_found": Code(404, "no such item (an id beyond its range names nothing either)"),
    "enrol_code_invalid": Code(404, "an enrolment code that is unknown, used or expired"),
    # 405, 408
    "method_not_allowed": Code(405, "the path serves other methods (see Allow)"),
    "request_timeout": Code(408, "the request was not received in time"),
    # 409
    "conflict": Code(409, "the version named is no longer current, or already exists"),
    "retracted": Code(
        409, "the study was retracted (entered in error): nothing more is done or sent for it"
    ),
    "identity_conflict": Code(
        409, "a DICOM file naming another patient or order than the study it would join"
    ),
    "undecided_labels": Code(
        409,
        "a signature leaving labels the AI could not decide undecided: choose present or "
        "absent for each (listed in errors)",
    ),
    "contradictory_labels": Code(
        409,
        "a signature whose labels contradict each other (the normal label absent and no "
        "finding present, the normal label beside a finding, …): nothing is signed; errors "
        "name each contradiction (type) and its labels (loc)",
    ),
    "report_signed": Code(
        409,
        "the study's report is signed: it is not re-analysed as another type (amend the "
        "report, or retract the study)",
    ),
    "analysis_running": Code(409, "the study is being analysed: retry once its analysis ends"),
    "internal_account": Code(409, "an account medai itself files studies under"),
    "last_admin": Code(409, "the only active administrator cannot be disabled"),
    "not_pending": Code(409, "the account is not waiting for approval"),
    "not_enrolled": Code(409, "the account's holder has not enrolled yet: approve after that"),
    "state_conflict": Code(409, "the model's state does not allow this move"),
    "not_served": Code(409, "a task the model registry does not serve"),
    "already_registered": Code(409, "these model files are registered already"),
    "version_taken": Code(409, "another model is registered under this task, name and version"),
    "no_rollback_target": Code(409, "no earlier active model to roll back to"),
    "rollback_target_changed": Code(409, "the rollback target is no longer the one confirmed"),
    "empty_site_set": Code(409, "a site set with no study"),
    "no_site_set": Code(
        409, "no site evaluation set for the task yet (422 in a job result)", also=(422,)
    ),
    "not_validated": Code(409, "the candidate was not validated on the site set"),
    "validation_inconclusive": Code(409, "the site validation was inconclusive"),
    "not_non_inferior": Code(409, "the candidate was not non-inferior on the site set"),
    "job_running": Code(409, "a model job of this kind is running already"),
    # 413
    "too_large": Code(413, "the body or file is too large (checked while streaming)"),
    # 406
    "not_acceptable": Code(
        406,
        "the Accept header takes no media type or transfer syntax the object is stored in "
        "(DICOMweb frames are sent as stored, never transcoded)",
    ),
    # 415
    "unsupported_media_type": Code(415, "a media type the route does not read"),
    # 422
    "invalid": Code(422, "a field or input is invalid (errors name the fields)"),
    "unusable_image": Code(422, "an image that cannot be read"),
    "image_refused": Code(422, "a readable image of the wrong kind for the model"),
    "image_too_large": Code(
        422, "an image whose header declares too many pixels (413 on an upload)", also=(413,)
    ),
    "weak_password": Code(422, "a password too weak to set (errors say why)"),
    "role_conflict": Code(422, "a role change across the administrative and clinical sides"),
    "invalid_dicom_attribute": Code(422, "a DICOM attribute that breaks its VR (errors name it)"),
    "idempotency_key_reused": Code(422, "an Idempotency-Key reused for another upload"),
    "path_not_allowed": Code(422, "a model path outside MEDAI_MODELS_DIR"),
    "model_refused": Code(422, "not a sealed model of the task"),
    "mlflow_unavailable": Code(422, "an MLflow run that cannot be fetched"),
    "job_refused": Code(422, "a model job that cannot be started as asked"),
    "invalid_labels": Code(422, "labels the study's task does not have"),
    # 429
    "throttled": Code(429, "too many requests (failed logins, anonymous triage); see Retry-After"),
    "kiosk_quota_exhausted": Code(429, "the kiosk's daily quota is used up; see Retry-After"),
    # 500
    "internal": Code(500, "an unexpected error (logged by type and place, never its message)"),
    # 503
    "unavailable": Code(503, "a model that cannot be loaded"),
    "overloaded": Code(503, "every inference slot is busy; see Retry-After"),
    "storage_read_only": Code(503, "the server's storage is read-only"),
    "storage_full": Code(503, "the server's storage is full"),
    "storage_denied": Code(503, "the server may not write its storage"),
    "storage_io_error": Code(503, "the server's storage failed to read or write"),
    "storage_unavailable": Code(503, "the server's storage cannot be opened"),
    "storage_missing": Code(503, "a stored file is missing from the server's storage"),
    "storage_undecryptable": Code(503, "a stored file cannot be decrypted with the keys"),
    "record_undecryptable": Code(503, "a stored record cannot be decrypted with the keys"),
    "keys_missing": Code(
        503, "the keys the site's data is sealed under are not configured (medai keys ids)"
    ),
    "database_busy": Code(503, "the database is busy"),
    "database_unavailable": Code(503, "the database cannot be reached"),
    "not_ready": Code(503, "readiness: a dependency is not ready"),
    "viewer_not_installed": Code(
        503, "the diagnostic viewer (OHIF) is not installed: `make viewer-deps`"
    ),
    "schema_behind": Code(503, "readiness: the database is not migrated yet (medai migrate)"),
    "schema_newer": Code(503, "readiness: a newer release migrated the database"),
    # never an HTTP answer: the CLI's --json output, job results, delivery rows, logs
    "error": Code(None, "an HTTP status without a code of its own"),
    "dataset": Code(None, "a training dataset that cannot be built"),
    "too_few_studies": Code(None, "too few signed studies to train on"),
    "training_cancelled": Code(None, "a training run cancelled"),
    "checkpoint_mismatch": Code(None, "a checkpoint that does not match the model or data"),
    "dicom_refused": Code(None, "a DICOM instance the node does not file"),
    "deid_refused": Code(None, "a DICOM object that cannot be de-identified"),
    "pull_failed": Code(None, "a DICOMweb pull that failed"),
    "send_failed": Code(None, "a send to a destination that failed"),
    "destination_unavailable": Code(
        None, "a destination (PACS, FHIR, HL7) that is down or asked to come back: retried"
    ),
    "destination_rejected": Code(
        None, "a destination (PACS, FHIR, HL7) that refused the message: a person must look"
    ),
    "cannot_build": Code(None, "a delivery whose message cannot be built: a person must look"),
    "delivery_error": Code(None, "a delivery that failed unexpectedly (logged by type): retried"),
    "no_ai_result": Code(None, "a delivery whose study has no AI result"),
    "no_dicom_identity": Code(None, "a delivery whose study's image is not DICOM"),
    "superseded": Code(None, "a delivery superseded by a newer one"),
    "nothing_sent": Code(None, "a rejection note for a PACS that was sent nothing to reject"),
    "backup_damaged": Code(None, "a backup whose files do not match its manifest"),
    "unsafe_file": Code(
        None,
        "a backup folder holding a symbolic link, FIFO, device or socket: refused unread",
    ),
    "manifest_forged": Code(None, "a backup whose manifest does not verify under the site's key"),
    "manifest_unauthenticated": Code(None, "a backup whose manifest carries no authentication"),
    "unlisted_files": Code(None, "a backup folder holding files its manifest does not list"),
    "destination_not_empty": Code(None, "a backup destination that is not empty"),
    "engine_mismatch": Code(None, "a backup of another database engine"),
    "files_missing": Code(None, "files the backup needs are missing"),
    "files_unreadable": Code(None, "a restored file the system cannot read (permissions, disk)"),
    "no_database": Code(None, "no database to back up"),
    "not_a_backup": Code(None, "not a medai backup"),
    "restore_mismatch": Code(None, "the restored data does not match the backup"),
    "target_missing": Code(None, "the restore target is missing"),
    "target_not_empty": Code(None, "the restore target is not empty"),
    "unknown_format": Code(None, "a backup format this release does not know"),
    "unsupported_database": Code(None, "a database backup does not support"),
    "pg_tool_failed": Code(None, "a PostgreSQL client program failed"),
    "pg_tool_missing": Code(None, "a PostgreSQL client program is missing"),
    "pg_tool_version": Code(None, "a PostgreSQL client program too old for the server"),
}

BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "throttled",
    503: "unavailable",
}
"""The code of a plain HTTP status (Starlette's own 404 or 405, say); ``error`` otherwise."""


def statuses(code: str) -> tuple[int, ...]:
    """The HTTP statuses ``code`` is sent with (none for a CLI-only code)."""
    entry = CODES[code]
    return (entry.status, *entry.also) if entry.status is not None else ()


def codes_doc() -> str:
    """Every code, grouped by the status it is sent with, then those never sent by the
    API: the OpenAPI ``ErrorOut.code`` description."""
    groups: dict[int, list[str]] = {}
    for name, entry in CODES.items():
        if entry.status is not None:
            groups.setdefault(entry.status, []).append(f"`{name}`: {entry.text}")
    parts = [f"{status}: " + "; ".join(lines) for status, lines in sorted(groups.items())]
    cli = ", ".join(f"`{name}`" for name, entry in CODES.items() if entry.status is None)
    return (
        "A machine code, one of: "
        + ". ".join(parts)
        + f". Never in an HTTP answer (`medai … --json` output and job results): {cli}."
    )


class MedaiError(Exception):
    """Base of medai's exceptions. ``code`` (a key of ``CODES``) names the reason; ``status``
    is the HTTP status the API answers with, None where it is no answer (the 500
    ``internal``). ``headers`` and ``errors`` go into the answer as they are."""

    code: str = "internal"
    status: int | None = None
    headers: dict[str, str] | None = None
    errors: list[dict] | None = None

    def __init__(self, *args: object, code: str | None = None, status: int | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code not in CODES:  # a typo fails at import
            raise TypeError(f"{cls.__name__}.code {code!r} is not in medai.core.errors.CODES")

    def public_detail(self) -> str:
        """What the answer's ``detail`` says (the message is written to be shown)."""
        return str(self)
