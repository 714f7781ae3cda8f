/* Optional C accelerators for etwtools' ETL reader (pure-Python fallbacks give identical results).
 *
 * lzxpress_decompress(src, out_size, partial=False) -> bytes
 *     MS-XCA "plain LZ77" (Xpress) decompression, as used by compressed ETL buffers.
 *     Raises ValueError on malformed input or when the output would exceed out_size (partial: stops
 *     there instead, returning the first out_size bytes).
 * lzxpress_decompress_into(src, out, at, out_size) -> written
 *     The same, written into the writable buffer out at position at (out_size bytes of room).
 * lzxpress_decompress_many(srcs, out, at, sizes) -> [(i, reason)]
 *     Each source decompressed into out[at[i]:at[i] + sizes[i]] in one call (one release of the GIL for
 *     a batch's buffers); the sources that fail, with why (the messages of lzxpress_decompress_into).
 * walk(data, starts, ends, out_offsets, out_sizes, out_hdrs) -> (count, damages)
 *     The record walk of parsers/etl/container.py (walk_py): for each segment [starts[i], ends[i])
 *     of data, the offset, size and header length (incl. extended items) of every record; damages is
 *     a list of (segment, offset, resumed_at or -1, reason code, records lost).
 * walk_select(data, starts, ends, offsets, sizes, hdrs, kinds, groups, guids, raw_anchor, lo, hi, index)
 *     -> (kept, count, bad_times, damages)
 *     walk and select in one pass (selection arguments as select() takes them): only the wanted records
 *     are kept, index[i] (an array as long as offsets) their position among all the records walked.
 * lay_out(out, parts, starts, ends, stop)
 *     The parts (buffers, or None for bytes already there) copied to out[starts[i]:ends[i]], the gaps
 *     up to the next start (the last: up to stop) 0xFF.
 * pack(data, offsets, sizes, out, out_offsets) -> end
 *     The records at offsets copied into out one after the other, 8-aligned (gaps 0xFF).
 * select(data, offsets, kinds, groups, guids, raw_anchor, lo, hi, out) -> (kept, bad_times)
 *     The records a reader asks for, before any header field is gathered (container.py _select_py):
 *     out[:kept] = positions (into offsets) of the records whose provider is wanted: kernel headers
 *     (kinds[type] 1 SYSTEM/COMPACT, 2 PERFINFO) by groups[group byte] != 0, GUID headers (3 classic,
 *     4 EVENT_HEADER) by their GUID (16 bytes at 0x18) being one of guids (16 bytes each); bad_times
 *     counts the timed (non-MESSAGE) records whose timestamp minus raw_anchor (a signed 64-bit delta)
 *     is outside [lo, hi].
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ LZ77 (MS-XCA 2.4) */

/* Decompresses in[0:in_len) into out[0:cap) (partial: stops once cap bytes are out); returns NULL or
   what is wrong, *op the bytes written, *ip the input position reached. Runs without the interpreter. */
static const char *
xpress(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, int partial, size_t *op_out, size_t *ip_out)
{
    size_t ip = 0, op = 0, last_half = 0;
    uint32_t flags = 0;
    int flag_count = 0;
    const char *err = NULL;
    while (ip < in_len) {
        if (partial && op >= cap)
            break;                                   /* the first cap bytes are enough */
        if (flag_count == 0) {
            if (ip + 4 > in_len) { err = "truncated flag word"; break; }
            flags = (uint32_t)in[ip] | (uint32_t)in[ip + 1] << 8 | (uint32_t)in[ip + 2] << 16 |
                    (uint32_t)in[ip + 3] << 24;
            ip += 4;
            flag_count = 32;
        }
        flag_count--;
        if ((flags & (1u << flag_count)) == 0) {
            if (ip >= in_len) { err = "truncated literal"; break; }
            if (op >= cap) { err = "output larger than expected"; break; }
            out[op++] = in[ip++];
            continue;
        }
        if (ip == in_len)
            break;                                   /* end of stream */
        if (ip + 2 > in_len) { err = "truncated match"; break; }
        size_t match = (size_t)in[ip] | (size_t)in[ip + 1] << 8;
        ip += 2;
        size_t length = match & 7, offset = (match >> 3) + 1;
        if (length == 7) {
            if (last_half == 0) {
                if (ip >= in_len) { err = "truncated match length"; break; }
                length = in[ip] & 15;
                last_half = ip;
                ip += 1;
            } else {
                length = in[last_half] >> 4;
                last_half = 0;
            }
            if (length == 15) {
                if (ip >= in_len) { err = "truncated match length"; break; }
                length = in[ip++];
                if (length == 255) {
                    if (ip + 2 > in_len) { err = "truncated match length"; break; }
                    length = (size_t)in[ip] | (size_t)in[ip + 1] << 8;
                    ip += 2;
                    if (length == 0) {
                        if (ip + 4 > in_len) { err = "truncated match length"; break; }
                        length = (size_t)in[ip] | (size_t)in[ip + 1] << 8 | (size_t)in[ip + 2] << 16 |
                                 (size_t)in[ip + 3] << 24;
                        ip += 4;
                    }
                    if (length < 15 + 7) { err = "wrong match length"; break; }
                    length -= 15 + 7;
                }
                length += 15;
            }
            length += 7;
        }
        length += 3;
        if (offset > op) { err = "match before the start of the output"; break; }
        if (length > cap - op) {
            if (!partial) { err = "output larger than expected"; break; }
            length = cap - op;
        }
        uint8_t *dst = out + op;
        const uint8_t *from = dst - offset;
        if (offset >= length) {
            memcpy(dst, from, length);
        } else {
            for (size_t i = 0; i < length; i++)
                dst[i] = from[i];
        }
        op += length;
    }
    *op_out = op;
    *ip_out = ip;
    return err;
}

