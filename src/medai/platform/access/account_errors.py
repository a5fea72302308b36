"""What an account change refuses, each a named error with its HTTP status and code (a wrong
role lists the valid ones; a weak password says which rule it failed)."""

from __future__ import annotations

from medai.core.errors import MedaiError
from medai.platform.access import passwords


class AccountError(MedaiError, ValueError):
    """A request about accounts that cannot be done (message safe to show); ``status`` and
    ``code`` are the API's answer."""

    status, code = 422, "invalid"


class AccountExists(AccountError):
    status, code = 409, "conflict"


class NoSuchUser(AccountError):
    status, code = 404, "not_found"


class RoleConflict(AccountError):
    code = "role_conflict"


class InternalAccount(AccountError):
    """An account medai itself files studies under (``DICOM_ACCOUNT``): nobody signs in as
    it, so it is never reset, enabled, re-roled or waiting for approval."""

    status, code = 409, "internal_account"


class LastAdmin(AccountError):
    """Disabling the only active, enrolled admin would leave nobody to manage accounts."""

    status, code = 409, "last_admin"


class PasswordNotAllowed(AccountError):
    """A password given for an account whose user must choose it (every non-admin role)."""


class EnrolmentRefused(AccountError):
    """An enrolment code that is unknown, used or expired."""

    status, code = 404, "enrol_code_invalid"


class WeakPassword(AccountError):
    code = "weak_password"

    def __init__(self, verdict: passwords.Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict

    # read-only: derived from the verdict (the field the form marks, and why)
    @property
    def errors(self) -> list[dict]:  # type: ignore[override]
        return [{"loc": ["body", "password"], "msg": str(self), "type": self.verdict.reason}]
