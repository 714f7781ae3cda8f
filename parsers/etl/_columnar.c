/* C accelerator of columnar.py: the byte moves of bulk field decoding (same results as its numpy fallback).
 *
 * fixed(data, pos, width, out): out[i*width : (i+1)*width] = data[pos[i] : pos[i]+width]
 *     (positions outside data give zero bytes: the caller rejects those records).
 * spans(data, start, length, out): the spans [start[i], start[i]+length[i]) concatenated into out.
 * terminators(data, pos, end, unit, out): out[i] = position of the first NUL unit (1 or 2 bytes) at
 *     pos[i] + k*unit below end[i], or len(data) when there is none.
 * text(data, start, length, kind, offsets, out): the spans as UTF-8 (from UTF-16LE or cp1252, invalid
 *     input replaced by U+FFFD exactly as Python's codecs do with "replace"), Arrow string buffers.
 * views(data, start, length, views, out): the spans as an Arrow binary view array (16-byte views; values
 *     over 12 bytes copied one after the other into out, their one data buffer). Polars takes view arrays
 *     without a copy (it copies offset-based ones into views).
 * text_views(offsets, buf, views): views of the strings of an offset-based string array, same buffer.
 * headers(data, offs, kinds, ptrs, groups, message_flags, message_type, outs): the header fields of the
 *     records at offs (0x38 bytes each; a record that does not fit reads as zeros) in one pass, into the 14
 *     arrays of outs (container.py's HEADER_OUTS; its numpy reference gives the same columns).
 * type_keys(htype, group, provider, event_id, opcode, version, pointer_size, is_eh, out): the event-type key
 *     of every record (columnar.Decoder.keys' numpy reference gives the same keys).
 * group(keys, order, uniq, bounds) -> m: the rows in order of their key, rows of one key in their own order
 *     (a stable argsort of keys), the m distinct keys ascending and where each one's rows start in order.
 * The loops of large calls run without the GIL (small ones keep it: see BIG_WORK).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A call lets the GIL go only for work worth a thread switch: the caller of a small one would wait longer
 * to get the GIL back from another thread than the work takes (work: about the bytes it touches). */
#define BIG_WORK ((Py_ssize_t)1 << 16)
#define NOGIL_BEGIN(work) { PyThreadState *nogil_save_ = (work) >= BIG_WORK ? PyEval_SaveThread() : NULL;
#define NOGIL_END if (nogil_save_) PyEval_RestoreThread(nogil_save_); }

static int
get(PyObject *obj, Py_buffer *view, int writable)
{
    return PyObject_GetBuffer(obj, view, writable ? PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS);
}

static PyObject *
fixed(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_pos, *o_out;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OOnO", &o_data, &o_pos, &width, &o_out))
        return NULL;
    Py_buffer data, pos, out;
    if (get(o_data, &data, 0) < 0) return NULL;
    if (get(o_pos, &pos, 0) < 0) { PyBuffer_Release(&data); return NULL; }
    if (get(o_out, &out, 1) < 0) { PyBuffer_Release(&pos); PyBuffer_Release(&data); return NULL; }
    Py_ssize_t n = pos.len / 8;
    if (width < 0 || out.len < n * width) {
        PyErr_SetString(PyExc_ValueError, "output too small");
    } else {
        const uint8_t *d = data.buf;
        const int64_t *p = pos.buf;
        uint8_t *o = out.buf;
        NOGIL_BEGIN(n * width)
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = p[i];
            if (a >= 0 && a + width <= data.len)
                memcpy(o + i * width, d + a, width);
            else
                memset(o + i * width, 0, width);
        }
        NOGIL_END
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&pos);
    PyBuffer_Release(&data);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyObject *
spans(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_start, *o_len, *o_out;
    if (!PyArg_ParseTuple(args, "OOOO", &o_data, &o_start, &o_len, &o_out))
        return NULL;
    Py_buffer data, start, len, out;
    if (get(o_data, &data, 0) < 0) return NULL;
    if (get(o_start, &start, 0) < 0) { PyBuffer_Release(&data); return NULL; }
    if (get(o_len, &len, 0) < 0) { PyBuffer_Release(&start); PyBuffer_Release(&data); return NULL; }
    if (get(o_out, &out, 1) < 0) {
        PyBuffer_Release(&len); PyBuffer_Release(&start); PyBuffer_Release(&data); return NULL;
    }
    Py_ssize_t n = start.len / 8, at = 0;
    const uint8_t *d = data.buf;
    const int64_t *s = start.buf, *l = len.buf;
    uint8_t *o = out.buf;
    int bad = len.len / 8 < n;
    NOGIL_BEGIN(out.len)
    for (Py_ssize_t i = 0; i < n && !bad; i++) {
        if (s[i] < 0 || l[i] < 0 || s[i] + l[i] > data.len || at + l[i] > out.len) {
            bad = 1;
            break;
        }
        memcpy(o + at, d + s[i], l[i]);
        at += l[i];
    }
    NOGIL_END
    if (bad)
        PyErr_SetString(PyExc_ValueError, "span outside the data or the output");
    PyBuffer_Release(&out);
    PyBuffer_Release(&len);
    PyBuffer_Release(&start);
    PyBuffer_Release(&data);
    if (bad) return NULL;
    Py_RETURN_NONE;
}

static PyObject *
terminators(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_pos, *o_end, *o_out;
    int unit;
    if (!PyArg_ParseTuple(args, "OOOiO", &o_data, &o_pos, &o_end, &unit, &o_out))
        return NULL;
    if (unit != 1 && unit != 2) {
        PyErr_SetString(PyExc_ValueError, "unit must be 1 or 2");
        return NULL;
    }
    Py_buffer data, pos, end, out;
    if (get(o_data, &data, 0) < 0) return NULL;
    if (get(o_pos, &pos, 0) < 0) { PyBuffer_Release(&data); return NULL; }
    if (get(o_end, &end, 0) < 0) { PyBuffer_Release(&pos); PyBuffer_Release(&data); return NULL; }
    if (get(o_out, &out, 1) < 0) {
        PyBuffer_Release(&end); PyBuffer_Release(&pos); PyBuffer_Release(&data); return NULL;
    }
    Py_ssize_t n = pos.len / 8;
    if (end.len / 8 < n || out.len / 8 < n) {
        PyErr_SetString(PyExc_ValueError, "arrays of different lengths");
    } else {
        const uint8_t *d = data.buf;
        const int64_t *p = pos.buf, *e = end.buf;
        int64_t *o = out.buf, none = data.len;
        NOGIL_BEGIN(n * 16)
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = p[i], stop = e[i] < none ? e[i] : none, hit = none;
            if (a < 0) { o[i] = none; continue; }
            if (unit == 1) {
                const uint8_t *z = a < stop ? memchr(d + a, 0, stop - a) : NULL;
                if (z) hit = z - d;
            } else {
                int64_t q = a;
                for (; q + 8 <= stop; q += 8) {  /* four units at a time until a word holds a zero unit */
                    uint64_t w;
                    memcpy(&w, d + q, 8);
                    if ((w - 0x0001000100010001ULL) & ~w & 0x8000800080008000ULL) break;
                }
                for (; q + 2 <= stop; q += 2)
                    if (d[q] == 0 && d[q + 1] == 0) { hit = q; break; }
            }
            o[i] = hit;
        }
        NOGIL_END
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&end);
    PyBuffer_Release(&pos);
    PyBuffer_Release(&data);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* UTF-8 of code point c at o (returns bytes written). */
static inline Py_ssize_t
put_utf8(uint8_t *o, uint32_t c)
{
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = 0xC0 | (c >> 6); o[1] = 0x80 | (c & 0x3F); return 2; }
    if (c < 0x10000) {
        o[0] = 0xE0 | (c >> 12); o[1] = 0x80 | ((c >> 6) & 0x3F); o[2] = 0x80 | (c & 0x3F); return 3;
    }
    o[0] = 0xF0 | (c >> 18); o[1] = 0x80 | ((c >> 12) & 0x3F); o[2] = 0x80 | ((c >> 6) & 0x3F);
    o[3] = 0x80 | (c & 0x3F);
    return 4;
}