static PyObject *
lzxpress_decompress(PyObject *self, PyObject *args)
{
    Py_buffer src;
    Py_ssize_t out_size;
    int partial = 0;
    if (!PyArg_ParseTuple(args, "y*n|p", &src, &out_size, &partial))
        return NULL;
    if (out_size < 0) {
        PyBuffer_Release(&src);
        PyErr_SetString(PyExc_ValueError, "negative output size");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, out_size);
    if (result == NULL) {
        PyBuffer_Release(&src);
        return NULL;
    }
    size_t op, ip;
    const char *err;
    Py_BEGIN_ALLOW_THREADS
    err = xpress((const uint8_t *)src.buf, (size_t)src.len, (uint8_t *)PyBytes_AS_STRING(result),
                 (size_t)out_size, partial, &op, &ip);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    if (err != NULL) {
        Py_DECREF(result);
        PyErr_Format(PyExc_ValueError, "malformed LZ77 data: %s (input byte %zd)", err, (Py_ssize_t)ip);
        return NULL;
    }
    if (op != (size_t)out_size && _PyBytes_Resize(&result, (Py_ssize_t)op) < 0)
        return NULL;
    return result;
}

/* lzxpress_decompress_into(src, out, at, out_size) -> written: decompression into out[at:at + out_size]. */
static PyObject *
lzxpress_decompress_into(PyObject *self, PyObject *args)
{
    Py_buffer src, out;
    Py_ssize_t at, out_size;
    if (!PyArg_ParseTuple(args, "y*w*nn", &src, &out, &at, &out_size))
        return NULL;
    PyObject *result = NULL;
    if (at < 0 || out_size < 0 || at > out.len || out_size > out.len - at) {
        PyErr_SetString(PyExc_ValueError, "output range outside the output buffer");
    } else {
        size_t op, ip;
        const char *err;
        Py_BEGIN_ALLOW_THREADS
        err = xpress((const uint8_t *)src.buf, (size_t)src.len, (uint8_t *)out.buf + at, (size_t)out_size, 0,
                     &op, &ip);
        Py_END_ALLOW_THREADS
        if (err != NULL)
            PyErr_Format(PyExc_ValueError, "malformed LZ77 data: %s (input byte %zd)", err, (Py_ssize_t)ip);
        else
            result = PyLong_FromSize_t(op);
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&src);
    return result;
}

/* lzxpress_decompress_many(srcs, out, at, sizes) -> failures: srcs[i] decompressed into
 * out[at[i]:at[i] + sizes[i]] (int64 arrays), all in one call without the GIL; failures lists (i, reason)
 * for each source that is malformed or does not decode to exactly sizes[i] bytes. */
