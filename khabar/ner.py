"""Statistical named-entity recognition (PER / ORG / LOC / MISC) for Arabic and Persian news.

One linear-chain CRF per language (python-crfsuite), trained by :mod:`khabar.ner_train` on the
corpora described in ``khabar/models/MODEL_CARD.md``. Features are string features of the token's
match form (script folding), clitic/suffix-stripped stems, affixes, shape, distributional word
clusters, name-lexicon flags and the neighbouring words. At run time the crfsuite weights are
decoded without crfsuite: what a token form contributes to the emission scores is summed once and
cached, so tagging a document is a few array gathers and a Viterbi pass over its sentences (in the
C extension ``khabar._crf`` when it is built, else in numpy).

Example:
    >>> from khabar.ner import tag_spans
    >>> text = "قال وزير الخارجية عباس عراقجي في طهران"
    >>> [(text[s:e], t) for s, e, t, _ in tag_spans(text, "ar")]  # doctest: +SKIP
    [('عباس عراقجي', 'PER'), ('طهران', 'LOC')]

All offsets are indices into the input string, so ``text[start:end]`` is the mention.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LANGUAGES",
    "MODEL_DIR",
    "CRFModel",
    "bio_to_spans",
    "cluster_path",
    "lexicon_path",
    "load_clusters",
    "load_lexicon",
    "model_path",
    "sentence_features",
    "tag_spans",
    "tag_tokens",
    "token_key",
    "tokenize",
    "word_rank",
]

LANGUAGES = ("ar", "fa")


def _load_compiled() -> Any:
    # The compiled tokenizer and decoder are optional (built when a C compiler is present);
    # KHABAR_NER_NUMPY=1 forces the regex tokenizer and numpy decoder, which give the same results.
    if os.environ.get("KHABAR_NER_NUMPY") == "1":
        return None
    try:
        from khabar import _crf
    except ImportError:
        return None
    return _crf


_compiled = _load_compiled()
_cdecode: Callable[..., None] | None = _compiled.decode if _compiled is not None else None
_ctokenize: Callable[[str], tuple[list[str], list[int], list[int]]] | None = (
    _compiled.tokenize if _compiled is not None else None)
_cemissions: Callable[..., None] | None = getattr(_compiled, "emissions", None)
MODEL_DIR = Path(__file__).resolve().parent / "models"

# A token is a run of letters/digits with Arabic combining marks, tatweel and ZWNJ/ZWJ kept inside
# (Persian writes "می‌گوید" with a ZWNJ; harakat are not \w in Python), a number with its internal
# separators, or any other single non-space character.
_MARKS = "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u200c\u200d"
_TOKEN_RE = re.compile(rf"\d+(?:[.,\u066b\u066c/:]\d+)+|(?:[^\W_]|[{_MARKS}])+|\S")
# The same tokens for a text without "_": one character class is much faster than the alternation.
_FAST_TOKEN_RE = re.compile(rf"\d+(?:[.,\u066b\u066c/:]\d+)+|[\w{_MARKS}]+|\S")
_SENT_END = frozenset({".", "!", "?", "؟", "…"})
_SENT_END_RE = re.compile("[" + re.escape("".join(sorted(_SENT_END))) + "]")
_LATIN_RE = re.compile(r"[A-Za-z]")

# Minimal script folding, used only if khabar.normalize.match_key is unavailable. It mirrors what a
# match form must do for NER features: Arabic/Persian letter variants to one form, no diacritics,
# no tatweel/ZWNJ. The shipped models record which folding they were trained with (see _fold_name).
_LOCAL_FOLD = str.maketrans(
    {
        "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ی": "ي", "ئ": "ي", "ك": "ک", "ة": "ه",
        "ۀ": "ه", "ؤ": "و", "ـ": None, "\u200c": None, "\u200d": None,
        **{chr(c): None for c in range(0x064B, 0x0660)}, "\u0670": None,
    }
)
# Digits are collapsed for features: ARMAN replaced every number by "0" and the value never
# identifies an entity.
_DIGITS0 = str.maketrans({c: "0" for c in "0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹"})


def _local_fold(token: str) -> str:
    return token.translate(_LOCAL_FOLD).lower()


def _pick_fold() -> tuple[Callable[[str], str], str]:
    try:
        from khabar.normalize import match_key
    except ImportError:
        return _local_fold, "local"
    return match_key, "match_key"


_fold, _fold_name = _pick_fold()

_AR_PROCLITICS = ("وبال", "وكال", "وال", "فال", "بال", "كال", "لل", "ال")
_AR_PROCLITICS = tuple(sorted({_fold(p) for p in _AR_PROCLITICS}, key=len, reverse=True))
_AR_SINGLE = frozenset(_fold(c) for c in "وفبلك")
_FA_SUFFIXES = tuple(
    sorted({_fold(s) for s in ("هایی", "های", "ها", "ترین", "تر", "ای", "یی", "ی", "ان", "ات")},
           key=len, reverse=True)
)


def token_key(token: str) -> str:
    """Return the feature form of a token: its match form with digits collapsed to 0.

    Args:
        token: A token as it stands in the text.

    Returns:
        The folded, lower-cased form used by every word-identity feature.
    """
    return _fold(token).translate(_DIGITS0)


# The run-time row cache keeps each form's result: its look-ups skip match_key's LRU cache, which they
# would only churn (a new form is computed once); training keeps the cached token_key.
_fold_once: Callable[[str], str] = getattr(_fold, "__wrapped__", _fold)


def _token_key_once(token: str) -> str:
    """:func:`token_key` without the shared cache."""
    return _fold_once(token).translate(_DIGITS0)


def tokenize(text: str) -> list[tuple[int, int]]:
    """Split text into tokens.

    Args:
        text: Any string.

    Returns:
        ``(start, end)`` index pairs into ``text``, in order.
    """
    pattern = _TOKEN_RE if "_" in text else _FAST_TOKEN_RE
    return list(map(re.Match.span, pattern.finditer(text)))


def _shape(token: str) -> str:
    c = token[0]
    if c.isdigit():
        return "num"
    if not c.isalnum():
        return "punc"
    if _LATIN_RE.match(c):
        return "latC" if c.isupper() else "lat"
    return "w"


def _len_bucket(n: int) -> str:
    return "1" if n <= 1 else "2" if n == 2 else "3" if n == 3 else "5" if n <= 5 else "8" if n <= 8 else "9"


def _stem_ar(key: str) -> tuple[str, str]:
    for p in _AR_PROCLITICS:
        if key.startswith(p) and len(key) - len(p) >= 2:
            return key[len(p):], p
    if len(key) >= 5 and key[0] in _AR_SINGLE:
        # Only a guess ("وليد" is a name): exposed as a separate feature, the CRF weighs it.
        return key[1:], key[0] + "?"
    return key, ""


def _stem_fa(token: str, key: str) -> tuple[str, str]:
    if "\u200c" in token:
        head = token_key(token.split("\u200c", 1)[0])
        if len(head) >= 2:
            return head, "zw"
    for s in _FA_SUFFIXES:
        if key.endswith(s) and len(key) - len(s) >= 3:
            return key[: -len(s)], s
    return key, ""


_clusters: dict[str, dict[str, tuple[str, str]]] = {}


def cluster_path(language: str, model_dir: Path | None = None) -> Path:
    """Path of a language's word-cluster table (built by ``khabar train-ner``)."""
    return (model_dir or MODEL_DIR) / f"ner-clusters-{language}.tsv"


