"""Identifiers the suites and the attacker use, drawn from the run's RNG: IBANs with valid check
digits, e-mail addresses, URLs, passwords, drive file ids, and the OTLP ids and call ids."""

from __future__ import annotations

import random
import string

_ALNUM = string.ascii_letters + string.digits
# Country: (BBAN layout), "a" an upper-case letter, "9" a digit.
_IBAN_LAYOUTS = {
    "DE": "999999999999999999",
    "GB": "aaaa99999999999999",
    "FR": "99999999999999999999999",
    "NL": "aaaa9999999999",
    "ES": "99999999999999999999",
    "IT": "a9999999999999999999999",
    "CH": "99999999999999999",
    "US": "9999999999999999999",
}
MAIL_PROVIDERS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "gmx.de")
FIRST = (
    "anna", "ben", "carla", "daniel", "elif", "felix", "grace", "hugo", "ines", "jonas", "kira",
    "leo", "maya", "nina", "oscar", "paula", "rafael", "sofia", "theo", "vera",
)  # fmt: skip
LAST = (
    "bauer", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ivanova", "jensen",
    "kowalski", "lopez", "meyer", "novak", "okafor", "petrov", "quinn", "rossi", "silva", "tanaka",
)  # fmt: skip


def iban_check(country: str, bban: str) -> str:
    """The IBAN of a country and BBAN, with its ISO 13616 check digits."""
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def iban(rng: random.Random, country: str | None = None) -> str:
    """A random IBAN (check digits valid) of a country, or of a random one."""
    country = country or rng.choice(tuple(_IBAN_LAYOUTS))
    bban = "".join(
        rng.choice(string.ascii_uppercase) if c == "a" else rng.choice(string.digits)
        for c in _IBAN_LAYOUTS[country]
    )
    return iban_check(country, bban)


def grouped(value: str) -> str:
    """An IBAN as printed on paper: groups of four."""
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def personal_email(rng: random.Random, first: str | None = None, last: str | None = None) -> str:
    """A private address at a common provider, in one of the usual shapes."""
    first = first or rng.choice(FIRST)
    last = last or rng.choice(LAST)
    shape = rng.randrange(4)
    local = (
        f"{first}.{last}",
        f"{first}{last}{rng.randrange(10, 99)}",
        f"{first[0]}{last}",
        f"{first}.{last}-{rng.randrange(1000, 9999)}",
    )[shape]
    return f"{local}@{rng.choice(MAIL_PROVIDERS)}"


def password(rng: random.Random) -> str:
    """A password as a person or an attacker would set it."""
    word = rng.choice(("Sunset", "Maple", "Orbit", "Falcon", "Harbor", "Velvet", "Cobalt"))
    return (
        f"{word}{rng.choice('!#$%&*')}{rng.randrange(10, 9999)}{rng.choice(string.ascii_lowercase)}"
    )


def drive_id(rng: random.Random) -> str:
    """A cloud-drive file id."""
    return "1" + "".join(rng.choices(_ALNUM, k=18))


def hex_id(rng: random.Random, n: int) -> str:
    """n lowercase hex digits, never all zero (an OTLP trace or span id)."""
    return f"{rng.getrandbits(4 * n) or 1:0{n}x}"


def call_id(rng: random.Random, provider: str) -> str:
    """A tool-call id as the provider's API writes it."""
    if provider == "anthropic":
        return "toolu_01" + "".join(rng.choices(_ALNUM, k=22))
    if provider == "gcp.gemini":
        return "call_" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))
    return "call_" + "".join(rng.choices(_ALNUM, k=24))


def response_id(rng: random.Random, provider: str) -> str:
    """A completion id as the provider's API writes it."""
    if provider == "anthropic":
        return "msg_01" + "".join(rng.choices(_ALNUM, k=22))
    return "chatcmpl-" + "".join(rng.choices(_ALNUM, k=29))