static PyObject *
lzxpress_decompress_many(PyObject *self, PyObject *args)
{
    PyObject *srcs, *o_at, *o_sizes;
    Py_buffer out, at, sizes;
    if (!PyArg_ParseTuple(args, "O!w*OO", &PyList_Type, &srcs, &out, &o_at, &o_sizes))
        return NULL;
    if (PyObject_GetBuffer(o_at, &at, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&out);
        return NULL;
    }
    if (PyObject_GetBuffer(o_sizes, &sizes, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&at);
        PyBuffer_Release(&out);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(srcs), got = 0;
    Py_buffer *views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
    const char **errs = PyMem_Calloc(n ? n : 1, sizeof(char *));
    size_t *ops = PyMem_Calloc(n ? n : 1, sizeof(size_t)), *ips = PyMem_Calloc(n ? n : 1, sizeof(size_t));
    const int64_t *a = at.buf, *z = sizes.buf;
    if (views == NULL || errs == NULL || ops == NULL || ips == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (at.len != n * 8 || sizes.len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "one place and one size per source");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (a[i] < 0 || z[i] < 0 || a[i] > out.len || z[i] > out.len - a[i]) {
            PyErr_SetString(PyExc_ValueError, "output range outside the output buffer");
            goto done;
        }
    }
    for (; got < n; got++)
        if (PyObject_GetBuffer(PyList_GET_ITEM(srcs, got), &views[got], PyBUF_SIMPLE) < 0)
            goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        errs[i] = xpress((const uint8_t *)views[i].buf, (size_t)views[i].len, (uint8_t *)out.buf + a[i],
                         (size_t)z[i], 0, &ops[i], &ips[i]);
    Py_END_ALLOW_THREADS
    result = PyList_New(0);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        PyObject *item = NULL;
        if (errs[i] != NULL)
            item = Py_BuildValue("(nN)", i, PyUnicode_FromFormat("malformed LZ77 data: %s (input byte %zd)",
                                                                errs[i], (Py_ssize_t)ips[i]));
        else if (ops[i] != (size_t)z[i])
            item = Py_BuildValue("(nN)", i, PyUnicode_FromFormat("LZ77 data decodes to %zd bytes, expected %zd",
                                                                (Py_ssize_t)ops[i], (Py_ssize_t)z[i]));
        else
            continue;
        if (item == NULL || PyList_Append(result, item) < 0)
            Py_CLEAR(result);
        Py_XDECREF(item);
    }
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(errs);
    PyMem_Free(ops);
    PyMem_Free(ips);
    PyBuffer_Release(&sizes);
    PyBuffer_Release(&at);
    PyBuffer_Release(&out);
    return result;
}

/* ------------------------------------------------------------------ record walk */

/* header types (records.py) */
static uint8_t HDR_LEN[256];
static uint8_t SIZE_AT_4[256];

