"""Request and response bodies of the platform API (the OpenAPI document is built from
these, and the schemathesis tests hold the server to it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from medai.server.inputs import StrictBody
from medai.server.schemas import Language

Role = Literal["admin", "radiologist", "clinician", "patient"]
StudyStatus = Literal[
    "received",
    "analysing",
    "ai_drafted",
    "preliminary",
    "final",
    "amended",
    "refused",
    "failed",
    "no_model",
    "entered_in_error",
]
ReportStatus = Literal["preliminary", "final", "amended"]


class Strict(StrictBody):
    """Request bodies: strict types, no unknown fields, no control characters."""


class LoginIn(Strict):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=1024)


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    role: Role
    expires_in: int
    csrf_token: str = Field(..., description="send as X-CSRF-Token with the session cookie")


class Me(BaseModel):
    id: int
    username: str
    role: Role
    via: str


class TokenIn(Strict):
    name: str = Field(..., min_length=1, max_length=64)
    days: float | None = Field(
        None, gt=0, le=366, allow_inf_nan=False, description="lifetime (default MEDAI_TOKEN_DAYS)"
    )


class TokenOut(BaseModel):
    id: int
    name: str | None
    kind: str
    created_at: str
    expires_at: str
    revoked: bool
    token: str | None = Field(None, description="shown once, when created")


class UserIn(Strict):
    """A new account. There is no password here: its user chooses one with the enrolment
    code this call returns (``POST /api/v1/auth/enrol``)."""

    username: str = Field(..., min_length=1, max_length=64)
    role: Role
    enrol_hours: float | None = Field(
        None,
        gt=0,
        le=336,
        allow_inf_nan=False,
        description="how long the enrolment code is valid (default 72 hours)",
    )


class UserOut(BaseModel):
    id: int
    username: str
    role: Role
    active: bool
    created_at: str
    enrolled: bool = Field(..., description="the user has chosen a password")
    enrol_code_expires_at: str | None = Field(
        None, description="an unused enrolment code is valid until then"
    )
    approval_pending: bool = Field(
        False,
        description="a clinical account not yet approved "
        "for patient data by a radiologist (two-person rule)",
    )
    internal: bool = Field(
        False,
        description="medai's own account (studies from the DICOM "
        "node are filed under it): nobody signs in as it",
    )


class UserIssued(UserOut):
    enrol_code: str = Field(
        ...,
        description="one-time enrolment code, shown once: give it "
        "to the user, who chooses their password with it",
    )


class ResetIn(Strict):
    enrol_hours: float | None = Field(None, gt=0, le=336, allow_inf_nan=False)


class RoleIn(Strict):
    role: Role


class EnrolIn(Strict):
    code: str = Field(..., min_length=1, max_length=64)
    password: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        description=(
            "at least 8 characters, not a common or breached password, not built from the "
            "user name (refused with 422 code weak_password; errors[0].type says why)"
        ),
    )


class EnrolOut(BaseModel):
    username: str
    role: Role


class PendingOut(BaseModel):
    """An account awaiting approval for patient data: its name, role and whether its holder
    has enrolled (chosen a password); only an enrolled account can be approved."""

    username: str
    role: Role
    enrolled: bool


class RoleGrantOut(BaseModel):
    """One role granted (``grant``: a new account), changed (``change``), approved for patient
    data (``approve``) or any of these refused (outcome ``denied``), from the audit log."""

    at: str
    by: str
    by_role: str | None
    user_id: str | None
    username: str | None
    op: str
    role: str | None
    before: str | None
    outcome: str


class RoleGrantList(BaseModel):
    items: list[RoleGrantOut]
    total: int


class OkOut(BaseModel):
    ok: bool = True


class DicomInstanceOut(BaseModel):
    sop_uid: str
    sop_class: str
    number: int | None


class DicomSeriesOut(BaseModel):
    series_uid: str
    modality: str | None
    view_position: str | None
    body_part: str | None
    series_description: str | None
    series_number: int | None
    instances: list[DicomInstanceOut]


class DicomOut(BaseModel):
    """The study's DICOM identity (patient, order, study) and the series the AI reads;
    ``series`` is left out of worklist rows."""

    patient_id: str | None
    patient_name: str | None = Field(description="DICOM person name (Family^Given^…)")
    accession: str | None
    study_uid: str | None
    study_date: str | None = Field(description="YYYYMMDD")
    source: Literal["upload", "dicom"]
    series_uid: str | None
    sop_uid: str | None
    sop_class: str | None
    modality: str | None
    view_position: str | None
    body_part: str | None
    series_description: str | None
    series_number: int | None
    instances: int
    series: list[DicomSeriesOut] | None = None


class UrgentReason(BaseModel):
    code: Literal["question_red_flag", "ai_finding", "ai_possible_finding"] = Field(
        description="the clinical question raised a red flag; the AI found an urgent label; "
        "the AI could not rule one out (an undecided candidate)"
    )
    label: str | None = Field(None, description="the urgent label (AI reasons)")


class RetractIn(Strict):
    """Retract a study as entered in error (IHE Imaging Object Change Management)."""

    reason: Literal["wrong_patient", "wrong_study", "safety"] = Field(
        ...,
        description=(
            "wrong_patient / wrong_study: filed under the wrong patient or order (the PACS "
            "gets 113038 Incorrect Modality Worklist Entry); safety: withdrawn for patient "
            "safety (113037 Rejected for Patient Safety Reasons)"
        ),
    )
    note: str = Field(
        "",
        max_length=2000,
        description="why, in the radiologist's words (sealed at rest; never sent anywhere)",
    )


class RetractionOut(BaseModel):
    reason: Literal["wrong_patient", "wrong_study", "safety"]
    note: str | None = Field(None, description="the radiologist's note")
    by: str | None = Field(None, description="the radiologist who retracted it")
    at: str
    previous_status: str


class StudyOut(BaseModel):
    id: int
    status: StudyStatus
    task: str
    modality: str
    urgent: bool
    urgent_because: list[UrgentReason] = Field(
        default_factory=list,
        description=(
            "why the study is urgent (empty: not urgent, or marked so before reasons were kept)"
        ),
    )
    reason: str | None
    patient_ref: str | None
    clinical_question: str | None
    language: str
    file: dict[str, Any]
    uploaded_by: int
    identity_conflicts: list[int] = Field(
        default_factory=list,
        description=(
            "open identity conflicts naming this study: an instance of another patient or order "
            "was quarantined; nothing of the study is exported or delivered until they are "
            "decided"
        ),
    )
    created_at: str
    updated_at: str
    ai_result: dict[str, Any] | None = None
    dicom: DicomOut | None = Field(None, description="the DICOM identity (DICOM studies only)")
    retraction: RetractionOut | None = Field(
        None,
        description=(
            "who retracted the study as entered in error, when and why (status "
            "entered_in_error); null otherwise"
        ),
    )


class StudyList(BaseModel):
    items: list[StudyOut]
    total: int
    limit: int
    offset: int


class ReportOut(BaseModel):
    study_id: int
    version: int
    status: ReportStatus
    source: Literal["ai", "human"]
    sections: dict[str, str]
    citations: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    author: str | None
    signed_by: str | None
    signed_at: str | None
    created_at: str
    created_at_local: str | None = Field(
        None, description="created_at in MEDAI_TIMEZONE, as the report's language writes dates"
    )
    signed_at_local: str | None = None
    ai_assisted: bool = True
    ai_edited: bool | None = Field(
        None,
        description="whether this version's text differs "
        "from the AI draft (null: the report has no AI draft)",
    )
    ai_disclosure: str = Field(
        description="how the text was made, in the report's language "
        "(the sentence the PDF, FHIR, HL7 and DICOM SR carry)"
    )


class ReportVersionOut(ReportOut):
    compare_to: int | None = Field(
        None,
        description=(
            "the version this one's differences are read against: for a signed version the "
            "previous signed one (the first signed: version 1), else the version before it"
        ),
    )


class ReportVersions(BaseModel):
    items: list[ReportVersionOut]


LabelName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Sections(Strict):
    technique: str = Field("", max_length=20_000)
    findings: str = Field("", max_length=20_000)
    impression: str = Field("", max_length=20_000)
    recommendation: str = Field("", max_length=20_000)


class ReportEdit(Strict):
    version: int = Field(..., ge=0, le=1_000_000)
    sections: Sections


class SignIn(Strict):
    version: int = Field(
        ...,
        ge=0,
        le=1_000_000,
        description=("the version on screen (0 with `sections`: a first report written by hand)"),
    )
    sections: Sections | None = Field(
        None,
        description=(
            "the text on the signer's screen; when it differs from `version`, it is saved as a "
            "new version and that version is signed, in one transaction"
        ),
    )
    labels: dict[LabelName, bool] | None = Field(
        None,
        max_length=64,
        description=(
            "the signer's verdict per label (true: present), where they confirmed or rejected an "
            "AI finding or added a missing one; every other label of the study is taken from the "
            "signed text. Stored with the signed version as the study's labels"
        ),
    )


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    actor_id: int | None
    role: str | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    client: str | None
    detail: dict[str, Any]


class AuditList(BaseModel):
    items: list[AuditOut]
    total: int


class ChatIn(Strict):
    text: str = Field(..., min_length=1, max_length=4000)
    lang: Language | None = Field(
        None,
        description="the language to answer in (the reader's; "
        "default: the study's report language)",
    )


class MessageOut(BaseModel):
    id: int
    role: Literal["user", "assistant"]
    text: str
    backend: str | None
    created_at: str


class ConversationOut(BaseModel):
    id: int
    study_id: int
    created_at: str
    messages: list[MessageOut] = Field(default_factory=list)


class ConversationList(BaseModel):
    items: list[ConversationOut]


class TriageHistoryItem(BaseModel):
    id: int
    complaint: str
    urgent: bool
    result: dict[str, Any]
    created_at: str


class TriageHistory(BaseModel):
    items: list[TriageHistoryItem]
    total: int
