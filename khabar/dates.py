"""Dates in Arabic and Persian news text: Gregorian, Solar Hijri (Jalali) and lunar Hijri.

:func:`extract_dates` finds date expressions in the match form of a text (so Persian and
Arabic-Indic digits, ZWNJ variants and hamza spellings all look alike) and converts each to an ISO
8601 Gregorian date, keeping the original calendar and the expression's span in the input text.

Recognised: ``2016/04/15``, ``15-04-2016``, ``الجمعة 2016/04/15``, ``15 أبريل 2016``,
``15 نيسان/أبريل 2016`` (Levantine, Egyptian and Maghrebi month names), ``۱۷ دی ۱۳۹۸``,
``روز سه‌شنبه ۱۷ دی`` (Persian month names, via jdatetime), ``5 رمضان 1437 هـ`` (via hijridate).
Month and weekday names are data (``data/dates/*.json``).

A date without a year takes it from context: the message's own date when there is one, else the
publication date found in the text; without either, the latest year the text mentions bounds the
year from below and a weekday, when given, picks the first year from there whose date falls on it.
The first date near the top of the text (first 400 characters) is the publication date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np

from khabar.normalize import Normalized, match_key, normalize

__all__ = ["extract_dates", "parse_date_value"]

_DATA = Path(__file__).resolve().parent / "data" / "dates"
_HEADER_CHARS = 400
# Each alternative starts with a literal digit and checks the character before it after matching it, so the regex
# engine can skip to candidate digits instead of trying the lookbehind at every position (same matches as
# ``(?<!\d)(1[3-4]\d\d|19\d\d|20\d\d)(?!\d)``).
_YEAR_RE = re.compile(r"(1(?<!\d1)[3-4]\d\d|1(?<!\d1)9\d\d|2(?<!\d2)0\d\d)(?!\d)")


_BMP = 0x10000
_SCAN_MIN = 200  # from this length, finding the candidate digits by table look-up beats a regex scan


@lru_cache(maxsize=1)
def _digit_mask() -> np.ndarray:
    """Per BMP code point: does ``\\d`` match it (as ``re`` decides)."""
    mask = np.zeros(_BMP, dtype=bool)
    for m in re.finditer(r"\d+", "".join(map(chr, range(_BMP)))):
        mask[m.start() : m.end()] = True
    return mask


@dataclass(frozen=True)
class _Starts:
    """Where the date and year regexes can start in a text."""

    dates: list[int]  # digits not preceded by a letter or digit
    years: list[int]  # 1 or 2 not preceded by a digit


def _starts(s: str) -> _Starts | None:
    """Candidate start positions, or ``None`` where a plain regex scan is as cheap (or the table does not apply)."""
    if len(s) < _SCAN_MIN:
        return None
    cp = np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if int(cp.max()) >= _BMP:
        return None
    dates: list[int] = []
    years: list[int] = []
    for p in np.flatnonzero(_digit_mask()[cp]).tolist():
        # str.isalnum/isdecimal of one character are the tests behind re's [^\W_] and \d.
        prev = s[p - 1] if p else ""
        if not prev.isalnum():
            dates.append(p)
        if not prev.isdecimal() and s[p] in "12":
            years.append(p)
    return _Starts(dates, years)


def _finditer(pattern: re.Pattern[str], s: str, starts: list[int] | None) -> Iterator[re.Match[str]]:
    """``pattern.finditer(s)`` for a pattern whose matches can only begin at ``starts`` (all of them if ``None``).

    Trying the pattern at those positions only, in order and never inside the previous match, finds what the scan
    finds; lookbehinds still see the text before the position.
    """
    if starts is None:
        yield from pattern.finditer(s)
        return
    end = 0
    for p in starts:
        if p < end:
            continue
        m = pattern.match(s, p)
        if m is not None:
            yield m
            end = m.end()


@dataclass(frozen=True)
class _Lexicon:
    months: dict[str, tuple[str, int]]
    weekdays: dict[str, int]
    named_re: re.Pattern[str]
    numeric_re: re.Pattern[str]
    weekday_before_re: re.Pattern[str]
    suffix_calendar: dict[str, str]


def _alt(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    mdata = json.loads((_DATA / "months.json").read_text(encoding="utf-8"))
    wdata = json.loads((_DATA / "weekdays.json").read_text(encoding="utf-8"))
    months: dict[str, tuple[str, int]] = {}
    for cal in ("gregorian", "jalali", "hijri"):
        for num, names in mdata[cal].items():
            for name in names:
                months.setdefault(match_key(name), (cal, int(num)))
    weekdays = {match_key(n): int(k) for k, names in wdata.items() if k != "about" for n in names}
    suffix_calendar = {match_key(s): cal for cal, sfx in mdata["year_suffixes"].items() for s in sfx}
    mon, wd, sfx = _alt(list(months)), _alt(list(weekdays)), _alt(list(suffix_calendar))
    e = r"(?![^\W_])"
    # Dates start with a digit, so the scan can skip ahead; a weekday before it is looked up after.
    weekday_before = rf"(?:(?:روز|يوم)\s+)?(?<![^\W_])(?P<wd>{wd})\s*,?\s*(?:(?:الموافق|مصادف با)\s+)?$"
    # Both patterns start with a digit, checked against the character before it only once matched (``f``, then
    # ``(?<![^\W_]\d)`` = ``(?<![^\W_])`` before ``f``): the engine skips to digits instead of trying a lookbehind
    # at every position. ``f`` is the first digit of ``d``/``Y``/``D2``.
    named = (
        rf"(?P<f>\d)(?<![^\W_]\d)(?P<d>\d?){e}\s*(?:(?:من\s+)?(?:شهر|ماه)\s+)?(?P<m>{mon}){e}"
        rf"(?:\s*[/(-]?\s*(?P<m2>{mon})\s*\)?{e})?"
        rf"(?:\s*,?\s*(?:(?:سال|عام)\s+)?(?P<y>\d{{4}}){e}(?:\s*(?P<sfx>{sfx}){e})?)?"
    )
    numeric = (
        rf"(?P<f>\d)(?<![^\W_]\d)(?:(?P<Y>\d{{3}})\s*(?P<s1>[/.-])\s*(?P<M>\d{{1,2}})\s*(?P=s1)\s*(?P<D>\d{{1,2}})"
        rf"|(?P<D2>\d?)\s*(?P<s2>[/.-])\s*(?P<M2>\d{{1,2}})\s*(?P=s2)\s*(?P<Y2>\d{{4}})){e}"
        rf"(?:\s*(?P<sfx>{sfx}){e})?"
    )
    return _Lexicon(months, weekdays, re.compile(named), re.compile(numeric), re.compile(weekday_before),
                    suffix_calendar)


def _to_gregorian(calendar: str, y: int, m: int, d: int) -> date | None:
    try:
        if calendar == "gregorian":
            return date(y, m, d)
        if calendar == "jalali":
            import jdatetime

            return jdatetime.date(y, m, d).togregorian()
        if calendar == "hijri":
            from hijridate import Hijri

            g = Hijri(y, m, d).to_gregorian()
            return date(g.year, g.month, g.day)
    except (ValueError, OverflowError, TypeError):
        return None
    return None


def _year_calendar(y: int, language: str | None, hint: str | None) -> str:
    if hint:
        return hint
    if y >= 1700:
        return "gregorian"
    # 13xx/14xx: Solar Hijri in Persian text, lunar Hijri in Arabic text.
    return "jalali" if language == "fa" else "hijri"


def _gregorian_year_bounds(text: str, language: str | None, starts: list[int] | None = None) -> int | None:
    """The latest year the text mentions, as a Gregorian year (Jalali/Hijri years converted)."""
    best: int | None = None
    for m in _finditer(_YEAR_RE, text, starts):
        y = int(m.group(1))
        if y >= 1900:
            g = y
        elif language == "fa":
            g = y + 621
        else:
            g = int(y * 0.970229 + 621.5643)
        if g <= date.today().year + 1:
            best = g if best is None else max(best, g)
    return best


def _infer_year(
    calendar: str,
    m: int,
    d: int,
    weekday: int | None,
    context: date | None,
    lower_year: int | None,
) -> tuple[date | None, int | None]:
    """Pick the year of a day-month date; return (gregorian date, year in its calendar)."""
    if context is not None:
        if calendar == "gregorian":
            base = context.year
        elif calendar == "jalali":
            import jdatetime

            base = jdatetime.date.fromgregorian(date=context).year
        else:
            from hijridate import Gregorian

            try:
                base = Gregorian(context.year, context.month, context.day).to_hijri().year
            except (ValueError, OverflowError):
                return None, None  # outside the Umm al-Qura tables
        cands = []
        for y in (base - 1, base, base + 1):
            g = _to_gregorian(calendar, y, m, d)
            if g is not None:
                cands.append((g, y))
        if not cands:
            return None, None
        # News reports the past: prefer the latest date not after the context (a day of slack).
        past = [c for c in cands if c[0] <= context + timedelta(days=1)]
        pool = past or cands
        if weekday is not None:
            wd = [c for c in pool if c[0].weekday() == weekday]
            pool = wd or pool
        return max(pool) if past else min(pool)
    if lower_year is None:
        return None, None
    if calendar == "gregorian":
        start = lower_year
    elif calendar == "jalali":
        start = lower_year - 622
    else:
        start = int((lower_year - 622) * 1.030684) - 1
    floor = date(lower_year, 1, 1)
    first: tuple[date, int] | None = None
    for y in range(start, start + 40):
        g = _to_gregorian(calendar, y, m, d)
        if g is None or g < floor:
            continue
        if first is None:
            first = (g, y)
            if weekday is None:
                break
        if weekday is not None and g.weekday() == weekday:
            return g, y
    if weekday is None and first is not None:
        return first
    return None, None


def parse_date_value(value: object) -> date | None:
    """Parse a message's ``published_at`` (ISO 8601 date or datetime, or ``YYYY/MM/DD``)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    m = re.match(r"\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", match_key(value[:40]))
    if not m:
        return None
    y, mo, d = (int(x) for x in m.groups())
    cal = "gregorian" if y >= 1700 else "jalali"
    return _to_gregorian(cal, y, mo, d)