def load_clusters(language: str, path: Path | None = None) -> int:
    """(Re)load a language's word clusters and reset its feature cache.

    Called lazily with the shipped table; the trainer calls it with the table it has just built.

    Args:
        language: ``ar`` or ``fa``.
        path: A ``key<TAB>coarse<TAB>fine`` table; default: the shipped one (missing file: no clusters).

    Returns:
        Number of words loaded.
    """
    path = path or cluster_path(language)
    table: dict[str, tuple[str, str]] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    table[parts[0]] = (parts[1], parts[2])
    _clusters[language] = table
    _caches[language] = {}
    _ranks.pop(language, None)
    return len(table)


_ranks: dict[str, dict[str, int]] = {}


def word_rank(key: str, language: str) -> int | None:
    """Frequency rank of a feature form in the unlabeled news the word clusters were built from.

    The cluster table lists its words most frequent first, so it doubles as a frequency list: a
    spelling that is common on its own is a word of the language, not a typo of a rarer name.

    Args:
        key: A feature form (:func:`token_key`).
        language: ``ar`` or ``fa``.

    Returns:
        0 for the most frequent word, ``None`` for a form outside the table (rare or unseen).
    """
    ranks = _ranks.get(language)
    if ranks is None:
        table = _clusters.get(language)
        if table is None:
            load_clusters(language)
            table = _clusters[language]
        ranks = _ranks[language] = {k: i for i, k in enumerate(table)}
    return ranks.get(key)


_NO_CLUSTER = ("-", "-")


def _cluster_table(language: str) -> dict[str, tuple[str, str]]:
    table = _clusters.get(language)
    if table is None:
        load_clusters(language)
        table = _clusters[language]
    return table


def _cluster(language: str, key: str, stem: str) -> tuple[str, str]:
    table = _cluster_table(language)
    return table.get(key) or table.get(stem) or _NO_CLUSTER


# Lexicon flags of a form (built by the trainer from the gazetteer and khabar/data/ner word lists):
# B/I/L/U + type = first / inner / last word of a multi-word name, or a one-word name; T = title
# word, N = given name, OT / LT = ORG / LOC head word ("وزارة", "استان"). "w" rows hold the flags
# of exact match forms, "s" rows those of clitic/suffix-stripped stems.
_lexicons: dict[str, tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]] = {}
_NO_FLAGS: tuple[str, ...] = ()


def lexicon_path(language: str, model_dir: Path | None = None) -> Path:
    """Path of a language's name-lexicon table (built by ``khabar train-ner`` from the gazetteer)."""
    return (model_dir or MODEL_DIR) / f"ner-lexicon-{language}.tsv"


def load_lexicon(language: str, path: Path | None = None) -> int:
    """(Re)load a language's name lexicon and reset its feature cache.

    Args:
        language: ``ar`` or ``fa``.
        path: A ``w|s<TAB>form<TAB>flag,flag...`` table; default: the shipped one (missing: no flags).

    Returns:
        Number of forms loaded.
    """
    path = path or lexicon_path(language)
    words: dict[str, tuple[str, ...]] = {}
    stems: dict[str, tuple[str, ...]] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3 and parts[2]:
                    (words if parts[0] == "w" else stems)[parts[1]] = tuple(parts[2].split(","))
    _lexicons[language] = (words, stems)
    _caches[language] = {}
    return len(words) + len(stems)


def _lexicon(language: str) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    lex = _lexicons.get(language)
    if lex is None:
        load_lexicon(language)
        lex = _lexicons[language]
    return lex