/* cp1252 bytes 0x80..0x9F (Python's codec; 0xFFFD where it has none), the rest is Latin-1. */
static const uint16_t CP1252_80[32] = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152,
    0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122,
    0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};

static PyObject *
text(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_start, *o_len, *o_offsets, *o_out;
    int kind;
    if (!PyArg_ParseTuple(args, "OOOiOO", &o_data, &o_start, &o_len, &kind, &o_offsets, &o_out))
        return NULL;
    if (kind != 0 && kind != 1) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0 (UTF-16LE) or 1 (cp1252)");
        return NULL;
    }
    Py_buffer data, start, len, offsets, out;
    if (get(o_data, &data, 0) < 0) return NULL;
    if (get(o_start, &start, 0) < 0) { PyBuffer_Release(&data); return NULL; }
    if (get(o_len, &len, 0) < 0) { PyBuffer_Release(&start); PyBuffer_Release(&data); return NULL; }
    if (get(o_offsets, &offsets, 1) < 0) {
        PyBuffer_Release(&len); PyBuffer_Release(&start); PyBuffer_Release(&data); return NULL;
    }
    if (get(o_out, &out, 1) < 0) {
        PyBuffer_Release(&offsets); PyBuffer_Release(&len); PyBuffer_Release(&start); PyBuffer_Release(&data);
        return NULL;
    }
    Py_ssize_t n = start.len / 8, at = 0;
    const uint8_t *d = data.buf;
    const int64_t *s = start.buf, *l = len.buf;
    int64_t *off = offsets.buf;
    uint8_t *o = out.buf;
    int bad = len.len / 8 < n || offsets.len / 8 < n + 1;
    NOGIL_BEGIN(out.len)
    if (!bad) {
        off[0] = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = s[i], k = l[i];
            /* room: 3 output bytes per input byte (cp1252), 3 per 2-byte unit and 3 for a trailing odd byte */
            int64_t room = kind == 1 ? 3 * k : 3 * (k / 2) + 3;
            if (a < 0 || k < 0 || a + k > data.len || at + room > out.len) { bad = 1; break; }
            const uint8_t *p = d + a;
            if (kind == 1) {
                int64_t q = 0;
                for (; q + 8 <= k; q += 8) {  /* ASCII eight bytes at a time */
                    uint64_t w;
                    memcpy(&w, p + q, 8);
                    if (w & 0x8080808080808080ULL) break;
                    memcpy(o + at, &w, 8);
                    at += 8;
                }
                for (; q < k; q++) {
                    uint8_t b = p[q];
                    at += b < 0x80 ? (o[at] = b, 1) : put_utf8(o + at, b < 0xA0 ? CP1252_80[b - 0x80] : b);
                }
            } else {
                int64_t units = k / 2, q = 0;
                while (q < units) {
                    if (q + 4 <= units) {  /* four ASCII units at a time */
                        uint64_t w;
                        memcpy(&w, p + 2 * q, 8);
                        if (!(w & 0xFF80FF80FF80FF80ULL)) {
                            o[at] = (uint8_t)w;
                            o[at + 1] = (uint8_t)(w >> 16);
                            o[at + 2] = (uint8_t)(w >> 32);
                            o[at + 3] = (uint8_t)(w >> 48);
                            at += 4;
                            q += 4;
                            continue;
                        }
                    }
                    uint32_t u = p[2 * q] | (p[2 * q + 1] << 8);
                    if (u < 0xD800 || u > 0xDFFF) { at += put_utf8(o + at, u); q++; continue; }
                    if (u <= 0xDBFF && q + 1 < units) {
                        uint32_t v = p[2 * q + 2] | (p[2 * q + 3] << 8);
                        if (v >= 0xDC00 && v <= 0xDFFF) {
                            at += put_utf8(o + at, 0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00));
                            q += 2;
                            continue;
                        }
                    }
                    at += put_utf8(o + at, 0xFFFD);  /* a lone surrogate, as Python's "replace" */
                    q++;
                    if (u <= 0xDBFF && q == units && (k & 1))
                        k--;  /* a high surrogate then a truncated unit: one error for both, as Python */
                }
                if (k & 1) at += put_utf8(o + at, 0xFFFD);  /* a truncated unit */
            }
            off[i + 1] = at;
        }
    }
    NOGIL_END
    if (bad)
        PyErr_SetString(PyExc_ValueError, "text span outside the data, or output too small");
    PyBuffer_Release(&out);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&len);
    PyBuffer_Release(&start);
    PyBuffer_Release(&data);
    if (bad) return NULL;
    return PyLong_FromSsize_t(at);
}

