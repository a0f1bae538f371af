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
from collections.abc import Iterable
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
    cue_words: frozenset[str]  # fa_words | ar_words
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

    flags: np.ndarray  # uint8 bit set per code point, bits below
    fold: np.ndarray  # uint32: _FOLD for the letters it maps 1:1 (tatweel, which it deletes, is handled apart)
    prefix_class: np.ndarray | None  # see _word_start_form
    prefix_words: re.Pattern[str] | None


# One table look-up gives every class a character belongs to.
_DIA, _LETTER, _SCRIPT, _TOKEN, _FA, _FA_TYPING, _AR, _OTHER = (1 << i for i in range(8))


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
    flags = np.zeros(_BMP, dtype=np.uint8)
    for bit, pattern in (
        (_DIA, _DIACRITICS.pattern),
        (_LETTER, _LETTER_RE.pattern.removesuffix("+")),
        (_SCRIPT, _ARABIC_SCRIPT_RE.pattern.removesuffix("+")),
        (_TOKEN, f"[{_AR_LETTERS}]"),
    ):
        flags[_class_mask(pattern)] |= bit
    cue_letters = (
        (_FA, "fa_letters"), (_FA_TYPING, "fa_typing_letters"), (_AR, "ar_letters"), (_OTHER, "other_letters")
    )
    for bit, key in cue_letters:
        for ch in d[key]:
            if ord(ch) >= _BMP or (bit != _OTHER and not flags[ord(ch)] & _TOKEN):
                # Token counting by letter assumes the cue letters are token letters; otherwise use the regexes.
                return None
            flags[ord(ch)] |= bit
    fold = np.arange(_BMP, dtype=np.uint32)
    for k, v in _FOLD.items():
        if v is not None:
            if (flags[k] ^ flags[ord(v)]) & _TOKEN:
                return None  # folding must keep token letters token letters for the token mask to carry over
            fold[k] = ord(v)
    word_start = _word_start_form(d["ar_prefix_re"])
    return _Arrays(
        flags=flags,
        fold=fold,
        prefix_class=word_start[0] if word_start else None,
        prefix_words=word_start[1] if word_start else None,
    )


def _word_start_form(pattern: str) -> tuple[np.ndarray, re.Pattern[str]] | None:
    """``(?<![C])R`` as (mask of C, `` R``) when every match of R is made of characters of C; else ``None``.

    Then the matches of the pattern are the runs of C that start with a match of R, and so are the matches of
    `` R`` in ``" "`` + the text with every character outside C made a space. That pattern starts with a literal,
    which the regex engine skips to, where the lookbehind would be tried at every position.
    """
    m = re.fullmatch(r"\(\?<!(\[[^\]]*\])\)(.+)", pattern, re.DOTALL)
    if m is None:
        return None
    cls, rest = m.groups()
    try:
        from re import _constants as sc
        from re import _parser as sp

        tree = sp.parse(rest)
    except (ImportError, re.error):
        return None
    mask = _class_mask(cls)
    if mask[ord(" ")] or tree.getwidth()[0] < 1 or tree.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    repeats = tuple(getattr(sc, op) for op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(sc, op))

    def in_class(chars: Iterable[int]) -> bool:
        return all(ch < _BMP and mask[ch] for ch in chars)

    def only_class(items: Iterable[tuple[object, object]]) -> bool:
        for op, av in items:
            if op is sc.LITERAL:
                ok = in_class((av,))
            elif op is sc.IN:
                ok = all(
                    (iop is sc.LITERAL and in_class((iav,)))
                    or (iop is sc.RANGE and in_class(range(iav[0], iav[1] + 1)))
                    for iop, iav in av
                )
            elif op in repeats:
                ok = only_class(av[2])
            elif op is sc.SUBPATTERN:
                ok = not av[1] and not av[2] and only_class(av[3])
            elif op is sc.BRANCH:
                ok = all(only_class(alt) for alt in av[1])
            else:
                ok = False  # anything else (categories, assertions, any character...) is not checked: keep the regex
            if not ok:
                return False
        return True

    if not only_class(tree):
        return None
    return mask, re.compile(" (?:" + rest + ")")


@lru_cache(maxsize=1)
def _cues() -> _Cues:
    d = json.loads(_DATA.read_text(encoding="utf-8"))

    def fold(w: str) -> str:
        return w.translate(_FOLD)

    return _Cues(
        fa_words=frozenset(fold(w) for w in d["fa_words"]),
        ar_words=frozenset(fold(w) for w in d["ar_words"]),
        cue_words=frozenset(fold(w) for w in (*d["fa_words"], *d["ar_words"])),
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
    ids = tok_id[has != 0]
    if len(ids) == 0:
        return 0
    return 1 + int(np.count_nonzero(ids[1:] != ids[:-1]))


def _decode(cps: np.ndarray) -> str:
    return cps.tobytes().decode("utf-32-le", "surrogatepass")


def _scores_fast(cp: np.ndarray, c: _Cues, a: _Arrays) -> tuple[float, float, float, int]:
    """:func:`_scores_regex` on a code-point array: counts by table look-up instead of regex scans."""
    flags = a.flags[cp]
    dia = flags & _DIA
    if dia.any():
        keep = dia == 0
        cp, flags = cp[keep], flags[keep]
    letters = int(np.count_nonzero(flags & _LETTER))
    if not letters:
        return 0.0, 0.0, 1.0, 0
    script = int(np.count_nonzero(flags & _SCRIPT))
    other_share = 1.0 - script / letters
    tok = (flags & _TOKEN) != 0
    starts = tok.copy()
    starts[1:] &= ~tok[:-1]
    n = int(np.count_nonzero(starts))
    if n == 0:
        return 0.0, 0.0, other_share, 0
    # Folding deletes tatweel, which joins the token letters around it: fold first, then cut tokens.
    tatweel = cp == 0x0640
    if tatweel.any():
        keep = ~tatweel
        folded, folded_tok = a.fold[cp[keep]], tok[keep]
    else:
        folded, folded_tok = a.fold[cp], tok
    tokens = _decode(np.where(folded_tok, folded, np.uint32(32))).split()
    # Most tokens are no cue word: drop them in one pass, then count the few left per language.
    cue_words = list(filter(c.cue_words.__contains__, tokens))
    fa = float(sum(map(c.fa_words.__contains__, cue_words)))
    ar = float(sum(map(c.ar_words.__contains__, cue_words)))
    tok_id = np.cumsum(starts)
    fa_letter_tokens = _count_tokens_with(tok_id, flags & _FA)
    fa_typing_tokens = _count_tokens_with(tok_id, flags & _FA_TYPING)
    fa += 0.6 * fa_letter_tokens + 0.3 * max(fa_typing_tokens - fa_letter_tokens, 0)
    ar_letter_tokens = _count_tokens_with(tok_id, flags & _AR)
    if a.prefix_class is not None and a.prefix_words is not None:
        words = _decode(np.where(a.prefix_class[folded], folded, np.uint32(32)))
        prefixed = len(a.prefix_words.findall(" " + words))
    else:
        prefixed = len(c.ar_prefix.findall(_decode(folded)))
    ar += 0.5 * ar_letter_tokens + 0.5 * prefixed
    oth = int(np.count_nonzero(flags & _OTHER))
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