static void
init_tables(void)
{
    memset(HDR_LEN, 0, sizeof HDR_LEN);
    memset(SIZE_AT_4, 0, sizeof SIZE_AT_4);
    HDR_LEN[0x01] = HDR_LEN[0x02] = 0x20;     /* SYSTEM32/64 */
    HDR_LEN[0x03] = HDR_LEN[0x04] = 0x18;     /* COMPACT32/64 */
    HDR_LEN[0x10] = HDR_LEN[0x11] = 0x10;     /* PERFINFO32/64 */
    HDR_LEN[0x0A] = HDR_LEN[0x14] = 0x30;     /* FULL_HEADER32/64 */
    HDR_LEN[0x0B] = HDR_LEN[0x15] = 0x48;     /* INSTANCE32/64 */
    HDR_LEN[0x12] = HDR_LEN[0x13] = 0x50;     /* EVENT_HEADER32/64 */
    SIZE_AT_4[0x01] = SIZE_AT_4[0x02] = SIZE_AT_4[0x03] = SIZE_AT_4[0x04] = 1;
    SIZE_AT_4[0x10] = SIZE_AT_4[0x11] = 1;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Returns the damage code (0: fine); *size = 0 at the end of the records. */
static int
record_at(const uint8_t *d, int64_t p, int64_t end, int64_t *size, int64_t *hdr)
{
    *size = 0;
    *hdr = 0;
    if (p + 4 > end)
        return 0;
    uint16_t low = rd16(d + p);
    uint8_t ht = d[p + 2], flags = d[p + 3];
    if (low == 0xFFFF && ht == 0xFF && flags == 0xFF)
        return 0;
    int64_t sz, h;
    if (flags == 0x90) {
        sz = low;
        h = 8;
    } else if (flags == 0xC0 && HDR_LEN[ht]) {
        h = HDR_LEN[ht];
        if (SIZE_AT_4[ht]) {
            if (p + 8 > end)
                return 3;
            sz = rd16(d + p + 4);
            if (low & 0x8000)
                h += 8;
            h += 8 * ((low & 0x0700) >> 8);
        } else {
            sz = low;
        }
    } else {
        return 1;
    }
    if (sz < h)
        return 2;
    if (p + sz > end)
        return 3;
    if ((ht == 0x12 || ht == 0x13) && flags == 0xC0 && (rd16(d + p + 4) & 1)) {
        int64_t q = p + h, rec_end = p + sz;
        for (;;) {
            if (q + 8 > rec_end)
                return 4;
            uint16_t isz = rd16(d + q), link = rd16(d + q + 4);
            if (isz < 8 || (isz & 7) || q + isz > rec_end)
                return 4;
            q += isz;
            if (!(link & 1))
                break;
        }
        h = q - p;
    }
    *size = sz;
    *hdr = h;
    return 0;
}

#define RESYNC_MIN_CHAIN 16

/* The first 8-aligned position after a bad record at p from which valid records run to the end of the
 * segment (or its end marker), or RESYNC_MIN_CHAIN valid records in a row; -1 when there is none
 * (_resync in container.py). memo (one slot per 8 bytes from base, shared by every resync of the
 * segment): 0 unknown, 1 reaches the end, k + 2 fails after k valid records; path: scratch of as many
 * slots. No position is walked twice: linear work. */
static int64_t
resync(const uint8_t *d, int64_t p, int64_t end, uint32_t *memo, int64_t *path, int64_t base)
{
    int64_t size, hdr;
    for (int64_t q = p + 8; q + 4 <= end; q += 8) {
        int bad = record_at(d, q, end, &size, &hdr);
        if (bad || size == 0)
            continue;
        int64_t n = 0, r = q + ((size + 7) & ~(int64_t)7);
        uint32_t result;
        path[n++] = q;
        for (;;) {
            if (r + 4 > end) { result = 1; break; }
            result = memo[(r - base) >> 3];
            if (result)
                break;
            bad = record_at(d, r, end, &size, &hdr);
            if (bad) { result = 2; break; }
            if (size == 0) { result = 1; break; }
            path[n++] = r;
            r += (size + 7) & ~(int64_t)7;
        }
        while (n > 0) {
            if (result != 1)
                result++;
            memo[(path[--n] - base) >> 3] = result;
        }
        if (result == 1 || result - 2 >= RESYNC_MIN_CHAIN)
            return q;
    }
    return -1;
}

/* Records lost in the skipped bytes [p, stop) after a bad record at p (lost_records in container.py). */
static int64_t
lost_records(const uint8_t *d, int64_t p, int64_t stop, int64_t end)
{
    int64_t n = 1, r = p + 8, size, hdr;
    while (r + 4 <= stop) {
        if (record_at(d, r, end, &size, &hdr) || size == 0) {
            r += 8;
            continue;
        }
        n++;
        r += (size + 7) & ~(int64_t)7;
    }
    return n;
}

static int
get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, const char *name)
{
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (itemsize && view->len % itemsize) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: length is not a multiple of %zd", name, itemsize);
        return -1;
    }
    return 0;
}

/* The record selection of select() and walk()'s filter: which records a reader asks for. */
struct selection {
    const uint8_t *kind, *grp, *guids;
    Py_ssize_t nguid;
    uint64_t anchor;
    int64_t lo, hi;
    Py_ssize_t bad; /* timed records whose timestamp is outside [lo, hi] from anchor */
};

/* Whether the record at r (its header lies inside the data) is one of the wanted providers'; counts
   its time when damaged. */
static inline int
wanted_record(struct selection *s, const uint8_t *r)
{
    if (r[3] == 0x90)
        return 0; /* MESSAGE: no timestamp, no provider */
    uint8_t k = s->kind[r[2]];
    uint64_t raw;
    memcpy(&raw, r + (k == 2 ? 8 : 16), 8);
    int64_t delta = (int64_t)(raw - s->anchor);
    s->bad += delta < s->lo || delta > s->hi;
    if (k == 1 || k == 2)
        return s->grp[r[7]] != 0;
    if (k >= 3)
        for (Py_ssize_t j = 0; j < s->nguid; j++)
            if (memcmp(r + 0x18, s->guids + 16 * j, 16) == 0)
                return 1;
    return 0;
}

