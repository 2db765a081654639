"""Anonymous grading: stable pseudonyms for what a grader reads (the report, similarity pages, instructor pages).

`grade --anonymize` records the wish in the grader's records, with a random key made once; a submission's
pseudonym is an HMAC of its name under that key (`student-3f9a1c`), so it is the same on every page and every
run, and cannot be turned back into the name without the key. The key stays in the records (`pseudonyms`
gives the table back); LMS exports and the students' own feedback keep the real names and ids.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from pathlib import Path

from ..outcomes import SubmissionResult
from .records import Records

KEY = "pseudonym_key"


def pseudonym(key: str, name: str) -> str:
    return "student-" + hmac.new(bytes.fromhex(key), name.encode(), hashlib.sha256).hexdigest()[:6]


def anonymity_key(records: Records) -> str | None:
    """The key, where the records say to anonymise (made on first use); None otherwise."""
    if not records.setting("anonymize"):
        return None
    key = records.setting(KEY)
    if not key:
        key = secrets.token_hex(16)
        records.set_setting(KEY, key)
    return key


def pseudonyms(records: Records, names: list[str]) -> dict[str, str]:
    """name → pseudonym, where the records say to anonymise; each name itself otherwise."""
    key = anonymity_key(records)
    return {n: pseudonym(key, n) if key else n for n in names}


def anonymised(result: SubmissionResult, alias: str) -> SubmissionResult:
    """The result as a grader reads it: its name replaced, and its path and messages scrubbed of it."""
    if alias == result.submission:
        return result
    name = result.submission

    known = [k for k in (result.path, Path(result.path).stem if result.path else "", name) if k]

    def scrub(text: str) -> str:  # the path, the file's own name (an LMS download's), the submission's
        for k in known:
            text = text.replace(k, alias)
        return text

    flags = [{k: scrub(str(v)) for k, v in f.items()} for f in result.flags]
    return replace(result, submission=alias, path="", message=scrub(result.message),
                   cell_errors=[scrub(e) for e in result.cell_errors], flags=flags)
