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

import numpy as np

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
    arrays: _Arrays | None


@dataclass(frozen=True)
class _Arrays:
    """Per-code-point (BMP) tables restating the regexes of :class:`_Cues` for the vectorised scorer."""

    diacritic: np.ndarray  # bool: _DIACRITICS
    letter: np.ndarray  # bool: _LETTER_RE
    script: np.ndarray  # bool: _ARABIC_SCRIPT_RE
    token: np.ndarray  # bool: a token letter (_AR_LETTERS)
    fold: np.ndarray  # uint32: _FOLD for the letters it maps 1:1 (tatweel, which it deletes, is handled apart)
    cue: np.ndarray  # uint8 bit set: 1 fa letter, 2 fa typing letter, 4 ar letter, 8 other-language letter


_AR_LETTERS = "\u0621-\u063a\u0641-\u064a\u0671-\u06d3\u06fa-\u06ff"
def _has_letter_re(letters: str) -> re.Pattern[str]:
    """Matches once per token containing one of ``letters`` (found from the letter, not every start)."""
    return re.compile(f"[{letters}][{_AR_LETTERS}]*")


_BMP = 0x10000
_FAST_MIN = 160  # shorter texts are scored with the regexes: numpy's per-call overhead would dominate


def _class_mask(pattern: str) -> np.ndarray:
    """Which BMP code points ``pattern`` (one character, a class) matches, exactly as ``re`` decides."""
    mask = np.zeros(_BMP, dtype=bool)
    allchars = "".join(map(chr, range(_BMP)))
    for m in re.finditer(pattern + "+", allchars):
        mask[m.start() : m.end()] = True
    return mask


def _build_arrays(d: dict) -> _Arrays | None:
    token = _class_mask(f"[{_AR_LETTERS}]")
    cue = np.zeros(_BMP, dtype=np.uint8)
    for bit, key in ((1, "fa_letters"), (2, "fa_typing_letters"), (4, "ar_letters"), (8, "other_letters")):
        for ch in d[key]:
            if ord(ch) >= _BMP or (bit != 8 and not token[ord(ch)]):
                # Token counting by letter assumes the cue letters are token letters; otherwise use the regexes.
                return None
            cue[ord(ch)] |= bit
    fold = np.arange(_BMP, dtype=np.uint32)
    for k, v in _FOLD.items():
        if v is not None:
            fold[k] = ord(v)
    return _Arrays(
        diacritic=_class_mask(_DIACRITICS.pattern),
        letter=_class_mask(_LETTER_RE.pattern[:-1]),
        script=_class_mask(_ARABIC_SCRIPT_RE.pattern[:-1]),
        token=token,
        fold=fold,
        cue=cue,
    )


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
        arrays=_build_arrays(d),
    )


def _scores(text: str) -> tuple[float, float, float, int]:
    """Return (persian score, arabic score, share of other-script letters, token count)."""
    text = text[:_MAX_CHARS]
    c = _cues()
    if len(text) >= _FAST_MIN and c.arrays is not None:
        cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if int(cp.max()) < _BMP:
            return _scores_fast(cp, c, c.arrays)
    return _scores_regex(text, c)


def _count_tokens_with(tok_id: np.ndarray, has: np.ndarray) -> int:
    """Number of distinct tokens (ids ascending along the text) holding a character flagged in ``has``."""
    ids = tok_id[has]
    if len(ids) == 0:
        return 0
    return 1 + int(np.count_nonzero(ids[1:] != ids[:-1]))


def _scores_fast(cp: np.ndarray, c: _Cues, a: _Arrays) -> tuple[float, float, float, int]:
    """:func:`_scores_regex` on a code-point array: counts by table look-up instead of regex scans."""
    dia = a.diacritic[cp]
    if dia.any():
        cp = cp[~dia]
    letters = int(np.count_nonzero(a.letter[cp]))
    if not letters:
        return 0.0, 0.0, 1.0, 0
    script = int(np.count_nonzero(a.script[cp]))
    other_share = 1.0 - script / letters
    tok = a.token[cp]
    starts = tok.copy()
    starts[1:] &= ~tok[:-1]
    n = int(np.count_nonzero(starts))
    if n == 0:
        return 0.0, 0.0, other_share, 0
    # Folding deletes tatweel, which joins the token letters around it: fold first, then cut tokens.
    tatweel = cp == 0x0640
    folded = a.fold[cp[~tatweel]] if tatweel.any() else a.fold[cp]
    folded_str = folded.tobytes().decode("utf-32-le", "surrogatepass")
    tokens = np.where(a.token[folded], folded, 32).tobytes().decode("utf-32-le", "surrogatepass").split()
    fa = float(sum(map(c.fa_words.__contains__, tokens)))
    ar = float(sum(map(c.ar_words.__contains__, tokens)))
    cue = a.cue[cp]
    tok_id = np.cumsum(starts)
    fa_letter_tokens = _count_tokens_with(tok_id, (cue & 1).astype(bool))
    fa_typing_tokens = _count_tokens_with(tok_id, (cue & 2).astype(bool))
    fa += 0.6 * fa_letter_tokens + 0.3 * max(fa_typing_tokens - fa_letter_tokens, 0)
    ar_letter_tokens = _count_tokens_with(tok_id, (cue & 4).astype(bool))
    ar += 0.5 * ar_letter_tokens + 0.5 * len(c.ar_prefix.findall(folded_str))
    oth = int(np.count_nonzero(cue & 8))
    if script:
        other_share = max(other_share, min(1.0, 4.0 * oth / script))
    return fa, ar, other_share, n


def _scores_regex(text: str, c: _Cues) -> tuple[float, float, float, int]:
    """The scores by regex scans; the reference for :func:`_scores_fast`."""
    text = _DIACRITICS.sub("", text)
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
