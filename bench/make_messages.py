#!/usr/bin/env python3
"""Writes the synthetic ~10 KB messages the relay benchmarks send with `smtp-source -F`.

    bench/make_messages.py DIR

DIR/clean.eml            school prose for a colleague (internal): delivered.
DIR/personal.eml         the same prose plus a pupil record (NHS numbers in the never-issued
                         999 range with a valid mod-11 check digit, dates of birth) for a
                         colleague (internal): scanned, found, and delivered (policy allows it).
DIR/personal_ext.eml     the personal-data message for a parent at example.com (external):
                         held for the DPO.

Everything is synthetic: lumen.sch.uk for the school, example.com for outsiders. The numbers
are made here with their check digits, deterministically (fixed seed), so a run is repeatable.
Lines end in LF: smtp-source -F appends CRLF to each line.
"""

import random
import sys
from pathlib import Path

SIZE = 10 * 1024

PROSE = [
    "Thank you for your help with the Year 7 trip planning this week.",
    "The timetable for the spring term is attached to the staff noticeboard.",
    "Please remember that the department meeting moves to Thursday after school.",
    "Reports for Year 9 are due by the end of the month; the template is unchanged.",
    "The library will be closed on Friday afternoon for the book fair set-up.",
    "Parents' evening bookings open next Monday and close the following Friday.",
    "We still need two volunteers to help with the sports day refreshments stall.",
    "The new reading scheme books have arrived and are in the English office.",
    "Can everyone check the fire drill rota and let the office know of any clashes?",
    "Lunch duty swaps should go through the deputy head as usual, not the office.",
]


def nhs_number(rng: random.Random) -> str:
    """A 999-range NHS number (never issued) with a valid mod-11 check digit, as 3-3-4."""
    while True:
        digits = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1)))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            s = digits + str(check)
            return f"{s[:3]} {s[3:6]} {s[6:]}"


def headers(to: str, subject: str, msgid: str) -> str:
    return (
        "From: Teacher <teacher@lumen.sch.uk>\n"
        f"To: {to}\n"
        f"Subject: {subject}\n"
        f"Message-ID: <{msgid}@lumen.sch.uk>\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
    )


def prose(rng: random.Random, size: int) -> str:
    lines = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(PROSE) for _ in range(2))
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines) + "\n"


def pupil_record(rng: random.Random) -> str:
    rows = ["Pupil records for the referral meeting:", ""]
    for i in range(5):
        day, month = rng.randrange(1, 28), rng.randrange(1, 13)
        rows.append(f"Pupil {i + 1}")
        rows.append(f"NHS number: {nhs_number(rng)}")
        rows.append(f"Date of birth: {day:02}/{month:02}/2014")
        rows.append("")
    return "\n".join(rows) + "\n"


def message(to: str, subject: str, personal: bool, seed: int) -> str:
    rng = random.Random(seed)
    head = headers(to, subject, f"bench-{subject}")
    record = pupil_record(rng) if personal else ""
    body = prose(rng, SIZE - len(head) - len(record))
    # The record sits in the middle of the prose, as it would in a real email.
    half = body.find("\n", len(body) // 2) + 1
    return head + body[:half] + record + body[half:]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_messages.py DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "clean.eml").write_text(message("colleague@lumen.sch.uk", "clean", False, 1))
    (out / "personal.eml").write_text(message("colleague@lumen.sch.uk", "personal", True, 2))
    (out / "personal_ext.eml").write_text(message("parent@example.com", "personal_ext", True, 2))


if __name__ == "__main__":
    main()