/* Arrow's 16-byte view of value i (length, then the value itself when it fits in 12 bytes, else its first
 * 4 bytes, buffer 0 and its offset there). */
static inline void
put_view(uint8_t *v, const uint8_t *value, int32_t length, int32_t offset)
{
    memset(v, 0, 16);
    memcpy(v, &length, 4);
    if (length <= 12) {
        memcpy(v + 4, value, length);
    } else {
        memcpy(v + 4, value, 4);
        memcpy(v + 12, &offset, 4);
    }
}

static PyObject *
views(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_start, *o_len, *o_views, *o_out;
    if (!PyArg_ParseTuple(args, "OOOOO", &o_data, &o_start, &o_len, &o_views, &o_out))
        return NULL;
    Py_buffer data, start, len, vw, out;
    if (get(o_data, &data, 0) < 0) return NULL;
    if (get(o_start, &start, 0) < 0) { PyBuffer_Release(&data); return NULL; }
    if (get(o_len, &len, 0) < 0) { PyBuffer_Release(&start); PyBuffer_Release(&data); return NULL; }
    if (get(o_views, &vw, 1) < 0) {
        PyBuffer_Release(&len); PyBuffer_Release(&start); PyBuffer_Release(&data); return NULL;
    }
    if (get(o_out, &out, 1) < 0) {
        PyBuffer_Release(&vw); PyBuffer_Release(&len); PyBuffer_Release(&start); PyBuffer_Release(&data);
        return NULL;
    }
    Py_ssize_t n = start.len / 8, at = 0;
    const uint8_t *d = data.buf;
    const int64_t *s = start.buf, *l = len.buf;
    uint8_t *v = vw.buf, *o = out.buf;
    int bad = len.len / 8 < n || vw.len < 16 * n;
    NOGIL_BEGIN(n * 16 + out.len)
    for (Py_ssize_t i = 0; i < n && !bad; i++) {
        int64_t a = s[i], k = l[i];
        if (a < 0 || k < 0 || a + k > data.len || k > INT32_MAX) { bad = 1; break; }
        if (k > 12) {
            if (at + k > out.len || at > INT32_MAX) { bad = 1; break; }
            memcpy(o + at, d + a, k);
            put_view(v + 16 * i, d + a, (int32_t)k, (int32_t)at);
            at += k;
        } else {
            put_view(v + 16 * i, d + a, (int32_t)k, 0);
        }
    }
    NOGIL_END
    if (bad)
        PyErr_SetString(PyExc_ValueError, "span outside the data, or output too small");
    PyBuffer_Release(&out);
    PyBuffer_Release(&vw);
    PyBuffer_Release(&len);
    PyBuffer_Release(&start);
    PyBuffer_Release(&data);
    if (bad) return NULL;
    return PyLong_FromSsize_t(at);
}

