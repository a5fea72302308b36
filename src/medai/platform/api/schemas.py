"""Request and response bodies of the platform API (the OpenAPI document is built from
these, and the schemathesis tests hold the server to it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from medai.platform.access.roles import Role
from medai.platform.worklist.study_state import StudyStatus
from medai.server.inputs import StrictBody
from medai.server.schemas import Language

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
    full_name: str | None = None
    title: str | None = None


class ProfileIn(Strict):
    """An account's full name and title, as signed documents name the signer (null or "":
    none; the documents then name the user name). Bounds: ``accounts.FULL_NAME_MAX``,
    ``accounts.TITLE_MAX``, checked by ``accounts.check_profile``."""

    full_name: str | None = Field(None, max_length=200)
    title: str | None = Field(None, max_length=200)


class ProfileOut(BaseModel):
    username: str
    role: Role
    full_name: str | None
    title: str | None
    signs_as: str = Field(..., description="how signed documents name this account")


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

    # what ``accounts.check_username`` takes: letters, digits, '.', '_' or '-' (spaces around
    # are trimmed), so that a name the schema allows is never refused
    username: str = Field(..., min_length=1, max_length=64, pattern=r"^ *[\w.-]+ *$")
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
    full_name: str | None = None
    title: str | None = None
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
    code: Literal[
        "question_red_flag", "ai_finding", "ai_possible_finding", "ai_known_finding", "order_stat"
    ] = Field(
        description="the clinical question raised a red flag; the AI found an urgent label; "
        "the AI could not rule one out (an undecided candidate); the urgent label is known: "
        "the patient's signed prior holds it present (it does not rank the study first); the "
        "HL7 order came marked STAT"
    )
    label: str | None = Field(None, description="the urgent label (AI reasons)")
    rule: str | None = Field(
        None,
        description="question_red_flag: the red-flag rule that fired (triage's rule id; "
        "none for a study filed before rules were kept)",
    )
    name_tr: str | None = Field(None, description="the rule's name in Turkish")
    name_en: str | None = Field(None, description="the rule's name in English")


AiFilter = Literal["urgent", "undecided", "conflict", "out_of_scope", "none"]


class UrgentFinding(BaseModel):
    label: str
    state: Literal["present", "indeterminate"] = Field(
        description="decided present, or left among the undecided candidates"
    )
    probability: float | None = None


class ReadingAi(BaseModel):
    """The worklist's AI column (``platform.worklist.reading_order``): what the AI found, as a
    suggestion."""

    state: Literal["none", "pending", "finding", "normal", "undecided", "conflict", "refused"] = (
        Field(
            description="none: no AI result (no model, failed); pending: being analysed; "
            "finding / normal: a decision (normal: none of the model's findings); undecided: "
            "the AI could not decide between its candidates; conflict: see ``conflict``; "
            "refused: the AI refused the image"
        )
    )
    primary: str | None = Field(None, description="the leading decided finding (label)")
    probability: float | None = Field(None, description="the primary finding's probability")
    others: list[str] = Field(
        default_factory=list, description="the other findings a report states"
    )
    low_confidence: bool = False
    candidates: list[str] = Field(
        default_factory=list, description="undecided: the labels it could not separate"
    )
    conflict: list[Literal["self", "reading", "identity"]] = Field(
        default_factory=list,
        description="self: the normal label and a finding both passed; reading: the newest "
        "reading decided otherwise than the one before; identity: an open identity conflict",
    )
    conflict_labels: list[str] = Field(default_factory=list)
    urgent: list[UrgentFinding] = Field(
        default_factory=list, description="the task's urgent labels the AI did not rule out"
    )
    out_of_scope: bool = Field(False, description="the image is unlike the model's training")
    out_of_scope_reason: str | None = None
    refusal: str | None = Field(None, description="refused: the refusal's code")


class RedFlagRule(BaseModel):
    id: str
    name_tr: str | None = None
    name_en: str | None = None


class ReadingRequest(BaseModel):
    red_flag: bool = Field(description="the clinical question raised a red flag")
    rules: list[RedFlagRule] = Field(
        default_factory=list, description="the red-flag rules that fired (may be unknown)"
    )
    stat: bool = Field(False, description="the HL7 order came marked STAT: ranked with a red flag")


class OrderOut(BaseModel):
    """The HL7 order applied to the study (``intake.orders``)."""

    accession: str
    priority: Literal["S", "A", "R", "P", "C", "T"] | None = Field(
        description="HL7 table 0027: S stat, A asap, R routine, P pre-op, C callback, T timing "
        "critical; null when the order gave none"
    )
    ordering_physician: str | None = Field(description="ORC-12 (or OBR-16), as a name")
    sender: str = Field(description="MSH-3^MSH-4 of the message that carried it")
    message_type: str
    received_at: str


class Reading(BaseModel):
    """Why a worklist row is where it is, each reason apart."""

    rank: Literal["ai_urgent", "red_flag", "rest"] = Field(
        description="ai_urgent: an urgent AI finding (first); red_flag: a red flag in the "
        "clinical question (next); rest: oldest first. A signed study is in the rest, and so "
        "is one whose urgent findings are all known"
    )
    known: list[str] = Field(
        default_factory=list,
        description="urgent findings the patient's signed prior already holds present "
        '("bilinen"): known, not new, they do not rank the study first',
    )
    ai: ReadingAi
    request: ReadingRequest


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


class PatientContextOut(BaseModel):
    """The patient's sex and age at the study date (``platform.worklist.patient_context``)."""

    sex: Literal["M", "F", "O"] | None = Field(None, description="DICOM PatientSex; null unknown")
    birth_date: str | None = Field(None, description="YYYY-MM-DD; null unknown")
    age_years: int | None = Field(None, description="whole years at the study date")
    age_months: int | None = Field(None, description="whole months, under two years only")
    on: str | None = Field(None, description="the day the age is counted to (YYYY-MM-DD)")