def extract_dates(
    text: str,
    *,
    language: str | None = None,
    context_date: date | None = None,
    norm: Normalized | None = None,
) -> dict:
    """Find the publication date and other dates in ``text``.

    Args:
        text: the input text.
        language: ``"ar"``/``"fa"`` if known; decides whether a 13xx/14xx year is Jalali or Hijri.
        context_date: the message's own date, used to infer missing years.
        norm: ``normalize(text)`` if already computed.

    Returns:
        ``{"published_at": "YYYY-MM-DD" | None, "published_at_original": {...} | None,
        "dates": [{"date", "calendar", "text", "start", "end"}, ...]}``; ``start``/``end`` index
        ``text``.
    """
    lex = _lexicon()
    norm = norm or normalize(text)
    s = norm.match
    raw: list[dict] = []

    def weekday_before(pos: int) -> tuple[int | None, int]:
        w = lex.weekday_before_re.search(s, max(0, pos - 32), pos)
        if w is None:
            return None, pos
        return lex.weekdays[w.group("wd")], w.start()

    # Every date pattern starts with a digit not preceded by a letter or digit.
    starts = _starts(s)
    date_starts = starts.dates if starts is not None else None
    for m in _finditer(lex.numeric_re, s, date_starts):
        g = m.groupdict()
        if g["Y"]:
            y, mo, d = int(g["f"] + g["Y"]), int(g["M"]), int(g["D"])
        else:
            y, mo, d = int(g["Y2"]), int(g["M2"]), int(g["f"] + g["D2"])
        hint = lex.suffix_calendar.get(g["sfx"]) if g["sfx"] else None
        wd, a = weekday_before(m.start())
        raw.append({"m": m, "a": a, "cal": _year_calendar(y, language, hint), "y": y, "mo": mo, "d": d,
                    "wd": wd})
    taken = [r["m"].span() for r in raw]
    for m in _finditer(lex.named_re, s, date_starts):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        g = m.groupdict()
        cal, mo = lex.months[g["m"]]
        y = int(g["y"]) if g["y"] else None
        if y is not None and cal == "gregorian" and y < 1700:
            y = None
        if g["sfx"] and y is not None:
            cal = lex.suffix_calendar.get(g["sfx"], cal)
        wd, a = weekday_before(m.start())
        raw.append({"m": m, "a": a, "cal": cal, "y": y, "mo": mo, "d": int(g["f"] + g["d"]), "wd": wd})
    raw.sort(key=lambda r: r["a"])

    lower = None if context_date else _gregorian_year_bounds(s, language, starts.years if starts is not None else None)
    published: dict | None = None
    dates: list[dict] = []
    # Dates with a year first: the publication date among them is the context for the rest.
    resolved: dict[int, tuple[date, int]] = {}
    for i, r in enumerate(raw):
        if r["y"] is not None:
            g = _to_gregorian(r["cal"], r["y"], r["mo"], r["d"])
            if g is not None:
                resolved[i] = (g, r["y"])
    header_ctx = None
    for i, r in enumerate(raw):
        if i in resolved and r["a"] < _HEADER_CHARS:
            header_ctx = resolved[i][0]
            break
    ctx = context_date or header_ctx
    for i, r in enumerate(raw):
        if i not in resolved:
            g, y = _infer_year(r["cal"], r["mo"], r["d"], r["wd"], ctx, None if ctx else lower)
            if g is None or y is None:
                continue
            resolved[i] = (g, y)
        g, y = resolved[i]
        if r["wd"] is not None and g.weekday() != r["wd"] and r["y"] is not None:
            # A stated weekday that disagrees with a stated date: keep the date, it is explicit.
            pass
        a, b = norm.to_source(r["a"], r["m"].end())
        item = {"date": g.isoformat(), "calendar": r["cal"], "text": text[a:b], "start": a, "end": b}
        if r["y"] is None:
            item["year_inferred"] = True
        dates.append(item)
        if published is None and r["a"] < _HEADER_CHARS:
            published = item
    return {
        "published_at": published["date"] if published else None,
        "published_at_original": (
            {k: published[k] for k in ("calendar", "text", "start", "end")} if published else None
        ),
        "dates": dates,
    }