static PyObject *
text_views(PyObject *self, PyObject *args)
{
    PyObject *o_offsets, *o_buf, *o_views;
    if (!PyArg_ParseTuple(args, "OOO", &o_offsets, &o_buf, &o_views))
        return NULL;
    Py_buffer offsets, buf, vw;
    if (get(o_offsets, &offsets, 0) < 0) return NULL;
    if (get(o_buf, &buf, 0) < 0) { PyBuffer_Release(&offsets); return NULL; }
    if (get(o_views, &vw, 1) < 0) { PyBuffer_Release(&buf); PyBuffer_Release(&offsets); return NULL; }
    Py_ssize_t n = offsets.len / 8 - 1;
    const int64_t *off = offsets.buf;
    const uint8_t *b = buf.buf;
    uint8_t *v = vw.buf;
    int bad = n < 0 || vw.len < 16 * n;
    NOGIL_BEGIN(n * 16)
    for (Py_ssize_t i = 0; i < n && !bad; i++) {
        int64_t a = off[i], k = off[i + 1] - off[i];
        if (a < 0 || k < 0 || a + k > buf.len || a > INT32_MAX || k > INT32_MAX) { bad = 1; break; }
        put_view(v + 16 * i, b + a, (int32_t)k, (int32_t)a);
    }
    NOGIL_END
    if (bad)
        PyErr_SetString(PyExc_ValueError, "offsets outside the buffer");
    PyBuffer_Release(&vw);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&offsets);
    if (bad) return NULL;
    Py_RETURN_NONE;
}

/* Header kinds of container.py (_K_SYSTEM, _K_PERFINFO, _K_CLASSIC, _K_EVENT). */
enum { K_SYSTEM = 1, K_PERFINFO = 2, K_CLASSIC = 3, K_EVENT = 4 };
/* headers()'s output columns, in order, and the bytes of one value of each. */
#define N_HEADER_OUTS 14
static const int header_width[N_HEADER_OUTS] = {1, 1, 4, 2, 1, 2, 2, 1, 8, 4, 4, 8, 8, 8};

