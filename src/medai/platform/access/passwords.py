"""The password policy (NIST SP 800-63B, 5.1.1.2): at least 8 and at most 1024 characters,
any characters (spaces and emoji included), no composition rules; refused when it is a common
or breached password, built from the user name or the service's own words, or too easy to
guess by zxcvbn's estimate (fewer than 10^8 guesses). Every path that sets a password (the CLI,
the enrolment API and page) calls ``check``.

zxcvbn knows English lists of breached passwords, names and words; ``COMMON_TR`` adds the words
Turkish passwords are most often built from (teams, cities, endearments), so that
``galatasaray1905`` or ``sifre1234`` are refused like ``password1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from argon2 import PasswordHasher, extract_parameters

# How passwords are hashed (argon2id), looked up by ``MEDAI_PASSWORD_HASH``. A stored hash names
# its own parameters, so changing the profile never locks anyone out: the next login verifies
# under the old ones and re-hashes under the new (credentials.authenticate).
HASH_PROFILES: dict[str, dict[str, int]] = {
    # RFC 9106's second recommendation (argon2-cffi's default): 64 MiB, 3 passes, 4 lanes
    "rfc9106-low-memory": {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4},
    # OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane): for a small server
    "owasp-minimum": {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1},
    # the least argon2 accepts: for test suites only (the server says so in its log)
    "insecure-fast": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},
}
DEFAULT_HASH_PROFILE = "rfc9106-low-memory"

MIN_LENGTH = 8
MAX_LENGTH = 1024
MIN_SCORE = 3  # zxcvbn: 3 = at least 10^8 guesses ("safely unguessable" online, slow offline)
ESTIMATED_CHARS = 72  # zxcvbn's own ceiling; a longer password is judged by its start
SERVICE_WORDS = (
    "medai",
    "hastane",
    "hospital",
    "radyoloji",
    "radiology",
    "doktor",
    "doctor",
    "hemsire",
    "hemşire",
    "klinik",
    "clinic",
    "admin",
    "yonetici",
    "yönetici",
)
COMMON_TR = (
    "sifre",
    "şifre",
    "parola",
    "galatasaray",
    "fenerbahce",
    "fenerbahçe",
    "besiktas",
    "beşiktaş",
    "trabzonspor",
    "bursaspor",
    "istanbul",
    "ankara",
    "izmir",
    "antalya",
    "turkiye",
    "türkiye",
    "turkey",
    "ataturk",
    "atatürk",
    "askim",
    "aşkım",
    "sevgilim",
    "canim",
    "canım",
    "hayatim",
    "hayatım",
    "bebegim",
    "bebeğim",
    "annem",
    "babam",
    "allah",
    "bismillah",
    "mustafa",
    "mehmet",
    "ahmet",
    "ayse",
    "ayşe",
    "fatma",
    "emine",
    "zeynep",
    "elif",
    "yusuf",
    "kemal",
    "merhaba",
    "qwerty",
    "asdfgh",
    "sifresiz",
    "deneme",
    "yeni",
    "gizli",
)
REASONS = {
    "too_short": f"the password needs at least {MIN_LENGTH} characters",
    "too_long": f"the password may have at most {MAX_LENGTH} characters",
    "contains_username": "the password contains the user name",
    "common": "this password is on lists of common or breached passwords",
    "context": "the password is built from the user name or from this service's words",
    "guessable": "this password is too easy to guess; a longer phrase of a few uncommon "
    "words is stronger",
}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # a key of REASONS
    suggestions: list[str] = field(default_factory=list)  # zxcvbn's, in English

    @property
    def message(self) -> str:
        return REASONS[self.reason] if self.reason else "ok"


def _context(username: str) -> list[str]:
    name = username.casefold()
    parts = [p for p in name.replace("_", ".").replace("-", ".").split(".") if len(p) >= 3]
    return [name, *parts, *SERVICE_WORDS]


def check(password: str, username: str = "") -> Verdict:
    """Whether ``password`` may be set for ``username``, and if not, why."""
    if len(password) < MIN_LENGTH:
        return Verdict(False, "too_short")
    if len(password) > MAX_LENGTH:
        return Verdict(False, "too_long")
    name = username.strip().casefold()
    if len(name) >= 3 and name in password.casefold():
        return Verdict(False, "contains_username")
    from zxcvbn import zxcvbn

    context = _context(name)
    result = zxcvbn(password[:ESTIMATED_CHARS], user_inputs=[*context, *COMMON_TR])
    if result["score"] >= MIN_SCORE:
        return Verdict(True)
    suggestions = [
        s
        for s in [
            result["feedback"].get("warning") or "",
            *result["feedback"].get("suggestions", []),
        ]
        if s
    ]
    words = [m for m in result["sequence"] if m.get("pattern") == "dictionary"]
    if any(
        m.get("dictionary_name") == "user_inputs" and m.get("matched_word") in context
        for m in words
    ):
        return Verdict(False, "context", suggestions)
    if any(
        m.get("dictionary_name") == "passwords" or m.get("dictionary_name") == "user_inputs"
        for m in words
    ):
        return Verdict(False, "common", suggestions)
    return Verdict(False, "guessable", suggestions)


def weaker(h: PasswordHasher, stored: str) -> bool:
    """Whether ``h`` costs less than ``stored`` was made with: such a hash is never re-made
    (a cheaper profile applies to new passwords only)."""
    p = extract_parameters(stored)
    return h.memory_cost < p.memory_cost or h.time_cost < p.time_cost


@lru_cache(maxsize=len(HASH_PROFILES))
def hasher(profile: str = DEFAULT_HASH_PROFILE) -> PasswordHasher:
    """The argon2id hasher of a profile of ``HASH_PROFILES`` (a wrong name lists the valid)."""
    if profile not in HASH_PROFILES:
        raise ValueError(
            f"password hash profile {profile!r}: use one of {', '.join(HASH_PROFILES)}"
        )
    # every profile holds only PasswordHasher's int parameters
    return PasswordHasher(**HASH_PROFILES[profile])  # type: ignore[arg-type]