static PyObject *
walk_records(PyObject *args, int filtered)
{
    PyObject *o_data, *o_starts, *o_ends, *o_offs, *o_sizes, *o_hdrs;
    PyObject *o_kinds = NULL, *o_groups = NULL, *o_guids = NULL, *o_idx = NULL;
    unsigned long long anchor = 0;
    long long lo = 0, hi = 0;
    if (filtered ? !PyArg_ParseTuple(args, "OOOOOOOOOKLLO", &o_data, &o_starts, &o_ends, &o_offs, &o_sizes,
                                     &o_hdrs, &o_kinds, &o_groups, &o_guids, &anchor, &lo, &hi, &o_idx)
                 : !PyArg_ParseTuple(args, "OOOOOO", &o_data, &o_starts, &o_ends, &o_offs, &o_sizes, &o_hdrs))
        return NULL;
    Py_buffer data, starts, ends, offs, sizes, hdrs, kinds, groups, guids, idx;
    uint32_t *memo = NULL;
    int64_t *path = NULL;
    int got = 0;
    PyObject *damages = NULL, *result = NULL;
    if (get_buffer(o_data, &data, 0, 0, "data") < 0) goto done;
    got = 1;
    if (get_buffer(o_starts, &starts, 0, 8, "starts") < 0) goto done;
    got = 2;
    if (get_buffer(o_ends, &ends, 0, 8, "ends") < 0) goto done;
    got = 3;
    if (get_buffer(o_offs, &offs, 1, 8, "offsets") < 0) goto done;
    got = 4;
    if (get_buffer(o_sizes, &sizes, 1, 8, "sizes") < 0) goto done;
    got = 5;
    if (get_buffer(o_hdrs, &hdrs, 1, 8, "hdrs") < 0) goto done;
    got = 6;
    if (filtered) {
        if (get_buffer(o_kinds, &kinds, 0, 0, "kinds") < 0) goto done;
        got = 7;
        if (get_buffer(o_groups, &groups, 0, 0, "groups") < 0) goto done;
        got = 8;
        if (get_buffer(o_guids, &guids, 0, 16, "guids") < 0) goto done;
        got = 9;
        if (get_buffer(o_idx, &idx, 1, 8, "index") < 0) goto done;
        got = 10;
        if (kinds.len != 256 || groups.len != 256 || idx.len != offs.len) {
            PyErr_SetString(PyExc_ValueError, "kinds and groups need 256 entries, index one per offset");
            goto done;
        }
    }
    if (starts.len != ends.len || offs.len != sizes.len || offs.len != hdrs.len) {
        PyErr_SetString(PyExc_ValueError, "array lengths differ");
        goto done;
    }
    damages = PyList_New(0);
    if (damages == NULL) goto done;

    struct selection sel = {0};
    int64_t *o_idx_out = NULL;
    if (filtered) {
        sel.kind = (const uint8_t *)kinds.buf;
        sel.grp = (const uint8_t *)groups.buf;
        sel.guids = (const uint8_t *)guids.buf;
        sel.nguid = guids.len / 16;
        sel.anchor = (uint64_t)anchor;
        sel.lo = lo;
        sel.hi = hi;
        o_idx_out = (int64_t *)idx.buf;
    }
    const uint8_t *d = (const uint8_t *)data.buf;
    const int64_t *st = (const int64_t *)starts.buf, *en = (const int64_t *)ends.buf;
    int64_t *o_off = (int64_t *)offs.buf, *o_size = (int64_t *)sizes.buf, *o_hdr = (int64_t *)hdrs.buf;
    Py_ssize_t nseg = starts.len / 8, cap = offs.len / 8, n = 0, total = 0;

    /* The walk runs without the GIL (the batch's decoding goes on in another thread); it takes the GIL
       back only to note a damage in the list or to raise, and holds it at done. */
    PyThreadState *ts = PyEval_SaveThread();
    for (Py_ssize_t seg = 0; seg < nseg; seg++) {
        int64_t p = st[seg], end = en[seg], base = st[seg];
        free(memo);
        free(path);
        memo = NULL;
        path = NULL;
        if (p < 0 || end < p || end > data.len) {
            PyEval_RestoreThread(ts);
            PyErr_Format(PyExc_ValueError, "segment %zd [%lld, %lld) outside the data", seg,
                         (long long)p, (long long)end);
            goto done;
        }
        while (p + 4 <= end) {
            int64_t size, hdr;
            int bad = record_at(d, p, end, &size, &hdr);
            if (bad) {
                if (memo == NULL) {
                    size_t slots = (size_t)((end - base) / 8 + 1);
                    memo = calloc(slots, sizeof(uint32_t));
                    path = malloc(slots * sizeof(int64_t));
                    if (memo == NULL || path == NULL) {
                        PyEval_RestoreThread(ts);
                        PyErr_NoMemory();
                        goto done;
                    }
                }
                int64_t resumed = resync(d, p, end, memo, path, base);
                int64_t lost = lost_records(d, p, resumed >= 0 ? resumed : end, end);
                PyEval_RestoreThread(ts);
                PyObject *t = Py_BuildValue("(nLLiL)", seg, (long long)p, (long long)resumed, bad,
                                            (long long)lost);
                if (t == NULL || PyList_Append(damages, t) < 0) {
                    Py_XDECREF(t);
                    goto done;
                }
                Py_DECREF(t);
                ts = PyEval_SaveThread();
                if (resumed < 0)
                    break;
                p = resumed;
                continue;
            }
            if (size == 0)
                break;
            total++;
            /* a header the selection reads past a short record stays inside the data */
            if (filtered && !(p + 0x28 <= data.len && wanted_record(&sel, d + p))) {
                p += (size + 7) & ~(int64_t)7;
                continue;
            }
            if (n >= cap) {
                PyEval_RestoreThread(ts);
                PyErr_SetString(PyExc_ValueError, "output arrays too small");
                goto done;
            }
            o_off[n] = p;
            o_size[n] = size;
            o_hdr[n] = hdr;
            if (filtered)
                o_idx_out[n] = total - 1;
            n++;
            p += (size + 7) & ~(int64_t)7;
        }
    }
    PyEval_RestoreThread(ts);
    if (filtered)
        result = Py_BuildValue("(nnnO)", n, total, sel.bad, damages);
    else
        result = Py_BuildValue("(nO)", n, damages);

done:
    free(memo);
    free(path);
    Py_XDECREF(damages);
    if (got >= 10) PyBuffer_Release(&idx);
    if (got >= 9) PyBuffer_Release(&guids);
    if (got >= 8) PyBuffer_Release(&groups);
    if (got >= 7) PyBuffer_Release(&kinds);
    if (got >= 6) PyBuffer_Release(&hdrs);
    if (got >= 5) PyBuffer_Release(&sizes);
    if (got >= 4) PyBuffer_Release(&offs);
    if (got >= 3) PyBuffer_Release(&ends);
    if (got >= 2) PyBuffer_Release(&starts);
    if (got >= 1) PyBuffer_Release(&data);
    return result;
}

