"""The roles and what each may do: one table of actions (``PERMISSIONS``) every face checks
(``allowed``); a wrong role lists the valid ones."""

from __future__ import annotations

from typing import Literal, get_args

from medai.platform.access.account_errors import AccountError

# written once: the API's schemas take the type, every check the tuple
Role = Literal["admin", "radiologist", "clinician", "patient"]
ROLES: tuple[str, ...] = get_args(Role)


CLINICAL = frozenset({"radiologist", "clinician"})


ADMIN = frozenset({"admin"})


PERMISSIONS: dict[str, frozenset[str]] = {
    "triage": frozenset(ROLES),
    "triage_history": frozenset(ROLES),  # each user's own
    "imaging": CLINICAL,  # the stateless predict / heatmap / draft endpoints
    "study_upload": CLINICAL,
    # analyse a study again as another type (platform.reading.reanalysis): who may upload it again
    "study_reanalyse": CLINICAL,
    "study_read": CLINICAL,
    "report_edit": frozenset({"radiologist"}),
    "report_sign": frozenset({"radiologist"}),
    "report_export": CLINICAL,
    "chat": CLINICAL,  # each user's own conversations
    "users_manage": frozenset({"admin"}),
    "kiosks_manage": frozenset({"admin"}),  # register, list, re-enrol, revoke kiosk devices
    "models_read": frozenset({"admin"}),
    # read a triage by its record number and record where the patient was actually sent
    "triage_outcome": CLINICAL,
    # register, shadow, promote, roll back and retire models (platform.lifecycle)
    "models_manage": frozenset({"admin"}),
    "audit_read": frozenset({"admin"}),
    "outbox_manage": frozenset({"admin"}),  # deliveries to PACS/FHIR/HL7: states, retry
    # the second person of the two-person rule (platform.access.approval): a new, reset or re-roled
    # clinical account reads no patient data until a radiologist (or the server's shell) says so
    "accounts_approve": frozenset({"radiologist"}),
    # identity conflicts (platform.dicom.identity_conflicts): a radiologist sees both identities and
    # decides; an admin sees that they exist and why, identities masked (no patient data)
    "conflicts_review": frozenset({"radiologist"}),
    "conflicts_view": frozenset({"admin"}),
    # retract a study filed under the wrong patient or order (platform.reading.retraction): the
    # radiologist who knows the images, never an admin (who reads no patient data)
    "study_retract": frozenset({"radiologist"}),
    # report templates and macros (reading.report_templates): read by those who write reports
    # (the macros of the study page); kept by an admin (listed, saved: versioned, audited).
    # Two actions, not one shared by both sides: an action held by a clinical role and an
    # admin would put admins under the two-person rule (``approval.GATED``)
    "templates_read": CLINICAL,
    "templates_manage": frozenset({"admin"}),
}


def allowed(role: str | None, action: str) -> bool:
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}; valid: {', '.join(PERMISSIONS)}")
    return role in PERMISSIONS[action]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    return role
