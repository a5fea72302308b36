"""``medai kiosks``: register, list, re-enrol and revoke triage kiosks (the same functions the
admin API calls; every change is audited as the CLI)."""

from __future__ import annotations

from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _fail
from medai.cli.operations import open_database
from medai.platform.access import audit, kiosks
from medai.platform.records.db import utcnow
from medai.platform.records.localtime import iso_utc
from medai.settings import get_settings

kiosks_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


def _db():

    return open_database()


def _row(k, used: int) -> dict:
    return {
        "id": k.id,
        "name": k.name,
        "daily_quota": k.daily_quota,
        "used_today": used,
        "enrolled": k.cookie_hash is not None and k.revoked_at is None,
        "created_at": iso_utc(k.created_at),
        "revoked": k.revoked_at is not None,
    }


@kiosks_app.command("add")
def kiosks_add(
    name: Annotated[str, typer.Argument(help="A name staff recognise, e.g. 'Acil giriş 1'.")],
    quota: Annotated[
        int | None, typer.Option(help="Triage requests a day (default MEDAI_KIOSK_DEVICE_QUOTA).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a kiosk. Its API token and one-time enrolment code are printed once: type the
    code on the kiosk's /kiosk page (or send the token as X-Kiosk-Token)."""

    settings = get_settings()
    daily = settings.kiosk.kiosk_device_quota if quota is None else quota
    try:
        with _db().session() as db:
            issued = kiosks.register_kiosk(
                db, name, daily, utcnow(), settings.kiosk.kiosk_enrol_minutes, audit.Actor("cli")
            )
            out = {
                **_row(issued.kiosk, 0),
                "token": issued.token,
                "enrol_code": issued.enrol_code,
                "enrol_code_expires_at": iso_utc(issued.kiosk.enrol_expires_at),
            }
    except kiosks.KioskError as exc:
        _fail(exc, as_json, error_type="ValueError")
    _emit(
        out,
        as_json,
        (
            f"registered kiosk {out['name']!r} (id {out['id']}, {daily} a day)\n"
            f"enrolment code (one use, until {out['enrol_code_expires_at']}): {out['enrol_code']}\n"
            f"API token (X-Kiosk-Token): {out['token']}\n"
            "both are shown once: medai keeps only their hashes"
        ),
    )


@kiosks_app.command("list")
def kiosks_list(as_json: JsonFlag = False) -> None:
    """Every kiosk with its quota and today's use (the day of MEDAI_TIMEZONE)."""

    with _db().session() as db:
        rows = kiosks.listing(db)
        used = kiosks.used_today(
            db, [k.id for k in rows], utcnow(), get_settings().general.timezone
        )
        out = [_row(k, used[k.id]) for k in rows]
    _emit(
        {"kiosks": out},
        as_json,
        "\n".join(
            f"{r['id']:>4}  {r['name']:<28} {r['used_today']:>6}/{r['daily_quota']:<7} "
            f"{'revoked' if r['revoked'] else 'enrolled' if r['enrolled'] else 'not enrolled'}"
            for r in out
        )
        or "no kiosks",
    )


@kiosks_app.command("enrol-code")
def kiosks_enrol_code(name: str, as_json: JsonFlag = False) -> None:
    """A new one-time enrolment code for a kiosk (e.g. a replaced browser); once used, the
    previous browser stops working."""

    try:
        with _db().session() as db:
            kiosk = kiosks.by_name(db, name)
            code = kiosks.issue_enrol_code(
                db, kiosk, utcnow(), get_settings().kiosk.kiosk_enrol_minutes, audit.Actor("cli")
            )
            out = {
                "name": kiosk.name,
                "enrol_code": code,
                "enrol_code_expires_at": iso_utc(kiosk.enrol_expires_at),
            }
    except kiosks.KioskError as exc:
        _fail(exc, as_json, error_type="ValueError")
    _emit(
        out,
        as_json,
        f"enrolment code for {out['name']!r} (one use, until "
        f"{out['enrol_code_expires_at']}): {out['enrol_code']}",
    )


@kiosks_app.command("revoke")
def kiosks_revoke(name: str, as_json: JsonFlag = False) -> None:
    """Revoke a registered kiosk: its token and its browser stop at once."""

    try:
        with _db().session() as db:
            kiosk = kiosks.revoke_kiosk(db, kiosks.by_name(db, name), utcnow(), audit.Actor("cli"))
            out = {"id": kiosk.id, "name": kiosk.name, "revoked": True}
    except kiosks.KioskError as exc:
        _fail(exc, as_json, error_type="ValueError")
    _emit(out, as_json, f"revoked kiosk {out['name']!r}")
