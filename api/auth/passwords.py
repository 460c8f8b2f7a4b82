"""The rules a new password must meet, after NIST SP 800-63B (§3.1.1.2): no composition rules, but no password
that an attacker tries first: a common one, a repeated or sequential pattern, or one built from the account's own
e-mail address or name, or from the product's name.

**The list.** `data/common-passwords.txt.gz` (87k entries, 240 kB; data/NOTICE.md says how it was made): the
passwords seen more than ten times in the Xato 10-million-password corpus, and the most frequent Spanish words,
first names and surnames, all from zxcvbn-ts's dictionaries (maintained, MIT, attributed data). zxcvbn's own estimator
(PyPI `zxcvbn`) was the other candidate: it scores passwords rather than refusing listed ones, its dictionaries are
English and from 2017, and a score threshold gives users no reason they can act on.

**Matching.** A user who is refused "contraseña" types "Contraseña2024!": capitals, accents and digits or symbols
around a listed word cost an attacker nothing (cracking rules add them first), so they are removed before the
lookup. Words inside a password are not looked up: "naranjos-de-alzira" is three common words and a good password.
"""

import gzip
import re
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from api.core.errors import ValidationFailed
from api.core.types import fold

PRODUCT_WORDS = frozenset({"fieldbook"})
_LIST = Path(__file__).parent / "data" / "common-passwords.txt.gz"
# Fewer different characters than this is a repetition ("abababababab"), however long.
_MIN_DISTINCT = 5
# Context words shorter than this ("al", "de") are parts of too many unrelated passwords to refuse them.
_MIN_CONTEXT_WORD = 3
# What must remain, in letters, once the account's own words are taken out of a password.
_MIN_OWN_LETTERS = 4

_DECORATION = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_SEPARATORS = re.compile(r"[\W_]+")
_NOT_LETTERS = re.compile(r"[\W\d_]+")
_LETTER_RUNS = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The list, folded; read once (about 50 ms) on the first password set."""
    return frozenset(gzip.decompress(_LIST.read_bytes()).decode().splitlines())


def _is_common(folded: str) -> bool:
    core = _DECORATION.sub("", folded)
    candidates = {folded, core, _SEPARATORS.sub("", core)} - {""}
    return not candidates.isdisjoint(common_passwords())


def _is_pattern(folded: str) -> bool:
    """Repeated or sequential characters: few different ones, or at most three runs that each repeat a character or
    step through the alphabet or the digits ("aaaaaaaaaa", "1234567890", "1234abcd", "zyxwvu9876")."""
    if len(set(folded)) < _MIN_DISTINCT:
        return True
    runs, step = 1, None
    for before, after in pairwise(folded):
        gap = ord(after) - ord(before)
        if step is None and abs(gap) <= 1:
            step = gap
        elif step is None or gap != step:
            runs, step = runs + 1, None
    return runs <= 3


def _context_words(email: str, name: str) -> set[str]:
    """The words an attacker who knows the account tries first: its e-mail's local part and domain (without the
    top-level domain), its name, and the product's name."""
    local, _, domain = email.partition("@")
    text = " ".join([local, *domain.split(".")[:-1], name])
    return {w for w in _LETTER_RUNS.findall(fold(text)) if len(w) >= _MIN_CONTEXT_WORD} | PRODUCT_WORDS


def _is_built_from(folded: str, words: set[str]) -> bool:
    rest = folded
    for word in sorted(words, key=len, reverse=True):
        rest = rest.replace(word, " ")
    if rest == folded:
        return False
    own = _NOT_LETTERS.sub("", rest)
    return len(own) < _MIN_OWN_LETTERS or _is_common(own)


def check_new_password(password: str, *, email: str, name: str) -> None:
    """Refuse (422, pointing at `#/password`) a password that breaks the rules; `email` and `name` are the account's
    it is set for. Length and characters are the schema's (`api.core.types.Password`)."""
    folded = fold(password)
    if _is_built_from(folded, _context_words(email, name)):
        code, detail = "password_personal", "is built from your name, your e-mail address or the name Fieldbook"
    elif _is_common(folded):
        code, detail = "password_common", "is one of the most common passwords, give or take a few digits or symbols"
    elif _is_pattern(folded):
        code, detail = "password_pattern", "is a repeated or sequential pattern of characters"
    else:
        return
    raise ValidationFailed(
        f"This password {detail}: choose another (a few unrelated words make a good one).",
        errors=[{"pointer": "#/password", "detail": detail, "code": code}],
    )
