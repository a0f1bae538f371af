/* Compiled parts of khabar.ner: the tokenizer, and linear-chain CRF decoding (Viterbi labels and
 * marginal confidences).
 *
 * The numpy decoder in khabar/ner.py batches all sentence pieces of a document, but it still pays
 * numpy's per-call overhead at every time step (about 50 steps per document, a dozen array calls
 * each), which was most of the tagger's cost. This module does the same arithmetic in plain loops.
 * It is optional: khabar.ner falls back to numpy when it is not built.
 *
 * Buffers come through the buffer protocol (numpy arrays, C-contiguous), so no numpy headers are
 * needed at build time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int get_buf(PyObject *obj, Py_buffer *view, char kind, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    int ok = view->itemsize == 8 && (kind == 'd' ? (*f == 'd') : (*f == 'l' || *f == 'q'));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous %s array", name,
                     kind == 'd' ? "float64" : "int64");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* decode(em, pieces, trans, exp_trans, o_id, out, conf)
 *
 * em:        float64 (tokens x labels) emission scores
 * pieces:    int64 (n x 2) [start, end) token ranges decoded independently
 * trans:     float64 (labels x labels) transition weights, trans[from, to]
 * exp_trans: float64 (labels x labels) exp(trans)
 * o_id:      label id of "O" (-1 if none)
 * out:       int64 (tokens) receives the Viterbi label of every token inside a piece
 * conf:      float64 (tokens) or None; receives the marginal probability of the chosen label for the
 *            tokens of pieces that contain a label other than O (others are left untouched)
 */
