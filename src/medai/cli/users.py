"""`medai users …`: accounts (the first admin of a fresh install is made here), enrolment codes,
roles, approval for patient data."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit
from medai.cli.operations import open_database
from medai.core.errors import MedaiError
from medai.platform.access import account_errors, accounts, approval, audit, roles
from medai.platform.access.accounts import enrolled, pending, role_grants
from medai.platform.access.approval import is_pending
from medai.platform.records.db import utcnow
from medai.platform.records.tables import User
from medai.settings import get_settings

users_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


def _account_failed(exc: Exception, as_json: bool) -> None:
    """Exit 2 with the reason (and, with --json, the API's ``code`` and password reason)."""
    code = exc.code if isinstance(exc, MedaiError) else "invalid"
    verdict = getattr(exc, "verdict", None)
    if as_json:
        _emit(
            {
                "error": str(exc),
                "error_type": type(exc).__name__,
                "code": code,
                **({"reason": verdict.reason} if verdict else {}),
            },
            True,
        )
    else:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _stdin_line() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _issued(user, code: str, now) -> dict:

    exp = pending(user, now)
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "enrol_code": code,
        "enrol_code_expires_at": exp.isoformat() + "Z" if exp else None,
    }


def _code_text(out: dict) -> str:
    c = out["enrol_code"]
    return (
        f"one-time enrolment code for {out['username']} ({out['role']}): "
        f"{c[:4]}-{c[4:8]}-{c[8:]}\nvalid until {out['enrol_code_expires_at']}; the user opens "
        "/enrol (or runs `medai users enrol CODE --password-stdin`) and chooses a password"
    )


FullName = Annotated[
    str | None,
    typer.Option(
        "--full-name",
        help="The name signed reports give the signer, given names then family name (e.g. "
        '"Ayşe Yılmaz"; at most 60 characters: letters, spaces, . - \'); empty: none.',
    ),
]
Title = Annotated[
    str | None,
    typer.Option("--title", help='The title before the name (e.g. "Uzm. Dr."; at most 24).'),
]

EnrolHours = Annotated[
    float,
    typer.Option("--enrol-hours", min=0.01, max=336, help="How long the enrolment code is valid."),
]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ -).")],
    role: Annotated[str, typer.Option(help="admin | radiologist | clinician | patient")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="admin only: read your own password from standard "
            "input (one line); e.g. the first admin",
        ),
    ] = False,
    enrol_code_stdin: Annotated[
        bool,
        typer.Option(
            "--enrol-code-stdin",
            help="admin only: the one-time enrolment code is the line on standard input (a "
            "deployment's first-admin secret, 12 letters and digits or more) instead of a "
            "generated one; its holder enrols with it and chooses the password, which spends it",
        ),
    ] = False,
    enrol_hours: EnrolHours = 72.0,
    full_name: FullName = None,
    title: Title = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a user (--full-name and --title: how signed reports name them; the user can
    change both on their /account page). Without --password-stdin the account gets a one-time enrolment code
    (printed once; with --enrol-code-stdin, the operator's own) with which its user chooses
    their own password; clinical and patient accounts always do. Passwords are never taken
    from the command line."""

    try:
        roles.check_role(role)
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    if password_stdin and enrol_code_stdin:
        _account_failed(
            ValueError("give --password-stdin or --enrol-code-stdin, not both"), as_json
        )
    if (password_stdin or enrol_code_stdin) and role not in roles.ADMIN:
        _account_failed(
            ValueError(
                f"a {role}'s password is chosen by its user: leave out "
                "--password-stdin and give them the enrolment code"
            ),
            as_json,
        )
    actor = audit.Actor("cli")
    now = utcnow()
    try:
        with open_database().session() as db:
            user, code = accounts.create_account(
                db,
                name,
                role,
                actor,
                now,
                password=_stdin_line() if password_stdin else None,
                hash_profile=get_settings().auth.password_hash,
                enrol_hours=enrol_hours,
                code=_stdin_line() if enrol_code_stdin else None,
                full_name=full_name,
                title=title,
            )
            out = (
                _issued(user, code, now)
                if code
                else {"id": user.id, "username": user.username, "role": user.role}
            )
            out |= {"full_name": user.full_name, "title": user.title}
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    if enrol_code_stdin:  # the operator's secret is never echoed (logs keep what is printed)
        out |= {"enrol_code": None, "enrol_code_supplied": True}
        _emit(
            out,
            as_json,
            f"created {out['username']} ({out['role']}): its holder opens /enrol with the code "
            f"you supplied (valid until {out['enrol_code_expires_at']}) and chooses a password",
        )
        return
    _emit(out, as_json, _code_text(out) if code else f"created {out['username']} ({out['role']})")


@users_app.command("profile")
def users_profile(
    name: str,
    full_name: FullName = None,
    title: Title = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a user's full name and title, as the signed PDF, FHIR, DICOM SR and HL7 name the
    signer (an option left out keeps its value; "" clears it). Audited as ``profile``."""

    try:
        with open_database().session() as db:
            user = accounts.get_user(db, name)
            user = accounts.set_profile(
                db,
                name,
                user.full_name if full_name is None else full_name,
                user.title if title is None else title,
                audit.Actor("cli"),
            )
            out = {
                "username": user.username,
                "full_name": user.full_name,
                "title": user.title,
                "signs_as": accounts.signs_as(user.username, user.full_name, user.title),
            }
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, f"{out['username']} signs as: {out['signs_as']}")