_Entry = tuple[list[str], list[str], list[str], list[str], list[str], str]
_CACHE_MAX = 200_000
_caches: dict[str, dict[str, _Entry]] = {"ar": {}, "fa": {}}


def _entry(token: str, language: str) -> _Entry:
    """Features contributed by one token form: its own, and as the -2/-1/+1/+2 neighbour (cached)."""
    cache = _caches.get(language)
    if cache is None:
        cache = _caches[language] = {}
    e = cache.get(token)
    if e is not None:
        return e
    e = _features(token, language)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[token] = e
    return e


def _features(token: str, language: str) -> _Entry:
    """What :func:`_entry` returns, uncached (the tagger keeps summed weight rows instead)."""
    key = token_key(token)
    if not key:
        key = token
    shape = _shape(token)
    if language == "fa":
        stem, aff = _stem_fa(token, key)
    else:
        stem, aff = _stem_ar(key)
    c64, c512 = _cluster(language, key, stem)
    own = [
        "c=" + c64,
        "C=" + c512,
        "w=" + key,
        "st=" + stem,
        "af=" + aff,
        "p2=" + key[:2],
        "p3=" + key[:3],
        "p4=" + key[:4],
        "s1=" + key[-1:],
        "s2=" + key[-2:],
        "s3=" + key[-3:],
        "s4=" + key[-4:],
        "ss3=" + stem[-3:],
        "sh=" + shape,
        "ln=" + _len_bucket(len(key)),
    ]
    prev1 = ["-1w=" + key, "-1st=" + stem, "-1sh=" + shape, "-1c=" + c64, "-1C=" + c512]
    next1 = ["+1w=" + key, "+1st=" + stem, "+1sh=" + shape, "+1c=" + c64, "+1C=" + c512]
    words, stems = _lexicon(language)
    exact = words.get(key, _NO_FLAGS)
    stemmed = stems.get(stem, _NO_FLAGS)
    if exact or stemmed:
        own += ["g=" + f for f in exact]
        own += ["gs=" + f for f in stemmed]
        either = sorted({*exact, *stemmed})
        prev1 += ["-1g=" + f for f in either]
        next1 += ["+1g=" + f for f in either]
    prev2 = ["-2w=" + key, "-2c=" + c64]
    next2 = ["+2w=" + key, "+2c=" + c64]
    return own, prev1, next1, prev2, next2, key


_BOS1 = ["-1w=<s>"]
_BOS2 = ["-2w=<s>"]
_EOS1 = ["+1w=</s>"]
_EOS2 = ["+2w=</s>"]


def sentence_features(tokens: Sequence[str], language: str) -> list[list[str]]:
    """Build the CRF feature lists of one token sequence.

    Args:
        tokens: The tokens of one sentence.
        language: ``"ar"`` or ``"fa"``.

    Returns:
        One list of feature strings per token.
    """
    ents = [_entry(t, language) for t in tokens]
    n = len(ents)
    out: list[list[str]] = []
    for i, e in enumerate(ents):
        f = e[0] + (ents[i - 1][1] if i >= 1 else _BOS1)
        f += ents[i - 2][3] if i >= 2 else _BOS2
        if i + 1 < n:
            nx = ents[i + 1]
            f += nx[2]
            f.append("w|+1=" + e[5] + "|" + nx[5])
        else:
            f += _EOS1
        f += ents[i + 2][4] if i + 2 < n else _EOS2
        if i >= 1:
            f.append("-1|w=" + ents[i - 1][5] + "|" + e[5])
        out.append(f)
    return out