static PyObject *decode(PyObject *self, PyObject *args) {
    PyObject *em_o, *pieces_o, *trans_o, *etrans_o, *out_o, *conf_o;
    long long o_id;
    if (!PyArg_ParseTuple(args, "OOOOLOO", &em_o, &pieces_o, &trans_o, &etrans_o, &o_id, &out_o,
                          &conf_o))
        return NULL;
    Py_buffer em, pieces, trans, etrans, out, conf;
    int have_conf = conf_o != Py_None;
    if (get_buf(em_o, &em, 'd', 0, "em") < 0) return NULL;
    if (get_buf(pieces_o, &pieces, 'q', 0, "pieces") < 0) goto fail_em;
    if (get_buf(trans_o, &trans, 'd', 0, "trans") < 0) goto fail_pieces;
    if (get_buf(etrans_o, &etrans, 'd', 0, "exp_trans") < 0) goto fail_trans;
    if (get_buf(out_o, &out, 'q', 1, "out") < 0) goto fail_etrans;
    if (have_conf && get_buf(conf_o, &conf, 'd', 1, "conf") < 0) goto fail_out;

    Py_ssize_t nt = out.len / 8;
    Py_ssize_t nl = 0;
    while ((nl + 1) * (nl + 1) <= trans.len / 8) nl++;
    if (nl * nl * 8 != trans.len || etrans.len != trans.len || em.len != nt * nl * 8 ||
        (have_conf && conf.len != out.len) || nl == 0) {
        PyErr_SetString(PyExc_ValueError, "decode: inconsistent array sizes");
        goto fail_all;
    }
    const double *E = (const double *)em.buf, *T = (const double *)trans.buf;
    const double *X = (const double *)etrans.buf;
    const int64_t *P = (const int64_t *)pieces.buf;
    int64_t *O = (int64_t *)out.buf;
    double *C = have_conf ? (double *)conf.buf : NULL;
    Py_ssize_t np = pieces.len / 16, maxlen = 0;
    for (Py_ssize_t k = 0; k < np; k++) {
        int64_t a = P[2 * k], b = P[2 * k + 1];
        if (a < 0 || b > nt || b < a) {
            PyErr_SetString(PyExc_ValueError, "decode: piece out of range");
            goto fail_all;
        }
        if (b - a > maxlen) maxlen = b - a;
    }
    /* back pointers, then (for marginals) alpha and beta, each maxlen x nl */
    int32_t *back = malloc(sizeof(int32_t) * (maxlen + 1) * nl);
    double *work = malloc(sizeof(double) * (3 * (maxlen + 1) * nl + 2 * nl));
    if (!back || !work) {
        free(back);
        free(work);
        PyErr_NoMemory();
        goto fail_all;
    }
    double *score = work, *next = work + nl, *alpha = work + 2 * nl;
    double *beta = alpha + (maxlen + 1) * nl, *g = beta + (maxlen + 1) * nl;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < np; k++) {
        int64_t a = P[2 * k], len = P[2 * k + 1] - P[2 * k];
        if (len <= 0) continue;
        const double *x = E + a * nl;
        /* Viterbi: score_t[j] = max_i(score_{t-1}[i] + trans[i, j]) + x_t[j]; ties keep the lowest i,
           as numpy's argmax does, so labels equal the numpy decoder's. */
        memcpy(score, x, sizeof(double) * nl);
        for (int64_t t = 1; t < len; t++) {
            const double *xt = x + t * nl;
            int32_t *bt = back + t * nl;
            for (Py_ssize_t j = 0; j < nl; j++) {
                double best = score[0] + T[j];
                int32_t arg = 0;
                for (Py_ssize_t i = 1; i < nl; i++) {
                    double v = score[i] + T[i * nl + j];
                    if (v > best) {
                        best = v;
                        arg = (int32_t)i;
                    }
                }
                next[j] = best + xt[j];
                bt[j] = arg;
            }
            memcpy(score, next, sizeof(double) * nl);
        }
        int32_t lab = 0;
        for (Py_ssize_t j = 1; j < nl; j++)
            if (score[j] > score[lab]) lab = (int32_t)j;
        int any_entity = 0;
        for (int64_t t = len - 1; t >= 0; t--) {
            O[a + t] = lab;
            if (lab != o_id) any_entity = 1;
            if (t > 0) lab = back[t * nl + lab];
        }
        if (!C || !any_entity) continue;
        /* Forward-backward on exp(x - max x_t) with every step rescaled to sum 1: the scale factors
           cancel in alpha*beta / sum(alpha*beta). */
        for (int64_t t = 0; t < len; t++) {
            const double *xt = x + t * nl;
            double m = xt[0];
            for (Py_ssize_t j = 1; j < nl; j++)
                if (xt[j] > m) m = xt[j];
            for (Py_ssize_t j = 0; j < nl; j++) g[t * nl + j] = exp(xt[j] - m);
        }
        double s = 0.0;
        for (Py_ssize_t j = 0; j < nl; j++) s += (alpha[j] = g[j]);
        for (Py_ssize_t j = 0; j < nl; j++) alpha[j] /= s;
        for (int64_t t = 1; t < len; t++) {
            double *at = alpha + t * nl;
            const double *ap = at - nl, *gt = g + t * nl;
            s = 0.0;
            for (Py_ssize_t j = 0; j < nl; j++) {
                double v = 0.0;
                for (Py_ssize_t i = 0; i < nl; i++) v += ap[i] * X[i * nl + j];
                s += (at[j] = v * gt[j]);
            }
            for (Py_ssize_t j = 0; j < nl; j++) at[j] /= s;
        }
        double *bl = beta + (len - 1) * nl;
        for (Py_ssize_t j = 0; j < nl; j++) bl[j] = 1.0;
        for (int64_t t = len - 2; t >= 0; t--) {
            double *bt = beta + t * nl;
            const double *bn = bt + nl, *gn = g + (t + 1) * nl;
            s = 0.0;
            for (Py_ssize_t i = 0; i < nl; i++) {
                double v = 0.0;
                for (Py_ssize_t j = 0; j < nl; j++) v += gn[j] * bn[j] * X[i * nl + j];
                s += (bt[i] = v);
            }
            for (Py_ssize_t i = 0; i < nl; i++) bt[i] /= s;
        }
        for (int64_t t = 0; t < len; t++) {
            const double *at = alpha + t * nl, *bt = beta + t * nl;
            double z = 0.0;
            for (Py_ssize_t j = 0; j < nl; j++) z += at[j] * bt[j];
            int64_t l = O[a + t];
            C[a + t] = at[l] * bt[l] / z;
        }
    }
    Py_END_ALLOW_THREADS

    free(back);
    free(work);
    if (have_conf) PyBuffer_Release(&conf);
    PyBuffer_Release(&out);
    PyBuffer_Release(&etrans);
    PyBuffer_Release(&trans);
    PyBuffer_Release(&pieces);
    PyBuffer_Release(&em);
    Py_RETURN_NONE;

fail_all:
    if (have_conf) PyBuffer_Release(&conf);
fail_out:
    PyBuffer_Release(&out);
fail_etrans:
    PyBuffer_Release(&etrans);
fail_trans:
    PyBuffer_Release(&trans);