@users_app.command("reset")
def users_reset(name: str, enrol_hours: EnrolHours = 72.0, as_json: JsonFlag = False) -> None:
    """Reset a password: the old one stops working, the user's sessions and tokens are
    revoked, and a new one-time enrolment code is printed (once)."""

    now = utcnow()
    try:
        with open_database().session() as db:
            user, code = accounts.reset_account(db, name, audit.Actor("cli"), now, enrol_hours)
            out = _issued(user, code, now)
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, _code_text(out))


@users_app.command("enrol")
def users_enrol(
    code: Annotated[str, typer.Argument(help="The one-time enrolment code.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read your new password from standard input.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Choose your own password with your enrolment code, at the server's console (the
    /enrol page does the same in a browser)."""

    if not password_stdin:
        _account_failed(
            ValueError("give the password on standard input with --password-stdin"), as_json
        )
    try:
        with open_database().session() as db:
            user = accounts.enrol_account(
                db,
                code,
                _stdin_line(),
                utcnow(),
                "cli",
                hash_profile=get_settings().auth.password_hash,
            )
            out = {"username": user.username, "role": user.role}
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, f"password set for {out['username']}; sign in with it")


@users_app.command("role")
def users_role(
    name: str,
    role: Annotated[
        str, typer.Argument(help="radiologist | clinician | patient (an admin account stays admin)")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Change a user's role. An administrator account never takes a clinical or patient
    role, nor the reverse (refused as role_conflict, and audited)."""

    actor = audit.Actor("cli")
    try:
        with open_database().session() as db:
            user, before = accounts.assign_role(db, name, role, actor)
            out = {"username": user.username, "role": user.role, "before": before}
    except account_errors.RoleConflict as exc:
        with open_database().session() as db:
            accounts.record_role_refusal(db, name, role, actor)
        _account_failed(exc, as_json)
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, f"{out['username']}: {out['before']} -> {out['role']}")


@users_app.command("approve")
def users_approve(name: str, as_json: JsonFlag = False) -> None:
    """Approve a clinical account for patient data (the two-person rule: an admin's new,
    reset or re-roled account waits for a radiologist or for this). Shell access to the server
    is the hospital's own trust root; this also makes the first clinical users."""

    actor = audit.Actor("cli")
    try:
        with open_database().session() as db:
            user = approval.approve(db, name, actor, utcnow())
            out = {"username": user.username, "role": user.role, "approval_pending": False}
    except account_errors.NoSuchUser as exc:
        _account_failed(exc, as_json)
    except account_errors.AccountError as exc:
        with open_database().session() as db:
            approval.record_refusal(db, name, actor, exc)
        _account_failed(exc, as_json)
    _emit(out, as_json, f"{out['username']} ({out['role']}) approved for patient data")


@users_app.command("grants")
def users_grants(as_json: JsonFlag = False) -> None:
    """Every role granted or changed, every approval for patient data, and every refused
    change or approval, oldest first (for review)."""

    with open_database().session() as db:
        items, _ = role_grants(db, limit=1_000_000)
    _emit(
        {"grants": items},
        as_json,
        "\n".join(
            f"{g['at']}  {g['by']:<16} {g['op']:<7} {g['username'] or '?':<24} "
            f"{g['before'] or '-'} -> {g['role']}{'' if g['outcome'] == 'ok' else '  REFUSED'}"
            for g in items
        )
        or "no role grants",
    )


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Every user with role and state (enrolled: has chosen a password; approval pending: a
    clinical account not yet approved for patient data)."""
    from sqlalchemy import select

    with open_database().session() as db:
        rows = [
            {
                "id": u.id,
                "username": u.username,
                "role": u.role,
                "active": u.active,
                "enrolled": enrolled(u),
                "approval_pending": is_pending(u),
                "full_name": u.full_name,
                "title": u.title,
            }
            for u in db.scalars(select(User).order_by(User.id))
        ]
    _emit(
        {"users": rows},
        as_json,
        "\n".join(
            f"{r['id']:>4}  {r['username']:<24} {r['role']:<12} "
            f"{'active' if r['active'] else 'disabled'}"
            f"{'' if r['enrolled'] else ', not enrolled'}"
            f"{', approval pending' if r['approval_pending'] else ''}"
            for r in rows
        )
        or "no users",
    )


def _set_active(name: str, active: bool, as_json: bool) -> None:

    try:
        with open_database().session() as db:
            accounts.set_account_active(db, name, active, audit.Actor("cli"))
    except account_errors.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(
        {"username": name, "active": active},
        as_json,
        f"{name} {'enabled' if active else 'disabled'}",
    )


@users_app.command("disable")
def users_disable(name: str, as_json: JsonFlag = False) -> None:
    """Disable a user; their sessions and tokens stop at once (never the last active,
    enrolled admin: exit 2, code last_admin)."""
    _set_active(name, False, as_json)


@users_app.command("enable")
def users_enable(name: str, as_json: JsonFlag = False) -> None:
    _set_active(name, True, as_json)