static PyObject *
headers(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_offs, *o_kinds, *o_ptrs, *o_groups, *o_outs;
    int message_flags, message_type;
    if (!PyArg_ParseTuple(args, "OOOOOiiO", &o_data, &o_offs, &o_kinds, &o_ptrs, &o_groups, &message_flags,
                          &message_type, &o_outs))
        return NULL;
    if (!PyTuple_Check(o_outs) || PyTuple_GET_SIZE(o_outs) != N_HEADER_OUTS) {
        PyErr_SetString(PyExc_ValueError, "outs must be a tuple of 14 arrays");
        return NULL;
    }
    Py_buffer data, offs, kinds, ptrs, groups, outs[N_HEADER_OUTS];
    int got = 0, bad = 0;
    if (get(o_data, &data, 0) < 0) return NULL;
    if (get(o_offs, &offs, 0) < 0) { PyBuffer_Release(&data); return NULL; }
    if (get(o_kinds, &kinds, 0) < 0) { PyBuffer_Release(&offs); PyBuffer_Release(&data); return NULL; }
    if (get(o_ptrs, &ptrs, 0) < 0) {
        PyBuffer_Release(&kinds); PyBuffer_Release(&offs); PyBuffer_Release(&data); return NULL;
    }
    if (get(o_groups, &groups, 0) < 0) {
        PyBuffer_Release(&ptrs); PyBuffer_Release(&kinds); PyBuffer_Release(&offs); PyBuffer_Release(&data);
        return NULL;
    }
    Py_ssize_t n = offs.len / 8;
    for (; got < N_HEADER_OUTS; got++) {
        if (get(PyTuple_GET_ITEM(o_outs, got), &outs[got], 1) < 0) { bad = 2; break; }
        if (outs[got].len < n * header_width[got]) { bad = 1; got++; break; }
    }
    if (!bad && (kinds.len < 256 || ptrs.len < 256 || groups.len < 256 * 4)) bad = 1;
    if (!bad) {
        const uint8_t *d = data.buf, *kind_of = kinds.buf, *ptr_of = ptrs.buf;
        const int64_t *p = offs.buf;
        const int32_t *group_provider = groups.buf;
        uint8_t *htype_o = outs[0].buf, *ptr_o = outs[1].buf, *opcode_o = outs[4].buf, *level_o = outs[7].buf;
        int32_t *provider_o = outs[2].buf;
        int16_t *group_o = outs[3].buf;
        uint16_t *version_o = outs[5].buf, *event_id_o = outs[6].buf;
        uint64_t *keyword_o = outs[8].buf, *raw_o = outs[11].buf, *guid_lo = outs[12].buf, *guid_hi = outs[13].buf;
        uint32_t *pid_o = outs[9].buf, *tid_o = outs[10].buf;
        NOGIL_BEGIN(n * 56)
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t w[7];
            int64_t a = p[i];
            if (a >= 0 && a <= data.len - 56)
                memcpy(w, d + a, 56);
            else
                memset(w, 0, sizeof w);
            uint64_t w0 = w[0], w1 = w[1], w5 = w[5];
            uint8_t flags = (uint8_t)(w0 >> 24);
            uint8_t htype = flags == (uint8_t)message_flags ? (uint8_t)message_type : (uint8_t)(w0 >> 16);
            uint8_t kind = kind_of[htype];
            int kern = kind == K_SYSTEM, perf = kind == K_PERFINFO, guided = kind >= K_CLASSIC,
                ev = kind == K_EVENT, kp = kern || perf;
            uint32_t hi32 = (uint32_t)(w0 >> 32);
            uint8_t b6 = (uint8_t)(hi32 >> 16), b7 = (uint8_t)(hi32 >> 24);
            htype_o[i] = htype;
            group_o[i] = kp ? (int16_t)b7 : -1;
            provider_o[i] = kp ? group_provider[b7] : -1;
            int with_ids = kern || guided;
            tid_o[i] = with_ids ? (uint32_t)w1 : 0xFFFFFFFFu;
            pid_o[i] = with_ids ? (uint32_t)(w1 >> 32) : 0xFFFFFFFFu;
            raw_o[i] = perf ? w1 : w[2];
            uint8_t opcode = kp ? b6 : ev ? (uint8_t)(w5 >> 40) : (uint8_t)hi32;
            uint16_t version = kp ? (uint16_t)(w0 & 0xFF) : ev ? (uint16_t)((w5 >> 16) & 0xFF) : (uint16_t)(hi32 >> 16);
            uint8_t level = ev ? (uint8_t)(w5 >> 32) : (uint8_t)(hi32 >> 8);
            opcode_o[i] = (guided || kp) ? opcode : 0;
            version_o[i] = (guided || kp) ? version : 0;
            level_o[i] = guided ? level : 0; /* classic or event */
            event_id_o[i] = ev ? (uint16_t)(w5 & 0xFFFF) : 0;
            keyword_o[i] = ev ? w[6] : 0;
            guid_lo[i] = guided ? w[3] : 0;
            guid_hi[i] = guided ? w[4] : 0;
            ptr_o[i] = ptr_of[htype];
        }
        NOGIL_END
    }
    if (bad == 1)
        PyErr_SetString(PyExc_ValueError, "output or table too small");
    for (int k = 0; k < got; k++) /* the outputs taken (a failed get took none) */
        PyBuffer_Release(&outs[k]);
    PyBuffer_Release(&groups);
    PyBuffer_Release(&ptrs);
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&data);
    if (bad) return NULL;
    Py_RETURN_NONE;
}