static PyObject *
walk(PyObject *self, PyObject *args)
{
    return walk_records(args, 0);
}

static PyObject *
walk_select(PyObject *self, PyObject *args)
{
    return walk_records(args, 1);
}

static PyObject *
select_records(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_offs, *o_kinds, *o_groups, *o_guids, *o_out;
    unsigned long long anchor;
    long long lo, hi;
    if (!PyArg_ParseTuple(args, "OOOOOKLLO", &o_data, &o_offs, &o_kinds, &o_groups, &o_guids, &anchor, &lo,
                          &hi, &o_out))
        return NULL;
    Py_buffer data, offs, kinds, groups, guids, out;
    int got = 0;
    PyObject *result = NULL;
    if (get_buffer(o_data, &data, 0, 0, "data") < 0) goto done;
    got = 1;
    if (get_buffer(o_offs, &offs, 0, 8, "offsets") < 0) goto done;
    got = 2;
    if (get_buffer(o_kinds, &kinds, 0, 0, "kinds") < 0) goto done;
    got = 3;
    if (get_buffer(o_groups, &groups, 0, 0, "groups") < 0) goto done;
    got = 4;
    if (get_buffer(o_guids, &guids, 0, 16, "guids") < 0) goto done;
    got = 5;
    if (get_buffer(o_out, &out, 1, 8, "out") < 0) goto done;
    got = 6;
    if (kinds.len != 256 || groups.len != 256 || out.len < offs.len) {
        PyErr_SetString(PyExc_ValueError, "kinds and groups need 256 entries, out one per offset");
        goto done;
    }
    struct selection sel = {(const uint8_t *)kinds.buf, (const uint8_t *)groups.buf, (const uint8_t *)guids.buf,
                            guids.len / 16, (uint64_t)anchor, lo, hi, 0};
    const uint8_t *d = (const uint8_t *)data.buf;
    const int64_t *o = (const int64_t *)offs.buf;
    int64_t *keep = (int64_t *)out.buf;
    Py_ssize_t n = offs.len / 8, kept = 0, outside = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t p = o[i];
        if (p < 0 || p + 0x28 > data.len) { outside = 1; break; }
        if (wanted_record(&sel, d + p))
            keep[kept++] = i;
    }
    Py_END_ALLOW_THREADS
    if (outside)
        PyErr_SetString(PyExc_ValueError, "record header outside the data");
    else
        result = Py_BuildValue("(nn)", kept, sel.bad);