fail_pieces:
    PyBuffer_Release(&pieces);
fail_em:
    PyBuffer_Release(&em);
    return NULL;
}


/* The marks that khabar.ner._MARKS keeps inside a word (harakat, Quranic marks, ZWNJ/ZWJ). */
static int is_mark(Py_UCS4 c) {
    return (c >= 0x0610 && c <= 0x061a) || (c >= 0x064b && c <= 0x065f) || c == 0x0670 ||
           (c >= 0x06d6 && c <= 0x06ed) || c == 0x200c || c == 0x200d;
}

static int is_num_sep(Py_UCS4 c) {
    return c == '.' || c == ',' || c == 0x066b || c == 0x066c || c == '/' || c == ':';
}

/* tokenize(text) -> (tokens, starts, ends)
 *
 * The tokens of khabar.ner._TOKEN_RE, r"\d+(?:[.,٫٬/:]\d+)+|(?:[^\W_]|[MARKS])+|\S", with the same
 * character classes as Python's re module (\d: Unicode decimal, \w: alphanumeric or "_", \s:
 * Unicode space), as the token strings and their start and end offsets.
 */
static PyObject *tokenize(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "tokenize() needs a str");
        return NULL;
    }
    if (PyUnicode_READY(arg) < 0) return NULL;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    PyObject *toks = PyList_New(0), *starts = PyList_New(0), *ends = PyList_New(0);
    if (!toks || !starts || !ends) goto fail;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c)) {
            i++;
            continue;
        }
        Py_ssize_t j = i + 1;
        int done = 0;
        if (Py_UNICODE_ISDECIMAL(c)) {
            /* A number with internal separators needs at least one "separator digits" group. */
            while (j < n && Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, j))) j++;
            Py_ssize_t k = j;
            while (k + 1 < n && is_num_sep(PyUnicode_READ(kind, data, k)) &&
                   Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, k + 1))) {
                k += 2;
                while (k < n && Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, k))) k++;
            }
            if (k > j) {
                j = k;
                done = 1;
            }
        }
        if (!done) {
            if ((Py_UNICODE_ISALNUM(c)) || is_mark(c)) {
                j = i + 1;
                while (j < n) {
                    Py_UCS4 d = PyUnicode_READ(kind, data, j);
                    if (!(Py_UNICODE_ISALNUM(d) || is_mark(d))) break;
                    j++;
                }
            } else {
                j = i + 1;
            }
        }
        PyObject *t = PyUnicode_Substring(arg, i, j);
        PyObject *a = PyLong_FromSsize_t(i), *b = PyLong_FromSsize_t(j);
        int err = !t || !a || !b || PyList_Append(toks, t) < 0 || PyList_Append(starts, a) < 0 ||
                  PyList_Append(ends, b) < 0;
        Py_XDECREF(t);
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (err) goto fail;
        i = j;
    }
    return Py_BuildValue("(NNN)", toks, starts, ends);
fail:
    Py_XDECREF(toks);
    Py_XDECREF(starts);
    Py_XDECREF(ends);
    return NULL;
}


/* emissions(tables, rows, bounds, lid, rid, pair_codes, pair_lv, pair_rv, n_right, em)
 *
 * The emission scores of khabar.ner.CRFModel._emissions, with the same additions in the same order:
 * tables:     float64 (5 x forms x labels): a form's own row, then as the -1, +1, -2, +2 neighbour;
 *             row 0 of tables 1-4 stands for the sentence boundary
 * rows:       int64 (tokens) the form row of every token
 * bounds:     int64 (sentences x 2) [start, end) token ranges; neighbours never cross them
 * lid, rid:   int64 (forms) the form's left / right id in the bigram pairs (-1: none)
 * pair_codes: int64 (pairs) sorted left_id * n_right + right_id
 * pair_lv, pair_rv: float64 (pairs x labels) what a pair adds to its left / right token
 * em:         float64 (tokens x labels) receives the scores
 */
