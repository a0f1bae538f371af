"""Language identification for Arabic, Persian and everything else.

Arabic and Persian share a script, so letters alone do not decide: old Fars News types Persian with
Arabic ي/ك, and Arabic quotes Persian names. The detector weighs, per token:

- function words of each language (``data/language.json``), compared after folding only ی->ي and
  ک->ك, so Persian typed with Arabic letters still shows its ``است``, ``را``, ``می``;
- Persian-only letters (پ چ ژ گ), Persian keyboard letters (ی ک ۀ), Arabic-only letters (ة ى),
  and the Arabic article (``ال`` / ``وال`` / ``بال`` ...);
- letters of other Arabic-script languages (Urdu, Pashto, Kurdish) and the share of non-Arabic-script
  letters, which make a text ``other``.

The confidence grows with the margin between the two scores and with the number of tokens, so
short texts get lower confidences.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["detect_language", "paragraph_languages"]

_DATA = Path(__file__).resolve().parent / "data" / "language.json"
_MAX_CHARS = 4000
_TOKEN_RE = re.compile(r"[^\W\d_]+")
_ARABIC_SCRIPT_RE = re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]+")
_LETTER_RE = re.compile(r"[^\W\d_]+")
_PARA_RE = re.compile(r"[^\n]+")
_FOLD = str.maketrans({"ی": "ي", "ک": "ك", "ى": "ي", "\u0640": None})
_DIACRITICS = re.compile(r"[\u064b-\u065f\u0670]")


@dataclass(frozen=True)
class _Cues:
    fa_words: frozenset[str]
    ar_words: frozenset[str]
    fa_letters: re.Pattern[str]
    fa_typing: re.Pattern[str]
    ar_letters: re.Pattern[str]
    other_letters: re.Pattern[str]
    ar_prefix: re.Pattern[str]
    token: re.Pattern[str]
    fa_letter_tokens: re.Pattern[str]
    fa_typing_tokens: re.Pattern[str]
    ar_letter_tokens: re.Pattern[str]


_AR_LETTERS = "\u0621-\u063a\u0641-\u064a\u0671-\u06d3\u06fa-\u06ff"
def _has_letter_re(letters: str) -> re.Pattern[str]:
    """Matches once per token containing one of ``letters`` (found from the letter, not every start)."""
    return re.compile(f"[{letters}][{_AR_LETTERS}]*")


@lru_cache(maxsize=1)
def _cues() -> _Cues:
    d = json.loads(_DATA.read_text(encoding="utf-8"))

    def fold(w: str) -> str:
        return w.translate(_FOLD)

    return _Cues(
        fa_words=frozenset(fold(w) for w in d["fa_words"]),
        ar_words=frozenset(fold(w) for w in d["ar_words"]),
        fa_letters=re.compile("[" + d["fa_letters"] + "]"),
        fa_typing=re.compile("[" + d["fa_typing_letters"] + "]"),
        ar_letters=re.compile("[" + d["ar_letters"] + "]"),
        other_letters=re.compile("[" + d["other_letters"] + "]"),
        ar_prefix=re.compile(d["ar_prefix_re"]),
        token=re.compile(f"[{_AR_LETTERS}]+"),
        fa_letter_tokens=_has_letter_re(d["fa_letters"]),
        fa_typing_tokens=_has_letter_re(d["fa_typing_letters"]),
        ar_letter_tokens=_has_letter_re(d["ar_letters"]),
    )


def _scores(text: str) -> tuple[float, float, float, int]:
    """Return (persian score, arabic score, share of other-script letters, token count)."""
    c = _cues()
    text = _DIACRITICS.sub("", text[:_MAX_CHARS])
    letters = sum(map(len, _LETTER_RE.findall(text)))
    if not letters:
        return 0.0, 0.0, 1.0, 0
    script = sum(map(len, _ARABIC_SCRIPT_RE.findall(text)))
    other_share = 1.0 - script / letters
    # Counted per token, with whole-text regexes rather than a Python loop: this runs per document.
    raw_tokens = c.token.findall(text)
    n = len(raw_tokens)
    if n == 0:
        return 0.0, 0.0, other_share, 0
    folded = text.translate(_FOLD)
    tokens = c.token.findall(folded)
    fa = float(sum(map(c.fa_words.__contains__, tokens)))
    ar = float(sum(map(c.ar_words.__contains__, tokens)))
    fa_letter_tokens = len(c.fa_letter_tokens.findall(text))
    fa_typing_tokens = len(c.fa_typing_tokens.findall(text))
    fa += 0.6 * fa_letter_tokens + 0.3 * max(fa_typing_tokens - fa_letter_tokens, 0)
    ar += 0.5 * len(c.ar_letter_tokens.findall(text)) + 0.5 * len(c.ar_prefix.findall(folded))
    oth = len(c.other_letters.findall(text))
    if script:
        other_share = max(other_share, min(1.0, 4.0 * oth / script))
    return fa, ar, other_share, n


def detect_language(text: str) -> tuple[str, float]:
    """Detect whether ``text`` is Arabic, Persian or something else.

    Args:
        text: any text; only the first few thousand characters are read.

    Returns:
        ``(language, confidence)`` with language ``"ar"``, ``"fa"`` or ``"other"`` and confidence
        in ``[0, 1]``.
    """
    fa, ar, other_share, n = _scores(text)
    if n == 0 or other_share > 0.5:
        return "other", round(max(other_share, 0.5) if n == 0 else other_share, 3)
    total = fa + ar
    if total == 0:
        # Arabic script with no cue at all (a name, a number): a weak guess.
        return "ar", 0.34
    lang = "fa" if fa > ar else "ar"
    share = max(fa, ar) / total
    # Evidence grows with the number of cues; three or so already make a clear call.
    strength = 1.0 - math.exp(-total / 3.0)
    conf = (0.5 + 0.5 * (2 * share - 1) * strength) * (1.0 - other_share)
    return lang, round(min(max(conf, 0.0), 0.999), 3)


def paragraph_languages(text: str) -> list[dict]:
    """Detect the language of each non-empty line (paragraph) of ``text``.

    Returns:
        ``[{"start", "end", "language", "confidence"}, ...]`` with offsets into ``text``.
    """
    out: list[dict] = []
    for m in _PARA_RE.finditer(text):
        seg = m.group()
        if not seg.strip():
            continue
        lang, conf = detect_language(seg)
        lo = m.start() + (len(seg) - len(seg.lstrip()))
        hi = m.start() + len(seg.rstrip())
        out.append({"start": lo, "end": hi, "language": lang, "confidence": conf})
    return out