static PyObject *
type_keys(PyObject *self, PyObject *args)
{
    PyObject *o[9];
    if (!PyArg_ParseTuple(args, "OOOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8]))
        return NULL;
    /* htype u8, group i16, provider i32, event_id u16, opcode u8, version u16, pointer_size u8,
       is_eh (256 bools), out i64 */
    static const int width[9] = {1, 2, 4, 2, 1, 2, 1, 1, 8};
    Py_buffer b[9];
    int got = 0, bad = 0;
    for (; got < 9; got++)
        if (get(o[got], &b[got], got == 8) < 0) { bad = 2; break; }
    Py_ssize_t n = got == 9 ? b[0].len : 0;
    if (!bad) {
        for (int k = 0; k < 9; k++)
            if (k != 7 && b[k].len < n * width[k]) bad = 1;
        if (b[7].len < 256) bad = 1;
    }
    if (!bad) {
        const uint8_t *htype = b[0].buf, *opcode = b[4].buf, *psize = b[6].buf, *is_eh = b[7].buf;
        const int16_t *group = b[1].buf;
        const int32_t *provider = b[2].buf;
        const uint16_t *event_id = b[3].buf, *version = b[5].buf;
        int64_t *out = b[8].buf;
        NOGIL_BEGIN(n * 8)
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t kind = is_eh[htype[i]] ? 1 : group[i] >= 0 ? 0 : 2;
            int64_t ident = kind == 1 ? (int64_t)event_id[i] : (int64_t)opcode[i];
            int64_t sub = kind == 2 ? (int64_t)htype[i] : kind == 0 ? (int64_t)group[i] + 1 : 0;
            out[i] = (int64_t)((uint64_t)kind << 60 | (uint64_t)sub << 50 | (uint64_t)((int64_t)provider[i] + 1) << 34
                               | (uint64_t)ident << 18 | (uint64_t)version[i] << 2 | (uint64_t)(psize[i] == 8));
        }
        NOGIL_END
    }
    if (bad == 1)
        PyErr_SetString(PyExc_ValueError, "arrays of different lengths");
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&b[k]);
    if (bad) return NULL;
    Py_RETURN_NONE;
}

static int
cmp_key(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A key's slot: splitmix64's finalizer, so keys that differ only in a few high bits (many providers) spread. */
static inline size_t
slot_of(int64_t key, size_t slots)
{
    uint64_t z = (uint64_t)key;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (size_t)(z ^ (z >> 31)) & (slots - 1);
}

static PyObject *
group(PyObject *self, PyObject *args)
{
    PyObject *o_keys, *o_order, *o_uniq, *o_bounds;
    if (!PyArg_ParseTuple(args, "OOOO", &o_keys, &o_order, &o_uniq, &o_bounds))
        return NULL;
    Py_buffer keys, order, uniq, bounds;
    if (get(o_keys, &keys, 0) < 0) return NULL;
    if (get(o_order, &order, 1) < 0) { PyBuffer_Release(&keys); return NULL; }
    if (get(o_uniq, &uniq, 1) < 0) { PyBuffer_Release(&order); PyBuffer_Release(&keys); return NULL; }
    if (get(o_bounds, &bounds, 1) < 0) {
        PyBuffer_Release(&uniq); PyBuffer_Release(&order); PyBuffer_Release(&keys); return NULL;
    }
    Py_ssize_t n = keys.len / 8, m = 0;
    int bad = order.len < 8 * n || uniq.len < 8 * n || bounds.len < 8 * (n + 1);
    /* a hash table of the distinct keys (twice as many slots as rows at least, a power of two) */
    size_t slots = 16;
    while (slots < 2 * (size_t)n) slots <<= 1;
    int64_t *slot_key = NULL, *id_of = NULL;
    int32_t *slot_id = NULL, *row_id = NULL;
    if (!bad) {
        slot_key = PyMem_RawMalloc(slots * sizeof *slot_key);
        slot_id = PyMem_RawMalloc(slots * sizeof *slot_id);
        row_id = PyMem_RawMalloc((n + 1) * sizeof *row_id);
        id_of = PyMem_RawMalloc(2 * (n + 1) * sizeof *id_of);
        if (!slot_key || !slot_id || !row_id || !id_of) bad = 3;
    }
    if (!bad) {
        const int64_t *k = keys.buf;
        int64_t *ord = order.buf, *u = uniq.buf, *bd = bounds.buf;
        NOGIL_BEGIN(n * 16)
        for (size_t j = 0; j < slots; j++) slot_id[j] = -1;
        /* ids in order of first appearance; u holds each id's key for now */
        /* probes are bounded: keys made to collide give up the table (the caller sorts instead) */
        size_t probes = 0, most = 8 * (size_t)n + 64;
        for (Py_ssize_t i = 0; i < n && !bad; i++) {
            size_t j = slot_of(k[i], slots);
            while (slot_id[j] >= 0 && slot_key[j] != k[i]) {
                j = (j + 1) & (slots - 1);
                if (++probes > most) { bad = 4; break; }
            }
            if (slot_id[j] < 0) { slot_id[j] = (int32_t)m; slot_key[j] = k[i]; u[m++] = k[i]; }
            row_id[i] = slot_id[j];
        }
        if (!bad) {
        /* the distinct keys ascending; rank[id] = the key's place among them */
        qsort(u, m, sizeof *u, cmp_key);
        int64_t *rank = id_of + (n + 1);
        for (Py_ssize_t g = 0; g < m; g++) {
            size_t j = slot_of(u[g], slots);
            while (slot_key[j] != u[g]) j = (j + 1) & (slots - 1);
            rank[slot_id[j]] = g;
        }
        for (Py_ssize_t g = 0; g <= m; g++) bd[g] = 0;
        for (Py_ssize_t i = 0; i < n; i++) bd[rank[row_id[i]] + 1]++;
        for (Py_ssize_t g = 0; g < m; g++) bd[g + 1] += bd[g];
        /* each row to the next place of its key: rows of one key keep their order */
        for (Py_ssize_t g = 0; g < m; g++) id_of[g] = bd[g];
        for (Py_ssize_t i = 0; i < n; i++) ord[id_of[rank[row_id[i]]]++] = i;
        }
        NOGIL_END
    }
    PyMem_RawFree(slot_key);
    PyMem_RawFree(slot_id);
    PyMem_RawFree(row_id);
    PyMem_RawFree(id_of);
    if (bad == 1)
        PyErr_SetString(PyExc_ValueError, "output too small");
    else if (bad == 3)
        PyErr_NoMemory();
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&uniq);
    PyBuffer_Release(&order);
    PyBuffer_Release(&keys);
    if (bad == 4) return PyLong_FromSsize_t(-1);
    if (bad) return NULL;
    return PyLong_FromSsize_t(m);
}