static PyObject *emissions(PyObject *self, PyObject *args) {
    PyObject *o[9];
    long long n_right;
    if (!PyArg_ParseTuple(args, "OOOOOOOOLO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7],
                          &n_right, &o[8]))
        return NULL;
    static const char kinds[9] = {'d', 'q', 'q', 'q', 'q', 'q', 'd', 'd', 'd'};
    static const char *names[9] = {"tables", "rows", "bounds", "lid", "rid", "pair_codes", "pair_lv",
                                   "pair_rv", "em"};
    Py_buffer b[9];
    int got = 0;
    for (; got < 9; got++)
        if (get_buf(o[got], &b[got], kinds[got], got == 8, names[got]) < 0) goto done;
    {
        const double *tab = b[0].buf;
        const int64_t *rows = b[1].buf, *bounds = b[2].buf, *lid = b[3].buf, *rid = b[4].buf;
        const int64_t *codes = b[5].buf;
        const double *lv = b[6].buf, *rv = b[7].buf;
        double *em = b[8].buf;
        Py_ssize_t nt = b[1].len / 8, ns = b[2].len / 16, nforms = b[3].len / 8, np_ = b[5].len / 8;
        Py_ssize_t nl = nt ? b[8].len / 8 / nt : 0;
        if (b[8].len != (Py_ssize_t)(nt * nl * 8) || b[0].len != (Py_ssize_t)(5 * nforms * nl * 8) ||
            b[4].len != b[3].len || b[6].len != (Py_ssize_t)(np_ * nl * 8) || b[7].len != b[6].len) {
            PyErr_SetString(PyExc_ValueError, "emissions(): array shapes disagree");
            goto done;
        }
        for (Py_ssize_t t = 0; t < nt; t++)
            if (rows[t] < 0 || rows[t] >= nforms) {
                PyErr_SetString(PyExc_IndexError, "emissions(): row out of range");
                goto done;
            }
        const Py_ssize_t stride = nforms * nl;
        for (Py_ssize_t s = 0; s < ns; s++) {
            Py_ssize_t a = bounds[2 * s], z = bounds[2 * s + 1];
            if (a < 0 || z > nt || a > z) {
                PyErr_SetString(PyExc_IndexError, "emissions(): sentence out of range");
                goto done;
            }
            for (Py_ssize_t i = a; i < z; i++) {
                const double *own = tab + rows[i] * nl;
                const double *p1 = tab + stride + (i - 1 >= a ? rows[i - 1] : 0) * nl;
                const double *n1 = tab + 2 * stride + (i + 1 < z ? rows[i + 1] : 0) * nl;
                const double *p2 = tab + 3 * stride + (i - 2 >= a ? rows[i - 2] : 0) * nl;
                const double *n2 = tab + 4 * stride + (i + 2 < z ? rows[i + 2] : 0) * nl;
                double *e = em + i * nl;
                for (Py_ssize_t l = 0; l < nl; l++) e[l] = own[l] + p1[l] + n1[l] + p2[l] + n2[l];
            }
            /* Bigram pairs inside the sentence: a token gets its right-hand share before its left one. */
            for (Py_ssize_t i = a; i + 1 < z; i++) {
                int64_t li = lid[rows[i]], ri = rid[rows[i + 1]];
                if (li < 0 || ri < 0 || np_ == 0) continue;
                int64_t code = li * n_right + ri;
                Py_ssize_t lo = 0, hi = np_;
                while (lo < hi) {
                    Py_ssize_t mid = (lo + hi) / 2;
                    if (codes[mid] < code) lo = mid + 1; else hi = mid;
                }
                if (lo >= np_ || codes[lo] != code) continue;
                double *e0 = em + i * nl, *e1 = em + (i + 1) * nl;
                const double *l0 = lv + lo * nl, *r0 = rv + lo * nl;
                for (Py_ssize_t l = 0; l < nl; l++) e1[l] += r0[l];
                for (Py_ssize_t l = 0; l < nl; l++) e0[l] += l0[l];
            }
        }
    }
done:
    for (int k = 0; k < got; k++) PyBuffer_Release(&b[k]);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"tokenize", tokenize, METH_O,
     "tokenize(text) -> (tokens, starts, ends): khabar.ner's tokens with their offsets."},
    {"decode", decode, METH_VARARGS,
     "decode(em, pieces, trans, exp_trans, o_id, out, conf): Viterbi labels into out and, where a "
     "piece has an entity label and conf is not None, the chosen labels' marginals into conf."},
    {"emissions", emissions, METH_VARARGS,
     "emissions(tables, rows, bounds, lid, rid, pair_codes, pair_lv, pair_rv, n_right, em): the "
     "emission scores of a document's tokens into em."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "khabar._crf",
                                    "Compiled tokenizer and CRF decoding for khabar.ner.", -1, methods};

PyMODINIT_FUNC PyInit__crf(void) { return PyModule_Create(&module); }