done:
    if (got >= 6) PyBuffer_Release(&out);
    if (got >= 5) PyBuffer_Release(&guids);
    if (got >= 4) PyBuffer_Release(&groups);
    if (got >= 3) PyBuffer_Release(&kinds);
    if (got >= 2) PyBuffer_Release(&offs);
    if (got >= 1) PyBuffer_Release(&data);
    return result;
}

/* pack(data, offsets, sizes, out, out_offsets) -> end: the records at offsets (sizes bytes each) copied
   one after the other into out, each at an 8-aligned position (out_offsets), the gaps 0xFF. */
static PyObject *
pack(PyObject *self, PyObject *args)
{
    PyObject *o_data, *o_offs, *o_sizes, *o_out, *o_pos;
    if (!PyArg_ParseTuple(args, "OOOOO", &o_data, &o_offs, &o_sizes, &o_out, &o_pos))
        return NULL;
    Py_buffer data, offs, sizes, out, pos;
    int got = 0;
    PyObject *result = NULL;
    if (get_buffer(o_data, &data, 0, 0, "data") < 0) goto done;
    got = 1;
    if (get_buffer(o_offs, &offs, 0, 8, "offsets") < 0) goto done;
    got = 2;
    if (get_buffer(o_sizes, &sizes, 0, 8, "sizes") < 0) goto done;
    got = 3;
    if (get_buffer(o_out, &out, 1, 0, "out") < 0) goto done;
    got = 4;
    if (get_buffer(o_pos, &pos, 1, 8, "out_offsets") < 0) goto done;
    got = 5;
    if (offs.len != sizes.len || offs.len != pos.len) {
        PyErr_SetString(PyExc_ValueError, "array lengths differ");
        goto done;
    }
    const uint8_t *d = (const uint8_t *)data.buf;
    uint8_t *w = (uint8_t *)out.buf;
    const int64_t *o = (const int64_t *)offs.buf, *sz = (const int64_t *)sizes.buf;
    int64_t *at = (int64_t *)pos.buf, q = 0;
    Py_ssize_t n = offs.len / 8, bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t size = sz[i], padded = (size + 7) & ~(int64_t)7;
        if (o[i] < 0 || size < 0 || o[i] + size > data.len || q + padded > out.len) { bad = 1; break; }
        memcpy(w + q, d + o[i], (size_t)size);
        memset(w + q + size, 0xFF, (size_t)(padded - size));
        at[i] = q;
        q += padded;
    }
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_ValueError, "record outside the data or the output");
    else
        result = PyLong_FromLongLong(q);

done:
    if (got >= 5) PyBuffer_Release(&pos);
    if (got >= 4) PyBuffer_Release(&out);
    if (got >= 3) PyBuffer_Release(&sizes);
    if (got >= 2) PyBuffer_Release(&offs);
    if (got >= 1) PyBuffer_Release(&data);
    return result;
}

/* lay_out(out, parts, starts, ends, stop): each part (a buffer, or None for bytes already in place) copied
   to out[starts[i]:ends[i]], the gaps after each part (up to the next start, the last up to stop) 0xFF;
   the copying runs without the interpreter. */