static PyMethodDef methods[] = {
    {"fixed", fixed, METH_VARARGS, "fixed(data, pos, width, out): width bytes at each position."},
    {"spans", spans, METH_VARARGS, "spans(data, start, length, out): the spans, concatenated."},
    {"terminators", terminators, METH_VARARGS,
     "terminators(data, pos, end, unit, out): first NUL unit of each string (len(data): none)."},
    {"text", text, METH_VARARGS,
     "text(data, start, length, kind, offsets, out) -> bytes used: the spans decoded (kind 0: UTF-16LE, "
     "1: cp1252; as Python's 'replace') into UTF-8 in out, string i at out[offsets[i]:offsets[i+1]]."},
    {"views", views, METH_VARARGS,
     "views(data, start, length, views, out) -> bytes used: Arrow binary views of the spans (16 bytes each in "
     "views; values over 12 bytes copied into out, buffer 0)."},
    {"text_views", text_views, METH_VARARGS,
     "text_views(offsets, buf, views): Arrow views of the strings buf[offsets[i]:offsets[i+1]] (buffer 0)."},
    {"headers", headers, METH_VARARGS,
     "headers(data, offs, kinds, ptrs, groups, message_flags, message_type, outs): the record headers' fields."},
    {"type_keys", type_keys, METH_VARARGS,
     "type_keys(htype, group, provider, event_id, opcode, version, pointer_size, is_eh, out): event-type keys."},
    {"group", group, METH_VARARGS,
     "group(keys, order, uniq, bounds) -> m: a stable argsort of keys, its m distinct keys and their bounds "
     "(-1: keys that collide too often; nothing written)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_columnar",
                                    "C accelerator of etwtools' columnar event decoding.", -1, methods};

PyMODINIT_FUNC
PyInit__columnar(void)
{
    return PyModule_Create(&module);
}
