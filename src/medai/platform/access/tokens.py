"""Sign-in tokens: a browser session's or an API bearer's token issued (only its digest
stored), resolved on each request, its CSRF value checked, revoked at sign-out."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.records.db import utcnow
from medai.platform.records.tables import Token, User


def digest(raw: str) -> str:
    """What is stored of a secret (session, token, kiosk credential): its sha256. The secrets
    are 256-bit random, so a plain hash is enough (no password stretching needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    token: str
    csrf: str | None
    expires_in_s: int


def new_signin() -> str:
    """The id shared by the credentials one sign-in issues (its session and its bearer
    token), so that signing out ends them all."""
    return secrets.token_hex(16)


def issue(
    db: Session,
    user: User,
    kind: str,
    lifetime: timedelta,
    name: str | None = None,
    signin: str | None = None,
) -> Issued:
    """A new session (with its CSRF secret) or bearer token; only hashes are stored."""
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    db.add(
        Token(
            user_id=user.id,
            token_hash=digest(raw),
            kind=kind,
            name=name,
            csrf_hash=digest(csrf) if csrf else None,
            signin=signin,
            expires_at=utcnow() + lifetime,
        )
    )
    return Issued(raw, csrf, int(lifetime.total_seconds()))


def resolve(db: Session, raw: str, kind: str | None = None) -> tuple[User, Token] | None:
    # one query for the credential and its user: every authenticated request runs it
    row = db.execute(
        select(Token, User)
        .join(User, User.id == Token.user_id)
        .where(Token.token_hash == digest(raw[:256]))
    ).first()
    if row is None:
        return None
    tok, user = row
    if tok.revoked_at is not None or tok.expires_at <= utcnow():
        return None
    if kind is not None and tok.kind != kind:
        return None
    if not user.active:
        return None
    return user, tok


def csrf_ok(tok: Token, presented: str | None) -> bool:
    return bool(
        tok.csrf_hash
        and presented
        and secrets.compare_digest(tok.csrf_hash, digest(presented[:256]))
    )


def revoke(db: Session, tok: Token) -> None:
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()


def sign_out(db: Session, tok: Token) -> int:
    """Revoke this credential and every other one of the same sign-in (the session cookie
    and the bearer token a password login returns together); named tokens made with
    ``POST /auth/tokens`` are not part of a sign-in and stay. Returns how many ended."""
    ended = [tok]
    if tok.signin is not None:
        ended += db.scalars(
            select(Token).where(
                Token.signin == tok.signin, Token.user_id == tok.user_id, Token.id != tok.id
            )
        ).all()
    live = [t for t in ended if t.revoked_at is None]
    for t in live:
        revoke(db, t)
    return len(live)
