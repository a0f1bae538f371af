"""Train and evaluate the Arabic and Persian NER models (``khabar train-ner``).

Reads the research corpora from the data directory (never shipped), re-tokenises them with the
run-time tokenizer, maps their tag sets to PER / ORG / LOC / MISC, trains one CRF per language,
scores it on held-out splits (exact span and type, micro F1) and writes
``ner-<lang>.crfsuite`` plus ``ner_scores.json`` into the output directory.

Usage:
    khabar train-ner --language all
    python -m khabar.ner_train --data-dir ../shared/data/ner --out khabar/models --language fa

Splits (see MODEL_CARD.md):
    ar: train = ANERcorp train file minus its last 10 % of sentences + Wojood sample train/val;
        held out = that ANERcorp tail ("anercorp_tail10"), Wojood sample test.
    fa: train = PEYMA train + PEYMA 600K document part + ARMAN train_fold1 (= folds 2 and 3);
        held out = PEYMA dev, ARMAN test_fold1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from khabar import ner

Sentence = list[tuple[str, str]]  # (token, BIO tag)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCORE_TYPES = ("PER", "ORG", "LOC")

# Tag-set mappings to ours; a type mapped to None becomes O.
ANERCORP_MAP = {"PERS": "PER", "PER": "PER", "ORG": "ORG", "LOC": "LOC", "MISC": "MISC"}
PEYMA_MAP = {"PER": "PER", "ORG": "ORG", "LOC": "LOC"}  # DAT TIM MON PCT are not entities for us
ARMAN_MAP = {"pers": "PER", "org": "ORG", "loc": "LOC", "fac": "LOC", "pro": "MISC", "event": "MISC"}
WOJOOD_MAP = {"PERS": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "EVENT": "MISC"}

PROBE_WORDS = ("والرئيس", "خبرگزاري", "می‌گوید", "إسرائيل", "مدرسةٌ", "آقای", "٢٠١٦", "Trump", "كاميرون", "ۀ")

DEFAULT_PARAMS = {
    "c1": 0.1,
    "c2": 0.05,
    "feature.minfreq": 2,
    "feature.possible_transitions": True,
}


def default_data_dir() -> Path:
    """``$KHABAR_NER_DATA`` or ``../shared/data/ner`` beside the repository."""
    env = os.environ.get("KHABAR_NER_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "ner"


# ---------------------------------------------------------------- readers


def _split_tag(tag: str) -> tuple[str, str]:
    tag = tag.strip()
    if not tag or tag == "O" or tag.startswith("O"):
        return "O", ""
    prefix, typ = tag[0], tag[2:]
    return (prefix if prefix in "BI" else "B"), typ


def _map_tag(tag: str, mapping: dict[str, str | None]) -> str:
    prefix, typ = _split_tag(tag)
    mapped = mapping.get(typ) if prefix != "O" else None
    return f"{prefix}-{mapped}" if mapped else "O"


def read_columns(
    path: Path, mapping: dict[str, str | None], sep: str | None = None, last_sep: bool = False
) -> list[Sentence]:
    """Read a CoNLL-like file (blank line between sentences; ``-DOCSTART-`` ignored).

    Args:
        path: File to read.
        mapping: Corpus type -> our type (missing/None -> O).
        sep: Column separator (None: whitespace).
        last_sep: Split token and tag on the last separator (PEYMA tokens may contain spaces).

    Returns:
        Sentences of (token, tag) in our tag set; malformed lines are skipped.
    """
    sents: list[Sentence] = []
    cur: Sentence = []
    with open(path, encoding="utf-8-sig") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            if not line.strip():
                if cur:
                    sents.append(cur)
                cur = []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            if last_sep:
                tok, _, tag = line.rpartition(sep or " ")
            else:
                parts = line.split(sep) if sep else line.split()
                if len(parts) < 2:
                    continue
                tok, tag = parts[0], parts[1]
            if not tok.strip():
                continue
            cur.append((tok, _map_tag(tag, mapping)))
    if cur:
        sents.append(cur)
    return sents


def read_wojood(path: Path) -> list[Sentence]:
    """Read the Wojood (nested) sample, keeping the outermost mapped entity at each position."""
    sents: list[Sentence] = []
    for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
        rows = [ln.split() for ln in block.splitlines() if ln.strip()]
        rows = [r for r in rows if len(r) >= 2]
        if not rows:
            continue
        depth = max(len(r) - 1 for r in rows)
        spans: list[tuple[int, int, str]] = []
        for level in range(depth):
            tags = [r[1 + level] if len(r) > 1 + level else "O" for r in rows]
            for a, b, typ in ner.bio_to_spans(tags):
                if WOJOOD_MAP.get(typ):
                    spans.append((a, b, WOJOOD_MAP[typ]))
        spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
        labels = ["O"] * len(rows)
        taken = [False] * len(rows)
        for a, b, typ in spans:
            if any(taken[a:b]):
                continue  # nested inside (or crossing) an outer mapped entity
            for k in range(a, b):
                labels[k] = ("B-" if k == a else "I-") + typ
                taken[k] = True
        sents.append([(r[0], lab) for r, lab in zip(rows, labels, strict=False)])
    return sents


def read_anercorp(path: Path) -> list[Sentence]:
    """Read ANERcorp (one token per line, no sentence breaks): split after sentence-final marks."""
    sents: list[Sentence] = []
    cur: Sentence = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            tok, _, tag = line.rpartition(" ")
            if not tok.strip():
                continue  # the corpus has empty-token lines and a couple of glued artefacts
            if not tag.startswith(("B-", "I-", "O")):
                continue
            cur.append((tok.strip(), _map_tag(tag, ANERCORP_MAP)))
            if tok.strip() in ner._SENT_END and len(cur) > 1:
                sents.append(cur)
                cur = []
    if cur:
        sents.append(cur)
    return sents


def retokenize(sent: Sentence) -> Sentence:
    """Re-split corpus tokens with the run-time tokenizer so training sees run-time tokens."""
    out: Sentence = []
    for tok, tag in sent:
        pieces = [tok[s:e] for s, e in ner.tokenize(tok)]
        for k, piece in enumerate(pieces):
            if k and tag.startswith("B-"):
                out.append((piece, "I-" + tag[2:]))
            else:
                out.append((piece, tag))
    return out


# ---------------------------------------------------------------- scoring


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
          types: Iterable[str] = SCORE_TYPES) -> dict[str, dict[str, float]]:
    """Exact span-and-type precision/recall/F1 (seqeval/conlleval style), per type and micro.

    Args:
        gold: Gold BIO tags per sentence.
        pred: Predicted BIO tags per sentence (same lengths).
        types: Entity types that count; others are ignored on both sides.

    Returns:
        ``{type: {"p", "r", "f1", "support"}}`` plus ``"micro"``, in percent.
    """
    keep = set(types)
    tp: Counter[str] = Counter()
    ng: Counter[str] = Counter()
    np_: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=False):
        gs = {s for s in ner.bio_to_spans(g) if s[2] in keep}
        ps = {s for s in ner.bio_to_spans(p) if s[2] in keep}
        for s in gs:
            ng[s[2]] += 1
        for s in ps:
            np_[s[2]] += 1
        for s in gs & ps:
            tp[s[2]] += 1

    def prf(t: int, g: int, p: int) -> dict[str, float]:
        pr = t / p if p else 0.0
        rc = t / g if g else 0.0
        f = 2 * pr * rc / (pr + rc) if pr + rc else 0.0
        return {"p": round(100 * pr, 2), "r": round(100 * rc, 2), "f1": round(100 * f, 2), "support": g}

    res = {t: prf(tp[t], ng[t], np_[t]) for t in sorted(keep)}
    res["micro"] = prf(sum(tp.values()), sum(ng.values()), sum(np_.values()))
    return res


def evaluate(model: Path, language: str, sents: Sequence[Sentence]) -> dict[str, object]:
    """Tag held-out sentences with a model file (the run-time decoder) and score them."""
    crf = ner.CRFModel(model, language)
    gold = [[t for _, t in s] for s in sents]
    pred = crf.tag([[w for w, _ in s] for s in sents])
    ntok = sum(len(s) for s in sents)
    return {
        "sentences": len(sents),
        "tokens": ntok,
        "scores": score(gold, pred),
        "scores_with_misc": score(gold, pred, (*SCORE_TYPES, "MISC"))["micro"],
    }


# ---------------------------------------------------------------- word clusters

NEWS_FILES = {"ar": ("saudinewsnet.jsonl.gz",), "fa": ("iranian_news.jsonl.gz", "persian_news.jsonl.gz")}
CLUSTER_SIZES = (64, 512)


def default_news_dir() -> Path:
    """``$KHABAR_NEWS_DATA`` or ``../shared/data/news`` beside the repository."""
    env = os.environ.get("KHABAR_NEWS_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "news"


def _news_texts(news_dir: Path, language: str) -> Iterable[str]:
    import gzip

    for name in NEWS_FILES[language]:
        path = news_dir / name
        if not path.is_file():
            continue
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                for field in ("title", "content", "body", "abstract"):
                    if isinstance(doc.get(field), str):
                        yield doc[field]


def build_clusters(
    language: str, texts: Iterable[str], out: Path, min_count: int = 3, max_words: int = 100_000,
    n_context: int = 3000, dim: int = 100, seed: int = 13,
) -> int:
    """Cluster words by their left/right neighbours in unlabeled news (PPMI + SVD + k-means).

    A cheap stand-in for Brown clusters: it gives an unseen name the cluster of the names it is
    used like, which is what a CRF needs to generalise beyond its training vocabulary.

    Args:
        language: ``ar`` or ``fa`` (names the output file).
        texts: Unlabeled texts.
        out: Output directory; writes ``ner-clusters-<language>.tsv`` (key, then one id per size).
        min_count: Minimum frequency of a clustered word.
        max_words: Cap on clustered words (most frequent first).
        n_context: Number of most frequent words used as context features.
        dim: SVD dimensions.
        seed: Random seed (deterministic output).

    Returns:
        Number of words written.
    """
    from array import array

    import numpy as np
    from scipy import sparse
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import TruncatedSVD

    ids: dict[str, int] = {}
    seq = array("i")
    for text in texts:
        seq.append(-1)
        for line in text.split("\n"):
            for s, e in ner.tokenize(line):
                key = ner.token_key(line[s:e])
                seq.append(ids.setdefault(key, len(ids)))
            seq.append(-1)
    arr = np.frombuffer(seq, dtype=np.int32)
    counts = np.bincount(arr[arr >= 0], minlength=len(ids))
    order = np.argsort(-counts, kind="stable")
    words = [i for i in order[:max_words] if counts[i] >= min_count]
    ctx = order[:n_context]
    row_of = np.full(len(ids) + 1, -1, dtype=np.int64)  # index -1 -> last slot -> -1
    row_of[np.asarray(words, dtype=np.int64)] = np.arange(len(words))
    col_of = np.full(len(ids) + 1, -1, dtype=np.int64)
    col_of[ctx] = np.arange(len(ctx))
    left, right = arr[:-1], arr[1:]
    mats = []
    for w, c in ((right, left), (left, right)):  # context on the left, then on the right
        r, k = row_of[w], col_of[c]
        ok = (r >= 0) & (k >= 0)
        mats.append(sparse.coo_matrix((np.ones(int(ok.sum()), dtype=np.float32), (r[ok], k[ok])),
                                      shape=(len(words), len(ctx))).tocsr())
    m = sparse.hstack(mats).tocsr()
    m.sum_duplicates()
    total = m.sum()
    rs = np.asarray(m.sum(axis=1)).ravel() + 1e-9
    cs = np.asarray(m.sum(axis=0)).ravel() ** 0.75
    cs = cs / cs.sum() * total + 1e-9
    m = m.tocoo()
    pmi = np.log(m.data * total / (rs[m.row] * cs[m.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (m.row[keep], m.col[keep])), shape=m.shape)
    vec = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(ppmi)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True) + 1e-9
    labels = [MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit_predict(vec)
              for k in CLUSTER_SIZES]
    inv = {i: w for w, i in ids.items()}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ner-clusters-{language}.tsv"
    with open(path, "w", encoding="utf-8") as fh:
        for row, wid in enumerate(words):
            key = inv[int(wid)]
            if "\t" in key or "\n" in key:
                continue
            fh.write(key + "\t" + "\t".join(str(int(lab[row])) for lab in labels) + "\n")
    return len(words)


# ---------------------------------------------------------------- name lexicon

LEXICON_DIR = REPO_ROOT / "khabar" / "data" / "ner"
LEXICON_TYPES = ("PER", "ORG", "LOC")
# Name-position flags are not given to the most frequent news words (the cluster table is in frequency
# order): "في" or "از" inside some organisation name says nothing, and the CRF already has a weight
# for every frequent word itself. Titles, given names and head words are curated and always kept.
LEXICON_COMMON = 2000
CONTEXT_LEVELS = ((0.05, ""), (0.2, "+"), (0.5, "++"))
# Context flags: words seen after a title / ORG head / LOC head word. Words after or before a given
# name (surname- and title-like) were tried and did not help (ANERcorp tail 72.3 -> 71.7).
CONTEXT_AFTER = ("T", "OT", "LT")
CONTEXT_BEFORE: tuple[str, ...] = ()


def _word_list(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.startswith("#")]


def _word_keys(text: str) -> list[tuple[str, str]]:
    """(token, match form) of the word tokens of a name (punctuation dropped)."""
    toks = [text[s:e] for s, e in ner.tokenize(text)]
    return [(t, ner.token_key(t)) for t in toks if t[0].isalnum()]


def _context_flags(language: str, texts: Iterable[str], heads: dict[str, set[str]],
                   min_count: int = 5) -> dict[str, set[str]]:
    """Flag words of unlabeled news by how often they stand next to a title, head word or given name.

    A word that follows "السيد" or "آقای", or a known given name, in a large share of its occurrences
    is most likely a name even if no gazetteer lists it; one that often precedes a given name is
    title-like (distant supervision from the news dump, never from NER corpora).

    Args:
        language: ``ar`` or ``fa`` (selects the stemmer).
        texts: Unlabeled texts.
        heads: Match form or stem -> lexicon flags (T, OT, LT, N) of the head words.
        min_count: Minimum frequency of a flagged word.

    Returns:
        Match form -> flags ``x<K>``/``x<K>+``/``x<K>++`` (follows a K word in >= 5 / 20 / 50 % of
        its occurrences, K in CONTEXT_AFTER) and likewise ``y<K>`` (precedes one, CONTEXT_BEFORE).
    """
    kinds = tuple(dict.fromkeys((*CONTEXT_AFTER, *CONTEXT_BEFORE)))
    keys: dict[str, tuple[str, tuple[str, ...]]] = {}
    total: Counter[str] = Counter()
    after: dict[str, Counter[str]] = {k: Counter() for k in CONTEXT_AFTER}
    before: dict[str, Counter[str]] = {k: Counter() for k in CONTEXT_BEFORE}
    for text in texts:
        prev: tuple[str, ...] = ()
        prev_key = ""
        for s, e in ner.tokenize(text):
            tok = text[s:e]
            got = keys.get(tok)
            if got is None:
                key = ner.token_key(tok)
                stem = ner._stem_fa(tok, key)[0] if language == "fa" else ner._stem_ar(key)[0]
                fl = heads.get(key) or heads.get(stem) or set()
                got = keys[tok] = (key, tuple(k for k in kinds if k in fl))
                if len(keys) > 2_000_000:
                    keys.clear()
            key, mine = got
            total[key] += 1
            for k in prev:
                if k in after:
                    after[k][key] += 1
            for k in mine:
                if k in before and prev_key:
                    before[k][prev_key] += 1
            prev, prev_key = mine, key
    out: dict[str, set[str]] = {}
    for side, table in (("x", after), ("y", before)):
        for k, counts in table.items():
            for key, n in counts.items():
                tot = total[key]
                if tot < min_count or not key[:1].isalpha():
                    continue
                share = n / tot
                for level, mark in CONTEXT_LEVELS:
                    if share >= level:
                        out.setdefault(key, set()).add(side + k + mark)
    return out


def build_lexicon(language: str, out: Path, common: int = LEXICON_COMMON,
                  texts: Iterable[str] | None = None) -> int:
    """Write the per-word-form name lexicon the NER features look up (``ner-lexicon-<lang>.tsv``).

    Built only from the gazetteer (hand-curated and CLDR names in en/ar/fa, titles, given names) and
    the head-word lists in ``khabar/data/ner``, never from the NER corpora, so held-out scores are
    not inflated by names read off the evaluation data.

    Args:
        language: ``ar`` or ``fa`` (selects the stemmer; names of all three columns are used, since
            the match form folds Arabic and Persian letter variants).
        out: Output directory.

        common: Number of most frequent words (cluster-table order) denied name-position flags.
        texts: Unlabeled news for the context flags of :func:`_context_flags` (None: none).

    Returns:
        Number of rows written.
    """
    from khabar import gazetteer

    flags: dict[str, set[str]] = {}
    stems: dict[str, set[str]] = {}
    frequent: set[str] = set()
    table = ner.cluster_path(language, out)
    if table.is_file():
        with open(table, encoding="utf-8") as fh:
            frequent = {line.split("\t", 1)[0] for line in itertools.islice(fh, common)}

    def add(token: str, key: str, flag: str) -> None:
        if len(key) < 2 or "0" in key:
            return  # one-letter pieces ("د", initials) and numbers flag far too many ordinary tokens
        if key in frequent and flag[0] in "BILU":
            return
        flags.setdefault(key, set()).add(flag)
        # The same stemmer as the run-time features, so "والرئيس" meets the title "الرئيس".
        stem = ner._stem_fa(token, key)[0] if language == "fa" else ner._stem_ar(key)[0]
        stems.setdefault(stem, set()).add(flag)

    for ent in gazetteer.entities().values():
        if ent.type not in LEXICON_TYPES:
            continue
        for alias in ent.aliases:
            if alias.short:
                continue
            words = _word_keys(alias.text)
            if len(words) == 1:
                add(*words[0], "U" + ent.type)
                continue
            for i, (tok, key) in enumerate(words):
                pos = "B" if i == 0 else "L" if i == len(words) - 1 else "I"
                add(tok, key, pos + ent.type)
    for title in gazetteer.titles():
        for tok, key in _word_keys(title):
            add(tok, key, "T")
    for name in (*gazetteer.given_names(), *_word_list(LEXICON_DIR / "given_names.txt")):
        for tok, key in _word_keys(name):
            add(tok, key, "N")
    for fname, flag in (("org_triggers.txt", "OT"), ("loc_triggers.txt", "LT")):
        for word in _word_list(LEXICON_DIR / fname):
            for tok, key in _word_keys(word):
                add(tok, key, flag)
    if texts is not None:
        wanted = {*CONTEXT_AFTER, *CONTEXT_BEFORE}
        heads: dict[str, set[str]] = {}
        for table in (flags, stems):
            for k, v in table.items():
                if v & wanted:
                    heads.setdefault(k, set()).update(v & wanted)
        for key, fl in _context_flags(language, texts, heads).items():
            for flag in fl:
                add(key, key, flag)
    out.mkdir(parents=True, exist_ok=True)
    path = ner.lexicon_path(language, out)
    rows = 0
    with open(path, "w", encoding="utf-8") as fh:
        for kind, table in (("w", flags), ("s", stems)):
            for key in sorted(table):
                if "\t" in key or "\n" in key or "," in key:
                    continue
                fh.write(f"{kind}\t{key}\t{','.join(sorted(table[key]))}\n")
                rows += 1
    return rows


# ---------------------------------------------------------------- corpora


def _corpora(data: Path, language: str) -> tuple[dict[str, list[Sentence]], dict[str, list[Sentence]]]:
    """Return (training parts, held-out parts) of a language, already re-tokenised."""
    train: dict[str, list[Sentence]] = {}
    held: dict[str, list[Sentence]] = {}
    if language == "ar":
        aner = read_anercorp(data / "anercorp_train.txt")
        cut = int(len(aner) * 0.9)
        train["anercorp_head90"] = aner[:cut]
        held["anercorp_tail10"] = aner[cut:]
        woj = data / "wojood_sample"
        if woj.is_dir():
            train["wojood_train_val"] = read_wojood(woj / "train.txt") + read_wojood(woj / "val.txt")
            held["wojood_test"] = read_wojood(woj / "test.txt")
    elif language == "fa":
        train["peyma_train"] = read_columns(data / "peyma_train.txt", PEYMA_MAP, "|", last_sep=True)
        held["peyma_dev"] = read_columns(data / "peyma_dev.txt", PEYMA_MAP, "|", last_sep=True)
        if (data / "peyma600k_docs.txt").is_file():
            train["peyma600k_docs"] = read_columns(data / "peyma600k_docs.txt", PEYMA_MAP, "\t")
        if (data / "arman").is_dir():
            train["arman_train_fold1"] = read_columns(data / "arman" / "train_fold1.txt", ARMAN_MAP)
            held["arman_test_fold1"] = read_columns(data / "arman" / "test_fold1.txt", ARMAN_MAP)
    else:
        raise ValueError(f"unknown language {language!r}")
    # Strict hold-out: drop training sentences that also occur verbatim in a held-out split.
    held_texts = {tuple(w for w, _ in s) for parts in held.values() for s in parts}
    for name, sents in train.items():
        train[name] = [retokenize(s) for s in sents if tuple(w for w, _ in s) not in held_texts]
    for name, sents in held.items():
        held[name] = [retokenize(s) for s in sents]
    return train, held


def _count(sents: Sequence[Sentence]) -> dict[str, int]:
    ents = Counter(t[2:] for s in sents for _, t in s if t.startswith("B-"))
    return {"sentences": len(sents), "tokens": sum(len(s) for s in sents), **dict(sorted(ents.items()))}


def train_language(
    data: Path, out: Path, language: str, max_iterations: int,
    params: dict[str, object] | None = None, log: Callable[[str], None] = print,
    exclude: Iterable[str] = (),
    news_dir: Path | None = None,
    lexicon_common: int = LEXICON_COMMON,
    lexicon_news: Path | None = None,
) -> dict[str, object]:
    """Train, save and evaluate one language's model.

    Args:
        data: Corpus directory.
        out: Directory for ``ner-<language>.crfsuite``.
        language: ``ar`` or ``fa``.
        max_iterations: L-BFGS iteration cap.
        params: crfsuite trainer parameters overriding DEFAULT_PARAMS.
        log: Progress printer.
        news_dir: Unlabeled news to (re)build the word clusters from; None keeps the table in ``out``.
        exclude: Names of training parts to leave out (e.g. ``wojood_train_val``).
        lexicon_common: See :func:`build_lexicon`.
        lexicon_news: Unlabeled news for the lexicon's context flags (None: no context flags).

    Returns:
        The language's entry of ``ner_scores.json``.
    """
    import pycrfsuite

    train, held = _corpora(data, language)
    for name in exclude:
        train.pop(name, None)
    out.mkdir(parents=True, exist_ok=True)
    if news_dir is not None:
        t0 = time.perf_counter()
        # Unlabeled text: the news dump plus the training parts' own sentences (never held-out text).
        texts = itertools.chain(
            _news_texts(news_dir, language),
            (" ".join(w for w, _ in s) for sents in train.values() for s in sents),
        )
        n = build_clusters(language, texts, out)
        log(f"[{language}] clustered {n} words in {time.perf_counter() - t0:.0f}s")
    log(f"[{language}] clusters: {ner.load_clusters(language, ner.cluster_path(language, out))} words")
    t0 = time.perf_counter()
    news = _news_texts(lexicon_news, language) if lexicon_news is not None else None
    build_lexicon(language, out, lexicon_common, news)
    log(f"[{language}] lexicon built in {time.perf_counter() - t0:.0f}s")
    log(f"[{language}] lexicon: {ner.load_lexicon(language, ner.lexicon_path(language, out))} forms")
    log(f"[{language}] train: " + ", ".join(f"{k}={_count(v)}" for k, v in train.items()))
    trainer = pycrfsuite.Trainer(verbose=False)
    t0 = time.perf_counter()
    for sents in train.values():
        for s in sents:
            trainer.append(ner.sentence_features([w for w, _ in s], language), [t for _, t in s])
    p = {**DEFAULT_PARAMS, **(params or {}), "max_iterations": max_iterations}
    trainer.set_params(p)
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"ner-{language}.crfsuite"
    # Train into a temporary file: a failed run must not leave a truncated shipped model.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_model = Path(tmp) / final.name
        trainer.train(str(tmp_model))
        os.replace(tmp_model, final)
    train_s = time.perf_counter() - t0
    log(f"[{language}] trained in {train_s:.0f}s -> {final} ({final.stat().st_size / 1e6:.1f} MB)")
    result: dict[str, object] = {
        "model": final.name,
        "clusters_words": len(ner._clusters.get(language, {})),
        "model_bytes": final.stat().st_size,
        "train_seconds": round(train_s, 1),
        "params": p,
        "fold": ner.fold_name(),
        "lexicon_forms": sum(map(len, ner._lexicons.get(language, ({}, {})))),
        "lexicon_common": lexicon_common,
        "train": {k: _count(v) for k, v in train.items()},
        "heldout": {},
    }
    for name, sents in held.items():
        ev = evaluate(final, language, sents)
        result["heldout"][name] = ev  # type: ignore[index]
        sc = ev["scores"]
        log(f"[{language}] {name}: micro F1 {sc['micro']['f1']} "  # type: ignore[index]
            + " ".join(f"{t}={sc[t]['f1']}" for t in SCORE_TYPES)  # type: ignore[index]
            + f" (+MISC {ev['scores_with_misc']['f1']})")  # type: ignore[index]
    return result


def bench(language: str, news_dir: Path, n_docs: int = 1000) -> dict[str, float]:
    """Measure ``tag_spans`` on real news bodies with the shipped model (CPU time, one core).

    Args:
        language: ``ar`` or ``fa``.
        news_dir: Directory with the news dumps of NEWS_FILES.
        n_docs: Number of article bodies to tag.

    Returns:
        Documents and tokens per second and ms per document, first pass (cold caches) and second.
    """
    docs: list[str] = []
    for name in NEWS_FILES[language]:
        import gzip

        with gzip.open(news_dir / name, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                body = doc.get("content") or doc.get("body")
                if isinstance(body, str) and body.strip():
                    docs.append(body)
                if len(docs) >= n_docs:
                    break
        if len(docs) >= n_docs:
            break
    ntok = sum(len(ner.tokenize(d)) for d in docs)
    t0 = time.process_time()
    ner.tag_spans("", language)
    ner._model(language)
    load_s = time.process_time() - t0
    res: dict[str, float] = {"docs": len(docs), "tokens_per_doc": round(ntok / max(1, len(docs))),
                             "load_cpu_s": round(load_s, 2)}
    for label in ("cold", "warm"):
        t0 = time.process_time()
        for d in docs:
            ner.tag_spans(d, language)
        dt = max(time.process_time() - t0, 1e-9)
        res[f"{label}_docs_per_s"] = round(len(docs) / dt, 1)
        res[f"{label}_tokens_per_s"] = round(ntok / dt)
        res[f"{label}_ms_per_doc"] = round(1000 * dt / max(1, len(docs)), 2)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``khabar train-ner``; returns the exit status."""
    ap = argparse.ArgumentParser(prog="khabar train-ner", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=default_data_dir(),
                    help="NER corpora directory (default: $KHABAR_NER_DATA or ../shared/data/ner)")
    ap.add_argument("--out", type=Path, default=ner.MODEL_DIR,
                    help="output directory (default: khabar/models)")
    ap.add_argument("--language", choices=("ar", "fa", "all"), default="all")
    ap.add_argument("--max-iterations", type=int, default=300)
    ap.add_argument("--c1", type=float, default=DEFAULT_PARAMS["c1"])
    ap.add_argument("--c2", type=float, default=DEFAULT_PARAMS["c2"])
    ap.add_argument("--min-freq", type=float, default=DEFAULT_PARAMS["feature.minfreq"])
    ap.add_argument("--exclude", action="append", default=[], metavar="PART",
                    help="leave a training part out (repeatable), e.g. wojood_train_val")
    ap.add_argument("--news-dir", type=Path, default=default_news_dir(),
                    help="unlabeled news for word clusters "
                         "(default: $KHABAR_NEWS_DATA or ../shared/data/news)")
    ap.add_argument("--keep-clusters", action="store_true",
                    help="reuse the cluster tables already in --out instead of rebuilding them")
    ap.add_argument("--lexicon-common", type=int, default=LEXICON_COMMON, metavar="N",
                    help="deny name-position lexicon flags to the N most frequent news words")
    ap.add_argument("--bench", type=int, default=0, metavar="N",
                    help="after training, time tag_spans on N news articles per language (CPU time)")
    args = ap.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"train-ner: data directory not found: {args.data_dir}", file=sys.stderr)
        return 2
    if not args.news_dir.is_dir():
        # The lexicon's context flags (and, without --keep-clusters, the word clusters) come from it;
        # a model trained without them would silently differ from the shipped one.
        print(f"train-ner: unlabeled news directory not found: {args.news_dir} (see --news-dir)", file=sys.stderr)
        return 2
    langs = ["ar", "fa"] if args.language == "all" else [args.language]
    scores_path = args.out / "ner_scores.json"
    scores: dict[str, object] = {}
    if scores_path.is_file():
        scores = json.loads(scores_path.read_text(encoding="utf-8"))
    params = {"c1": args.c1, "c2": args.c2, "feature.minfreq": args.min_freq}
    for lang in langs:
        scores[lang] = train_language(args.data_dir, args.out, lang, args.max_iterations, params,
                                      exclude=args.exclude, lexicon_common=args.lexicon_common,
                                      lexicon_news=args.news_dir,
                                      news_dir=None if args.keep_clusters else args.news_dir)
    scores["fold_probe"] = {w: ner.token_key(w) for w in PROBE_WORDS}
    if args.bench:
        for lang in langs:
            if args.out.resolve() == ner.MODEL_DIR.resolve():
                ner._models.pop(lang, None)
                ner.load_clusters(lang)
                ner.load_lexicon(lang)
                speed = bench(lang, args.news_dir, args.bench)
                scores[lang]["speed"] = speed  # type: ignore[index]
                print(f"[{lang}] speed: {speed}")
    scores_path.write_text(json.dumps(scores, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"scores -> {scores_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
