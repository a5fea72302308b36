"""The two-person rule for patient data: an admin alone never makes an account that reads it.

An admin sees the enrolment code of every account they create or reset, so they could enrol a
clinical account themselves. Such an account therefore starts *pending*: it may enrol and sign
in, but every permission that touches patient data (``GATED``, derived from
``roles.PERMISSIONS``) is refused with 403 ``approval_pending`` until a second person
approves it: a signed-in, approved user holding ``accounts_approve`` (radiologists), never the
account itself, or the server's shell (``medai users approve``: shell access is the hospital's
own trust root, and it bootstraps the first clinical users). A reset or a role change makes the
account pending again (``accounts.reset`` / ``accounts.change_role`` clear the approval).
An approval is given only to an account its holder has already enrolled (409 ``not_enrolled``
before): approving a name whose code is still unused would approve whoever enrols with it, the
admin who saw the code included. Together with the reset clearing the approval, the person
approved is always the one who chose the password the colleague vouches for.
Approvals and refused approvals are audit events of action ``approve``, listed with the role
grants for review.

What approval does not cover: an account's *own* data (triage history, for every role; a
patient account is never pending). That is protected by ``accounts.own_since`` instead: a
reset or a role change starts the account's own history anew, so whoever enrols with a reset
code lists nothing made before it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.access import account_errors, accounts, audit, roles
from medai.platform.records.tables import User

# permissions held by some clinical role and not by everyone (triage is anyone's own): the
# patient data, and approving others
GATED: frozenset[str] = frozenset(
    action
    for action, holders in roles.PERMISSIONS.items()
    if holders & roles.CLINICAL and holders != frozenset(roles.ROLES)
)
# roles holding any gated permission: their accounts need an approval
NEEDS_APPROVAL: frozenset[str] = frozenset(
    role for role in roles.ROLES if any(role in roles.PERMISSIONS[a] for a in GATED)
)


class ApprovalPending(account_errors.AccountError):
    status, code = 403, "approval_pending"


class SelfApproval(account_errors.AccountError):
    status, code = 403, "approval_self"


class NotPending(account_errors.AccountError):
    status, code = 409, "not_pending"


class NotEnrolled(account_errors.AccountError):
    """The account's holder has not chosen a password yet: whoever holds the enrolment code
    (the admin who made the account saw it) would become the approved person."""

    status, code = 409, "not_enrolled"


def is_pending(user: User) -> bool:
    """True while the account's role needs an approval it does not have."""
    return (
        user.role in NEEDS_APPROVAL
        and user.approved_at is None
        and user.username not in accounts.INTERNAL
    )


def check(user: User, action: str) -> None:
    """Raise ``ApprovalPending`` when ``action`` needs an approval ``user`` lacks."""
    if action in GATED and is_pending(user):
        raise ApprovalPending(
            f"account {user.username!r} is awaiting approval by a radiologist before it may "
            f"use patient data ({action})"
        )


def pending_users(db: Session) -> list[User]:
    """Active accounts awaiting approval, oldest first."""
    rows = db.scalars(
        select(User)
        .where(
            User.role.in_(sorted(NEEDS_APPROVAL)),
            User.approved_at.is_(None),
            User.active.is_(True),
            User.username.not_in(sorted(accounts.INTERNAL)),
        )
        .order_by(User.id)
    )
    return list(rows)


def _record(db: Session, actor: audit.Actor, user: User, outcome: str, reason: str) -> None:
    audit.record(
        db,
        actor,
        "approve",
        "user",
        user.id,
        outcome=outcome,
        op="approve",
        username=user.username,
        role=user.role,
        before=None,
        reason=reason,
    )


def approve(db: Session, username: str, actor: audit.Actor, now: datetime) -> User:
    """Approve a pending account as ``actor`` (``SelfApproval``: its own account;
    ``NotPending``: nothing to approve). Refusals are audited in their own transaction by the
    caller (``record_refusal``), since the raise rolls this one back."""
    user = accounts.get_user(db, username)
    if actor.id is not None and actor.id == user.id:
        raise SelfApproval("an account cannot approve itself; ask a colleague")
    if not is_pending(user):
        raise NotPending(f"{user.username!r} ({user.role}) is not awaiting approval")
    if not accounts.enrolled(user):
        raise NotEnrolled(
            f"{user.username!r} has not enrolled yet: approve only once its holder has "
            "chosen a password with the enrolment code (approving a name before that "
            "approves whoever enrols with the code)"
        )
    user.approved_at, user.approved_by = now, actor.name[:64]
    _record(db, actor, user, "ok", "approved")
    return user


def record_refusal(
    db: Session, username: str, actor: audit.Actor, exc: account_errors.AccountError
) -> None:
    """Audit a refused approval (unknown users are not recorded: there is no target)."""
    user = db.scalar(select(User).where(User.username == username[:64]))
    if user is not None:
        _record(db, actor, user, "denied", exc.code)