static PyObject *
lay_out(PyObject *self, PyObject *args)
{
    PyObject *o_out, *o_parts, *o_starts, *o_ends;
    Py_ssize_t stop;
    if (!PyArg_ParseTuple(args, "OO!OOn", &o_out, &PyList_Type, &o_parts, &o_starts, &o_ends, &stop))
        return NULL;
    Py_buffer out, starts, ends;
    int got = 0;
    Py_ssize_t n = PyList_GET_SIZE(o_parts), held = 0;
    Py_buffer *views = NULL;
    PyObject *result = NULL;
    if (get_buffer(o_out, &out, 1, 0, "out") < 0) goto done;
    got = 1;
    if (get_buffer(o_starts, &starts, 0, 8, "starts") < 0) goto done;
    got = 2;
    if (get_buffer(o_ends, &ends, 0, 8, "ends") < 0) goto done;
    got = 3;
    const int64_t *st = (const int64_t *)starts.buf, *en = (const int64_t *)ends.buf;
    if (starts.len / 8 != n || ends.len / 8 != n || stop < 0 || stop > out.len) {
        PyErr_SetString(PyExc_ValueError, "lay_out: one start and end per part, stop inside out");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t next = i + 1 < n ? st[i + 1] : stop;
        if (st[i] < 0 || en[i] < st[i] || next < en[i] || next > stop) {
            PyErr_Format(PyExc_ValueError, "lay_out: part %zd [%lld, %lld) out of order", i, (long long)st[i],
                         (long long)en[i]);
            goto done;
        }
    }
    views = calloc((size_t)(n ? n : 1), sizeof(Py_buffer));
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < n; held++) {
        PyObject *part = PyList_GET_ITEM(o_parts, held);
        if (part == Py_None)
            continue;
        if (PyObject_GetBuffer(part, &views[held], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        if (views[held].len != en[held] - st[held]) {
            PyBuffer_Release(&views[held]);
            views[held].obj = NULL;
            PyErr_Format(PyExc_ValueError, "lay_out: part %zd holds %zd bytes, not %lld", held, views[held].len,
                         (long long)(en[held] - st[held]));
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    uint8_t *w = (uint8_t *)out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (views[i].obj != NULL)
            memcpy(w + st[i], views[i].buf, (size_t)views[i].len);
        Py_ssize_t next = i + 1 < n ? st[i + 1] : stop;
        memset(w + en[i], 0xFF, (size_t)(next - en[i]));
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);

done:
    if (views != NULL) {
        for (Py_ssize_t i = 0; i < held; i++)
            if (views[i].obj != NULL)
                PyBuffer_Release(&views[i]);
        free(views);
    }
    if (got >= 3) PyBuffer_Release(&ends);
    if (got >= 2) PyBuffer_Release(&starts);
    if (got >= 1) PyBuffer_Release(&out);
    return result;
}

/* header_tables() -> (header sizes, size-at-offset-4 flags): the walker's tables, 256 bytes each, indexed
   by header type; tests compare them with structs.HEADER_SIZES / SIZE_AT_4 (derived from the structs). */
static PyObject *
header_tables(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return Py_BuildValue("(y#y#)", (const char *)HDR_LEN, (Py_ssize_t)sizeof HDR_LEN,
                         (const char *)SIZE_AT_4, (Py_ssize_t)sizeof SIZE_AT_4);
}

static PyMethodDef methods[] = {
    {"lzxpress_decompress", lzxpress_decompress, METH_VARARGS,
     "lzxpress_decompress(src, out_size, partial=False) -> bytes: MS-XCA plain LZ77 decompression."},
    {"lzxpress_decompress_into", lzxpress_decompress_into, METH_VARARGS,
     "lzxpress_decompress_into(src, out, at, out_size) -> written: decompression into out[at:at + out_size]."},
    {"lzxpress_decompress_many", lzxpress_decompress_many, METH_VARARGS,
     "lzxpress_decompress_many(srcs, out, at, sizes) -> [(i, reason)]: each source into its place, without the GIL."},
    {"walk", walk, METH_VARARGS,
     "walk(data, starts, ends, offsets, sizes, hdrs) -> (count, damages): ETL record walk."},
    {"walk_select", walk_select, METH_VARARGS,
     "walk_select(data, starts, ends, offsets, sizes, hdrs, kinds, groups, guids, raw_anchor, lo, hi, index) -> "
     "(kept, count, bad_times, damages): the record walk keeping only the wanted records."},
    {"select", select_records, METH_VARARGS,
     "select(data, offsets, kinds, groups, guids, raw_anchor, lo, hi, out) -> (kept, bad_times): records of "
     "the wanted providers."},
    {"pack", pack, METH_VARARGS,
     "pack(data, offsets, sizes, out, out_offsets) -> end: records copied 8-aligned into out."},
    {"lay_out", lay_out, METH_VARARGS,
     "lay_out(out, parts, starts, ends, stop) -> None: parts copied into place, the gaps 0xFF."},
    {"header_tables", header_tables, METH_NOARGS,
     "header_tables() -> (bytes, bytes): header size and size-at-4 flag per header type (the walk's tables)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups",
                                    "C accelerators for etwtools' ETL reader.", -1, methods};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_tables();
    return PyModule_Create(&module);
}