def bio_to_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Read entity chunks from BIO tags, conlleval-style (an I- that does not continue starts a chunk).

    Args:
        tags: ``O``, ``B-X`` or ``I-X`` per token.

    Returns:
        ``(first_token, last_token_exclusive, type)`` per entity.
    """
    spans: list[tuple[int, int, str]] = []
    start, typ = -1, ""
    for i, tag in enumerate(tags):
        if tag == "O" or not tag:
            if start >= 0:
                spans.append((start, i, typ))
            start, typ = -1, ""
            continue
        prefix, _, t = tag.partition("-")
        if prefix == "B" or t != typ or start < 0:
            if start >= 0:
                spans.append((start, i, typ))
            start, typ = i, t
    if start >= 0:
        spans.append((start, len(tags), typ))
    return spans


_PIECE = 56
_CUT_AFTER = frozenset(",،;؛:")


def _cut(bounds: Sequence[tuple[int, int]], breakable: Any) -> list[tuple[int, int]]:
    """Split sentences longer than _PIECE tokens after punctuation (hard cut if there is none)."""
    out: list[tuple[int, int]] = []
    for i, j in bounds:
        while j - i > _PIECE:
            cut = i + _PIECE
            if breakable is not None:
                for k in range(i + _PIECE - 1, i + _PIECE // 4, -1):
                    if breakable[k]:
                        cut = k + 1
                        break
            out.append((i, cut))
            i = cut
        out.append((i, j))
    return out


# Which feature templates a form's parts feed, by table: 0 own, 1 as the -1 neighbour, 2 as +1, 3 as -2,
# 4 as +2 (the groups of :func:`_features`, which is the definition; a test holds the two together).
_KEY_TEMPLATES = ((0, "w"), (1, "-1w"), (2, "+1w"), (3, "-2w"), (4, "+2w"))
_STEM_TEMPLATES = ((0, "st"), (1, "-1st"), (2, "+1st"))
_CLUSTER_TEMPLATES = ((0, "c"), (0, "C"), (1, "-1c"), (1, "-1C"), (2, "+1c"), (2, "+1C"), (3, "-2c"), (4, "+2c"))
_NO_IDS: dict[str, int] = {}


def _doubled(rows: Any) -> Any:
    """``rows`` with as many zero rows appended (a table of cached sums grows by doubling)."""
    import numpy as np

    return np.concatenate([rows, np.zeros_like(rows)])


class CRFModel:
    """A trained linear-chain CRF, decoded by ``khabar._crf`` (or numpy where it is not built).

    The weights come from a crfsuite model file. Each distinct token form's contribution to the
    emission scores (its own features, and its features as the -2/-1/+1/+2 neighbour) is summed once
    and kept as rows of five matrices, so tagging a document is a few array gathers plus a Viterbi
    pass over its sentences: no per-token feature strings are built for forms already seen.
    """

    def __init__(self, path: Path, language: str) -> None:
        """Load a crfsuite model file for a language (``ar`` or ``fa``)."""
        import numpy as np
        import pycrfsuite

        tagger = pycrfsuite.Tagger()
        tagger.open(str(path))
        info = tagger.info()
        self.language = language
        self.labels: list[str] = list(tagger.labels())
        self.types = [lab[2:] if lab != "O" else "" for lab in self.labels]
        self._type_names = ["", *sorted({t for t in self.types if t})]
        self._type_id = np.array([self._type_names.index(t) for t in self.types])
        self._o_id = self.labels.index("O") if "O" in self.labels else -1
        self._is_b = np.array([lab.startswith("B-") for lab in self.labels])
        n = len(self.labels)
        li = {lab: i for i, lab in enumerate(self.labels)}
        self.trans = np.zeros((n, n))
        for (a, b), w in info.transitions.items():
            self.trans[li[a], li[b]] = w
        self.exp_trans = np.exp(self.trans)  # C-contiguous, as the compiled decoder needs
        weights: dict[str, Any] = {}
        for (attr, lab), w in info.state_features.items():
            v = weights.get(attr)
            if v is None:
                v = weights[attr] = np.zeros(n)
            v[li[lab]] = w
        # Bigram features: pair of keys -> (vector for the left token, vector for the right token).
        pairs: dict[tuple[str, str], tuple[Any, Any]] = {}
        zero = np.zeros(n)
        for attr, v in weights.items():
            if attr.startswith(("w|+1=", "-1|w=")):
                pair = tuple(attr[5:].split("|", 1))
                if len(pair) != 2:
                    continue
                left, right = pairs.get(pair, (zero, zero))  # type: ignore[arg-type]
                pairs[pair] = (v, right) if attr[0] == "w" else (left, v)  # type: ignore[index]
        # Feature string -> row of one weight matrix; row 0 is zero and pads every form's list of rows,
        # so summing a batch of forms is one gather and one reduction (see _add_rows).
        self._fid: dict[str, int] = {attr: i for i, attr in enumerate(weights, 1)}
        self._w = np.zeros((len(weights) + 1, n))
        for i, v in enumerate(weights.values(), 1):
            self._w[i] = v
        self.rows: dict[str, int] = {}
        self._tables = np.zeros((5, 1024, n))
        self._punct = np.zeros(1024, dtype=bool)
        # Bigram features as integer codes: every form that starts (ends) some model pair gets a left
        # (right) id, and a pair is found by binary search of left * n_right + right in sorted codes.
        left_ids = {a: i for i, a in enumerate(dict.fromkeys(a for a, _ in pairs))}
        right_ids = {b: i for i, b in enumerate(dict.fromkeys(b for _, b in pairs))}
        self._left_ids, self._right_ids = left_ids, right_ids
        self._n_right = max(len(right_ids), 1)
        codes = [left_ids[a] * self._n_right + right_ids[b] for a, b in pairs]
        order = np.argsort(np.array(codes, dtype=np.int64), kind="stable")
        self._pair_codes = np.array(codes, dtype=np.int64)[order]
        pair_vs = list(pairs.values())
        self._pair_lv = np.array([pair_vs[i][0] for i in order]).reshape(len(order), n)
        self._pair_rv = np.array([pair_vs[i][1] for i in order]).reshape(len(order), n)
        self._lid = np.full(1024, -1, dtype=np.int64)
        self._rid = np.full(1024, -1, dtype=np.int64)
        # Row 0 is the sentence boundary as a neighbour.
        for t, feat in ((1, "-1w=<s>"), (2, "+1w=</s>"), (3, "-2w=<s>"), (4, "+2w=</s>")):
            self._tables[t, 0] = weights.get(feat, zero)
        self._n = 1
        self._used = np.zeros(1024, dtype=np.int64)  # serial number of the last document using a row
        # Feature ids by template and value ("w=كتب" -> _tpl["w"]["كتب"]), and summed "blocks": what one
        # part of a form (its match form, stem, prefix, suffix, clusters...) adds to all five tables.
        # A new form's rows are then a sum of about nine cached blocks (see _add_rows).
        self._tpl: dict[str, dict[str, int]] = {}
        for attr, i in self._fid.items():
            name, sep, value = attr.partition("=")
            if sep:
                self._tpl.setdefault(name, {})[value] = i
        self._key_vocab = frozenset().union(*(self._tpl.get(t, {}) for _, t in _KEY_TEMPLATES))
        self._stem_vocab = frozenset().union(*(self._tpl.get(t, {}) for _, t in _STEM_TEMPLATES))
        self._reset_blocks()
        self._serial = 0
        # Rows move when the cache is compacted, so a document's look-up and gathers hold the lock.
        self._lock = threading.Lock()

    def _reset_blocks(self) -> None:
        import numpy as np

        self._blocks = np.zeros((256, 5, len(self.labels)))
        self._nb = 1  # block 0 adds nothing
        # Affix, prefix and suffix parts only feed a form's own row, and they are most of the parts:
        # kept as single rows, they take a fifth of the memory.
        self._own = np.zeros((256, len(self.labels)))
        self._no = 1
        # Block ids by the part they stand for: clusters, affix, prefix, suffix, stem suffix, shape
        # and length, match form, stem, lexicon flags.
        self._block_ids: tuple[dict[Any, int], ...] = tuple({} for _ in range(9))

    def _block(self, parts: Sequence[tuple[int, str, str]]) -> int:
        """Id of the block summing the weights of ``(table, template, value)`` features, in order.

        0 when none has a weight; below 0 (``-row`` of the own-row table) when all feed the own table.
        """
        found = [(g, i) for g, t, v in parts if (i := self._tpl.get(t, _NO_IDS).get(v))]
        if not found:
            return 0
        if all(g == 0 for g, _ in found):
            return -self._own_row([i for _, i in found])
        if self._nb == len(self._blocks):
            self._blocks = _doubled(self._blocks)
        block = self._blocks[self._nb]
        for g, i in found:
            block[g] += self._w[i]
        self._nb += 1
        return self._nb - 1

    def _own_row(self, fids: Sequence[int]) -> int:
        if self._no == len(self._own):
            self._own = _doubled(self._own)
        row = self._own[self._no]
        for i in fids:
            row += self._w[i]
        self._no += 1
        return self._no - 1

    def _form_blocks(self, tokens: Sequence[str]) -> list[tuple[list[int], str]]:
        """Blocks of each token form (their sum is its five table rows) and its feature form.

        A block id below 0 is row ``-id`` of the own-row table (a part that only feeds the form's own row).

        Equal to summing the weights of :func:`_features` group by group (up to float rounding; a
        test holds them together), without building its strings. Most parts were seen before, so
        this is mostly dictionary look-ups.
        """
        lang = self.language
        fa = lang == "fa"
        clusters = _cluster_table(lang)
        words, stems = _lexicon(lang)
        make = self._block
        by_cluster, by_affix, by_prefix, by_suffix, by_ss3, by_shape, by_key, by_stem, by_flags = self._block_ids
        key_vocab, stem_vocab = self._key_vocab, self._stem_vocab
        out: list[tuple[list[int], str]] = []
        for token in tokens:
            key = _token_key_once(token) or token
            shape = _shape(token)
            stem, aff = _stem_fa(token, key) if fa else _stem_ar(key)
            c64, c512 = clusters.get(key) or clusters.get(stem) or _NO_CLUSTER
            if (cb := by_cluster.get((c64, c512))) is None:
                cb = by_cluster[c64, c512] = make([(g, t, c512 if t[-1] == "C" else c64)
                                                   for g, t in _CLUSTER_TEMPLATES])
            if (ab := by_affix.get(aff)) is None:
                ab = by_affix[aff] = make([(0, "af", aff)])
            k4 = key[:4]
            if (pb := by_prefix.get(k4)) is None:
                pb = by_prefix[k4] = make([(0, "p2", key[:2]), (0, "p3", key[:3]), (0, "p4", k4)])
            s4 = key[-4:]
            if (sb := by_suffix.get(s4)) is None:
                sb = by_suffix[s4] = make([(0, f"s{j}", key[-j:]) for j in range(1, 5)])
            s3 = stem[-3:]
            if (s3b := by_ss3.get(s3)) is None:
                s3b = by_ss3[s3] = make([(0, "ss3", s3)])
            n = min(len(key), 9)
            if (hb := by_shape.get((shape, n))) is None:
                hb = by_shape[shape, n] = make([(0, "sh", shape), (0, "ln", _len_bucket(n)),
                                                (1, "-1sh", shape), (2, "+1sh", shape)])
            blocks = [cb, ab, pb, sb, s3b, hb]
            # A form's own match form and stem mostly carry no weight at all (unseen in training).
            if key in key_vocab:
                if (kb := by_key.get(key)) is None:
                    kb = by_key[key] = make([(g, t, key) for g, t in _KEY_TEMPLATES])
                blocks.append(kb)
            if stem in stem_vocab:
                if (tb := by_stem.get(stem)) is None:
                    tb = by_stem[stem] = make([(g, t, stem) for g, t in _STEM_TEMPLATES])
                blocks.append(tb)
            exact = words.get(key, _NO_FLAGS)
            stemmed = stems.get(stem, _NO_FLAGS)
            if exact or stemmed:
                if (gb := by_flags.get((exact, stemmed))) is None:
                    either = sorted({*exact, *stemmed})
                    gb = by_flags[exact, stemmed] = make([
                        *((0, "g", f) for f in exact), *((0, "gs", f) for f in stemmed),
                        *((1, "-1g", f) for f in either), *((2, "+1g", f) for f in either)])
                blocks.append(gb)
            out.append((blocks, key))
        return out

    def _add_rows(self, tokens: Sequence[str]) -> None:
        """Sum the weight rows of token forms not seen before (all of a document's at once).

        The caller holds ``self._lock``.
        """
        import numpy as np

        new = [t for t in dict.fromkeys(tokens) if t not in self.rows]
        if not new:
            return
        k = len(new)
        while self._n + k > self._tables.shape[1]:
            size = self._tables.shape[1]
            grown = np.zeros((5, 2 * size, self._tables.shape[2]))
            grown[:, :size] = self._tables
            self._tables = grown
            self._punct = np.concatenate([self._punct, np.zeros(size, dtype=bool)])
            self._lid = np.concatenate([self._lid, np.full(size, -1, dtype=np.int64)])
            self._rid = np.concatenate([self._rid, np.full(size, -1, dtype=np.int64)])
            self._used = np.concatenate([self._used, np.zeros(size, dtype=np.int64)])
        form_blocks = self._form_blocks(new)
        width = max(len(b) for b, _ in form_blocks)
        ids = np.zeros((k, width), dtype=np.int64)
        for i, (b, _) in enumerate(form_blocks):
            ids[i, : len(b)] = b
        full = np.where(ids > 0, ids, 0)
        own = np.where(ids < 0, -ids, 0)
        sums = self._blocks[full].sum(1)
        sums[:, 0] += self._own[own].sum(1)
        r0 = self._n
        self._tables[:, r0: r0 + k] = sums.transpose(1, 0, 2)
        lget, rget = self._left_ids.get, self._right_ids.get
        self._punct[r0: r0 + k] = [token in _CUT_AFTER for token in new]
        self._lid[r0: r0 + k] = [lget(key, -1) for _, key in form_blocks]
        self._rid[r0: r0 + k] = [rget(key, -1) for _, key in form_blocks]
        self._n += k
        self.rows.update(zip(new, range(r0, r0 + k), strict=True))

    def _reset_cache(self) -> None:
        with self._lock:
            self.rows.clear()
            self._n = 1
            self._reset_blocks()

    def _evict(self) -> None:
        """Keep the most recently used half of the cached forms; the caller holds ``self._lock``.

        A stream's vocabulary never ends, so the cache is bounded; dropping all of it would make
        every form new again, while a recency cut keeps the working vocabulary warm.
        """
        import numpy as np

        n = self._n
        keep_n = min(n - 1, _CACHE_MAX // 2)
        recent = np.argsort(self._used[1:n], kind="stable")[n - 1 - keep_n:] + 1
        keep = np.concatenate([np.zeros(1, dtype=np.int64), np.sort(recent)])
        remap = np.full(n, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        m = len(keep)
        self._tables[:, :m] = self._tables[:, keep]
        self._punct[:m] = self._punct[keep]
        self._lid[:m] = self._lid[keep]
        self._rid[:m] = self._rid[keep]
        self._used[:m] = self._used[keep]
        new_row = remap.tolist()
        self.rows = {t: new_row[r] for t, r in self.rows.items() if new_row[r] >= 0}
        self._n = m
        self._reset_blocks()  # their caches grow with the stream's prefixes and suffixes too

    def emissions(self, tokens: Sequence[str], bounds: Sequence[tuple[int, int]]) -> tuple[Any, Any]:
        """Emission scores (tokens x labels) of tokens split into [i, j) sentences.

        Returns:
            The score matrix and a boolean array marking punctuation tokens (safe decoding cuts).
        """
        import numpy as np

        with self._lock:
            if self._n + len(tokens) >= _CACHE_MAX:
                # Never in the middle of a document: rows looked up before would be stale.
                self._evict()
            get = self.rows.get
            rows_l = list(map(get, tokens))
            if None in rows_l:
                missing = [i for i, r in enumerate(rows_l) if r is None]
                self._add_rows([tokens[i] for i in missing])
                for i in missing:
                    rows_l[i] = get(tokens[i])
            rows = np.array(rows_l, dtype=np.int64)
            self._serial += 1
            self._used[rows] = self._serial
            return self._emissions(rows, bounds)

    def _emissions(self, rows: Any, bounds: Sequence[tuple[int, int]]) -> tuple[Any, Any]:
        import numpy as np

        nt = len(rows)
        if _cemissions is not None:
            em = np.empty((nt, self._tables.shape[2]))
            _cemissions(self._tables, rows, np.array(bounds, dtype=np.int64).reshape(-1, 2), self._lid, self._rid,
                        self._pair_codes, self._pair_lv, self._pair_rv, self._n_right, em)
            return em, self._punct[rows]
        if len(bounds) == 1:
            pos = np.arange(nt)
            rem = pos[::-1]
        else:
            b = np.array(bounds, dtype=np.int64)
            starts = np.zeros(nt, dtype=np.int64)
            ends = np.zeros(nt, dtype=np.int64)
            starts[b[:, 0]] = b[:, 0]
            ends[b[:, 0]] = b[:, 1]
            starts = np.maximum.accumulate(starts)
            ends = np.maximum.accumulate(ends)
            pos = np.arange(nt) - starts
            rem = ends - 1 - np.arange(nt)
        tab = self._tables
        shifted = np.zeros((4, nt), dtype=np.int64)
        shifted[0, 1:] = rows[:-1]
        shifted[1, 2:] = rows[:-2]
        shifted[2, :-1] = rows[1:]
        shifted[3, :-2] = rows[2:]
        shifted[0][pos < 1] = 0
        shifted[1][pos < 2] = 0
        shifted[2][rem < 1] = 0
        shifted[3][rem < 2] = 0
        # take() on each (contiguous) table is ~2.5x faster than fancy indexing tab[k, rows].
        em = tab[0].take(rows, 0)
        em += tab[1].take(shifted[0], 0)
        em += tab[2].take(shifted[2], 0)
        em += tab[3].take(shifted[1], 0)
        em += tab[4].take(shifted[3], 0)
        # Bigram features: pairs of a form with a left id and the next form with a right id.
        li = self._lid[rows[:-1]]
        ri = self._rid[rows[1:]]
        at = np.flatnonzero((li >= 0) & (ri >= 0) & (rem[:-1] >= 1))
        if len(at) and len(self._pair_codes):
            code = li[at] * self._n_right + ri[at]
            k = np.minimum(np.searchsorted(self._pair_codes, code), len(self._pair_codes) - 1)
            hit = self._pair_codes[k] == code
            at, k = at[hit], k[hit]
            if len(at):
                # A token gets its right-hand share (pair i-1, i) before its left-hand one (pair i, i+1),
                # the order of the former per-pair loop: float sums stay bit-identical.
                em[at + 1] += self._pair_rv[k]
                em[at] += self._pair_lv[k]
        return em, self._punct[rows]

    def decode(self, em: Any, bounds: Sequence[tuple[int, int]], breakable: Any = None,
               marginals: bool = False) -> tuple[Any, Any]:
        """Viterbi labels (and optionally the chosen labels' marginal probabilities) per token.

        Sentences longer than ``_PIECE`` tokens are decoded in pieces cut after a punctuation token
        (emissions still see the whole sentence): the decoder's cost is the longest piece, and a
        comma's O label decouples the two sides almost completely anyway.
        """
        import numpy as np

        nt, nl = em.shape
        out = np.zeros(nt, dtype=np.int64)
        conf = np.ones(nt) if marginals else None
        pieces = _cut(bounds, breakable)
        if _cdecode is not None:
            _cdecode(np.ascontiguousarray(em, dtype=np.float64), np.array(pieces, dtype=np.int64).reshape(-1, 2),
                     self.trans, self.exp_trans, self._o_id, out, conf)
            return out, conf
        pieces.sort(key=lambda b: b[1] - b[0])
        ar = np.arange(nl)
        trans_t = np.ascontiguousarray(self.trans.T)[None]
        et = self.exp_trans
        et_t = et.T
        # Arrays are laid out time-major (step, piece, label) so that each step works on contiguous
        # rows; every arithmetic operation is the one of the piece-major version, on the same operand
        # shapes, so the results are bit-identical.
        for c in range(0, len(pieces), 512):
            chunk = pieces[c: c + 512]
            lens = np.array([j - i for i, j in chunk])
            starts = np.array([i for i, _ in chunk])
            m = int(lens[-1])
            s = len(chunk)
            steps = np.arange(m)
            mask = steps[:, None] < lens[None, :]  # (M, S)
            idx = np.where(mask, starts[None, :] + steps[:, None], 0)
            x = em[idx]  # (M, S, L)
            # Pieces are sorted by length: at step t the active ones are a suffix [first[t]:].
            first = np.searchsorted(lens, steps, side="right").tolist()
            back = np.empty((m, s, nl), dtype=np.int64)
            back[:] = ar
            score = x[0].copy()
            for t in range(1, m):
                k = first[t]
                sk = score[k:]
                # cand[s, j, i]: reaching label j from label i; reducing the last (contiguous) axis
                # is much cheaper in numpy than the middle one, and sees the same values in order.
                cand = sk[:, None, :] + trans_t
                cand.argmax(2, out=back[t, k:])
                cand.max(2, out=sk)
                sk += x[t, k:]
            best = score.argmax(1)
            path = np.empty((m, s), dtype=np.int64)
            rs = np.arange(s)
            for t in range(m - 1, 0, -1):
                path[t] = best
                best = back[t][rs, best]
            path[0] = best
            out[idx[mask]] = path[mask]
            if conf is None:
                continue
            # Confidence is only needed where an entity was found.
            sel = np.flatnonzero((path != self._o_id).any(0) & mask.any(0))
            if not len(sel):
                continue
            x, lens, path, idx, mask = x[:, sel], lens[sel], path[:, sel], idx[:, sel], mask[:, sel]
            m = int(lens[-1])
            s = len(sel)
            first = np.searchsorted(lens, np.arange(m), side="right").tolist()
            x = x[:m]
            g = np.exp(x - x.max(2, keepdims=True))
            # Finished pieces keep ones in alpha and beta: those positions are masked out anyway.
            alpha = np.ones_like(g)
            alpha[0] = g[0] / g[0].sum(1, keepdims=True)
            for t in range(1, m):
                k = first[t]
                ak = alpha[t, k:]
                np.matmul(alpha[t - 1, k:], et, out=ak)
                ak *= g[t, k:]
                if t % 8 == 0:
                    ak /= ak.sum(1, keepdims=True)
            beta = np.ones_like(g)
            for t in range(m - 2, -1, -1):
                k = first[t + 1]
                bk = beta[t, k:]
                np.matmul(g[t + 1, k:] * beta[t + 1, k:], et_t, out=bk)
                if t % 8 == 0:
                    bk /= bk.sum(1, keepdims=True)
            p = alpha * beta
            p /= p.sum(2, keepdims=True)
            path, idx, mask = path[:m], idx[:m], mask[:m]
            chosen = np.take_along_axis(p, path[:, :, None], 2)[:, :, 0]
            conf[idx[mask]] = chosen[mask]
        return out, conf

    def spans(self, ids: Any, conf: Any, bounds: Sequence[tuple[int, int]],
              starts: Sequence[int], ends: Sequence[int]) -> list[tuple[int, int, str, float]]:
        """Entity chunks (conlleval rules) of decoded label ids, as character spans with confidence."""
        import numpy as np

        typ = self._type_id[ids]
        first = np.zeros(len(ids), dtype=bool)
        first[[i for i, _ in bounds]] = True
        prev = np.empty_like(typ)  # the previous token's type; a sentence's first token ignores it
        prev[0] = 0
        prev[1:] = typ[:-1]
        begin = (typ > 0) & (self._is_b[ids] | first | (prev != typ))
        a = np.flatnonzero(begin)
        if not len(a):
            return []
        # A chunk runs from its begin to the next token that does not continue it.
        stop = np.flatnonzero(~((typ > 0) & ~begin))
        b = np.append(stop, len(ids))[np.searchsorted(stop, a + 1)]
        low = np.minimum.reduceat(np.append(conf, 1.0), np.stack([a, b], 1).ravel())[::2]
        names = self._type_names
        return [(starts[i], ends[j - 1], names[t], round(c, 4))
                for i, j, t, c in zip(a.tolist(), b.tolist(), typ[a].tolist(), low.tolist(), strict=True)]

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """BIO labels of several token sequences (each tagged as one sentence)."""
        toks: list[str] = []
        bounds: list[tuple[int, int]] = []
        for sent in sentences:
            if sent:
                bounds.append((len(toks), len(toks) + len(sent)))
                toks.extend(t if t.strip() else "_" for t in sent)
        if not toks:
            return [[] for _ in sentences]
        em, breakable = self.emissions(toks, bounds)
        ids, _ = self.decode(em, bounds, breakable)
        labels = [self.labels[k] for k in ids.tolist()]
        out: list[list[str]] = []
        pos = 0
        for sent in sentences:
            out.append(labels[pos: pos + len(sent)])
            pos += len(sent)
        return out


_models: dict[str, CRFModel | None] = {}
_lock = threading.Lock()


def model_path(language: str) -> Path:
    """Path of the shipped model file of a language."""
    return MODEL_DIR / f"ner-{language}.crfsuite"


def _model(language: str) -> CRFModel | None:
    """Load a language's shipped model once; ``None`` if the language or its model file is unknown."""
    if language in _models:
        return _models[language]
    with _lock:
        if language not in _models:
            path = model_path(language)
            ok = language in LANGUAGES and path.is_file()
            _models[language] = CRFModel(path, language) if ok else None
    return _models[language]


def _norm_language(language: str | None) -> str:
    lang = (language or "").strip().lower().replace("_", "-").split("-")[0]
    return {"per": "fa", "pes": "fa", "fas": "fa", "ara": "ar", "arb": "ar"}.get(lang, lang)


def tag_tokens(tokens: Sequence[str], language: str) -> list[str]:
    """Tag a token sequence with BIO labels.

    Args:
        tokens: Tokens of one sentence (or any sequence; it is tagged as one).
        language: ``"ar"`` or ``"fa"`` (ISO 639-1; other values give all ``"O"``).

    Returns:
        One of ``O``, ``B-PER``, ``I-PER``, ``B-ORG`` ... per token.
    """
    tokens = list(tokens)
    model = _model(_norm_language(language))
    if model is None or not tokens:
        return ["O"] * len(tokens)
    return model.tag([tokens])[0]


def _tokens(text: str) -> tuple[list[str], list[int], list[int]]:
    """Tokens of a text with their start and end offsets (compiled when available)."""
    if _ctokenize is not None:
        return _ctokenize(text)
    spans = tokenize(text)
    return [text[s:e] for s, e in spans], [s for s, _ in spans], [e for _, e in spans]


def _sentences(text: str, tokens: list[str], starts: list[int]) -> list[tuple[int, int]]:
    """Token ranges [i, j) of sentences: one ends after . ! ? ؟ … or at a line break."""
    n = len(tokens)
    # A sentence ends after a token that is one of those characters (in a number they are inside a
    # longer token); finding the characters in the text is cheaper than testing every token.
    ends = set()
    for m in _SENT_END_RE.finditer(text):
        i = bisect.bisect_right(starts, m.start()) - 1
        if i >= 0 and tokens[i] in _SENT_END:
            ends.add(i + 1)
    p = text.find("\n")
    while p >= 0:
        ends.add(bisect.bisect_left(starts, p))
        p = text.find("\n", p + 1)
    ends.add(n)
    out: list[tuple[int, int]] = []
    start = 0
    for e in sorted(ends):
        if e > start:
            out.append((start, e))
            start = e
    return out


def tag_spans(text: str, language: str) -> list[tuple[int, int, str, float]]:
    """Find named entities in a text.

    Args:
        text: The input text (not normalised: offsets refer to it).
        language: ``"ar"`` or ``"fa"``; anything else returns ``[]``.

    Returns:
        ``(start, end, type, confidence)`` per entity, in text order, where ``text[start:end]`` is
        the mention, type is PER / ORG / LOC / MISC and confidence is the lowest marginal
        probability of the predicted labels over the mention's tokens (0..1).
    """
    if not text:
        return []
    model = _model(_norm_language(language))
    if model is None:
        return []
    tokens, starts, ends = _tokens(text)
    if not tokens:
        return []
    bounds = _sentences(text, tokens, starts)
    em, breakable = model.emissions(tokens, bounds)
    ids, conf = model.decode(em, bounds, breakable, marginals=True)
    return model.spans(ids, conf, bounds, starts, ends)


def fold_name() -> str:
    """Name of the token folding in use (``match_key`` or ``local``); the trainer records it."""
    return _fold_name