class PriorOut(BaseModel):
    """A prior study of the same patient (matched by the keyed PatientID hash or the same
    pseudonymous reference, never by name), newest first."""

    id: int
    task: str
    modality: str
    status: str
    study_uid: str | None = Field(
        None, description="its StudyInstanceUID (DICOM studies): the viewer opens it beside"
    )
    study_date: str | None = Field(None, description="YYYY-MM-DD: the DICOM StudyDate, else filed")
    signed: bool
    signed_at: str | None = None
    impression: str | None = Field(
        None, description="the impression of its latest signed report; null when unsigned"
    )


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
    patient: PatientContextOut | None = Field(
        None, description="the patient's sex, birth date and age at the study date"
    )
    priors: list[PriorOut] | None = Field(
        None,
        description="the same patient's earlier studies, newest first (the study itself only; "
        "null in lists)",
    )
    reread: dict[str, Any] | None = Field(
        None,
        description=(
            "the AI read the study again after its report was made (images arrived late, or "
            "`retask`: a person asked for another type) and the report was kept, signed or "
            "edited by a person: `signed`, `at`, `instances`, `retask`; null otherwise"
        ),
    )
    reading: Reading | None = Field(
        None, description="worklist rows: the reading order's reasons (AI and request)"
    )
    order: OrderOut | None = Field(
        None,
        description="the HL7 order (ORM^O01 / OMI^O23) matched to the study by accession: "
        "its priority, ordering physician and sender (the study page; null in lists and "
        "without one)",
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
    ai_note: list[str] = Field(
        default_factory=list,
        description="the AI note of the draft the report was made from: the AI's account of "
        "itself (its scope, what it read, why it did not decide, likelihoods, sources, the "
        "model), shown beside the editor and never part of the report's text",
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
    measurements: str = Field("", max_length=20_000)
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
            "AI finding, added a missing one or decided one the AI left undecided (each of those "
            "must be decided, else 409 undecided_labels); every other label is the AI's decided "
            "state (or the previous signature's), endorsed by signing, never read from the text. "
            "Stored with the signed version as the study's labels"
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
    study_id: int | None = Field(None, description="the study the event concerns, if any")
    target_name: str | None = Field(
        None, description="the user name or kiosk name a user or kiosk target has"
    )


class AuditList(BaseModel):
    items: list[AuditOut]
    total: int = Field(..., description="events matching the filters (up to until_id)")
    order: Literal["desc", "asc"] = "asc"
    limit: int | None = None
    offset: int = 0
    until_id: int | None = Field(
        None,
        description="the newest event counted: pass it back with the next offset so the pages "
        "stay put while new events arrive",
    )


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
