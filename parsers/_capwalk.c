/* Sequential record walks of pcap and pcapng files (optional accelerator).
 *
 * Each walk reads record/block headers from a buffer, fills fixed-size native-endian entries into a
 * caller-provided writable buffer, copies the first `window` bytes of every packet (zero-padded past
 * caplen) into a second one (count x window bytes), and returns (count, next_offset, status). The
 * pure-Python walks in etwtools.parsers.pcap and etwtools.parsers.pcapng have the same contract and
 * give identical results.
 *
 * pcap entry (24 bytes):   i64 data offset; u32 ts_sec, ts_frac, caplen, wirelen
 * pcapng entry (64 bytes): i64 block offset, data offset, comment offset (-1: none);
 *                          u32 iface, ts_hi, ts_lo, caplen, wirelen, flags, comment_len, block type,
 *                          has_flags, spare
 * (packet blocks, and systemd Journal Export blocks: frames in Wireshark's numbering, data = their body).
 * The status codes and the checks before each record are those of etwtools.parsers.recordwalk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { ST_END = 0, ST_FULL = 1, ST_TRUNCATED = 2, ST_BAD_CAPLEN = 4, ST_STOP_BLOCK = 5,
       ST_BAD_LENGTH = 6, ST_BAD_TRAILER = 7 };

static inline uint32_t rd32(const unsigned char *p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static inline uint16_t rd16(const unsigned char *p, int big)
{
    return big ? (uint16_t)((p[0] << 8) | p[1]) : (uint16_t)((p[1] << 8) | p[0]);
}

/* Pull the file in ahead of the walk: the next record's address depends on this one's length, so
 * without this every record header is a full memory-latency miss. */
#define PREFETCH_AHEAD 4096
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 0)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_NTA)
#else
#define PREFETCH(p) ((void)(p))
#endif
static inline void prefetch_to(const unsigned char *buf, Py_ssize_t size, Py_ssize_t *pf, Py_ssize_t pos)
{
    Py_ssize_t want = pos + PREFETCH_AHEAD;
    if (want > size)
        want = size;
    if (*pf < pos)
        *pf = pos;
    for (; *pf < want; *pf += 64)
        PREFETCH(buf + *pf);
}

static inline void copy_window(unsigned char *dst, const unsigned char *src, Py_ssize_t caplen,
                               Py_ssize_t window)
{
    Py_ssize_t k = caplen < window ? caplen : window;
    memcpy(dst, src, (size_t)k);
    if (k < window)
        memset(dst + k, 0, (size_t)(window - k));
}

/* The status that ends a walk before the record at pos (recordwalk.walk_stop); -1: read the record. */
static inline int walk_stop(Py_ssize_t pos, Py_ssize_t size, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t header)
{
    if (pos == size)
        return ST_END;
    if (n == cap)
        return ST_FULL;
    if (size - pos < header)
        return ST_TRUNCATED;
    return -1;
}

/* Entries a walk may fill: the room in out, and in the windows when they are copied. */
static inline Py_ssize_t walk_capacity(const Py_buffer *out, const Py_buffer *win, Py_ssize_t window,
                                       size_t entry)
{
    Py_ssize_t cap = out->len / (Py_ssize_t)entry;
    if (window > 0 && win->len / window < cap)
        cap = win->len / window;
    return cap;
}

typedef struct {
    int64_t off;
    uint32_t sec, frac, caplen, wirelen;
} pcap_entry;

typedef struct {
    int64_t block, data, comment;
    uint32_t iface, ts_hi, ts_lo, caplen, wirelen, flags, comment_len, btype, has_flags, spare;
} pcapng_entry;

static PyObject *pcap_walk(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer in, out, win;
    Py_ssize_t pos, window, rh = 16;   /* rh: record header bytes (24 in the "modified" pcap format) */
    int big;
    unsigned long maxcap;
    if (!PyArg_ParseTuple(args, "y*npkw*w*n|n", &in, &pos, &big, &maxcap, &out, &win, &window, &rh))
        return NULL;
    if (rh < 16) rh = 16;
    const unsigned char *buf = (const unsigned char *)in.buf;
    Py_ssize_t size = in.len, n = 0, cap = walk_capacity(&out, &win, window, sizeof(pcap_entry)), pf = pos;
    pcap_entry *e = (pcap_entry *)out.buf;
    unsigned char *w = (unsigned char *)win.buf;
    int status;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        prefetch_to(buf, size, &pf, pos);
        if ((status = walk_stop(pos, size, n, cap, rh)) >= 0)
            break;
        const unsigned char *h = buf + pos;
        uint32_t caplen = rd32(h + 8, big);
        if (caplen > maxcap) { status = ST_BAD_CAPLEN; break; }
        if ((Py_ssize_t)caplen > size - pos - rh) { status = ST_TRUNCATED; break; }
        e[n].off = pos + rh;
        e[n].sec = rd32(h, big);
        e[n].frac = rd32(h + 4, big);
        e[n].caplen = caplen;
        e[n].wirelen = rd32(h + 12, big);
        if (window > 0)
            copy_window(w + n * window, h + rh, (Py_ssize_t)caplen, window);
        n++;
        pos += rh + (Py_ssize_t)caplen;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    PyBuffer_Release(&win);
    return Py_BuildValue("nni", n, pos, status);
}

#define PAD4(x) (((x) + 3u) & ~(Py_ssize_t)3)

static PyObject *pcapng_walk(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer in, out, win;
    Py_ssize_t pos, window;
    int big;
    if (!PyArg_ParseTuple(args, "y*npw*w*n", &in, &pos, &big, &out, &win, &window))
        return NULL;
    const unsigned char *buf = (const unsigned char *)in.buf;
    Py_ssize_t size = in.len, n = 0, cap = walk_capacity(&out, &win, window, sizeof(pcapng_entry)), pf = pos;
    pcapng_entry *e = (pcapng_entry *)out.buf;
    unsigned char *w = (unsigned char *)win.buf;
    int status;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        prefetch_to(buf, size, &pf, pos);
        if ((status = walk_stop(pos, size, n, cap, 12)) >= 0)
            break;
        const unsigned char *h = buf + pos;
        uint32_t btype = rd32(h, big);
        if (btype == 0x0A0D0D0Au || btype == 1u) { status = ST_STOP_BLOCK; break; }
        uint32_t blen = rd32(h + 4, big);
        if (blen < 12 || (blen & 3u)) { status = ST_BAD_LENGTH; break; }
        if ((Py_ssize_t)blen > size - pos) { status = ST_TRUNCATED; break; }
        if (rd32(h + blen - 4, big) != blen) { status = ST_BAD_TRAILER; break; }
        if (btype == 6u || btype == 2u) {          /* enhanced / obsolete packet block */
            if (blen < 32) { status = ST_BAD_CAPLEN; break; }
            uint32_t caplen = rd32(h + 20, big);
            if ((Py_ssize_t)caplen > (Py_ssize_t)blen - 32) { status = ST_BAD_CAPLEN; break; }
            pcapng_entry *r = &e[n];
            r->block = pos;
            r->data = pos + 28;
            r->comment = -1;
            r->iface = btype == 6u ? rd32(h + 8, big) : rd16(h + 8, big);
            r->ts_hi = rd32(h + 12, big);
            r->ts_lo = rd32(h + 16, big);
            r->caplen = caplen;
            r->wirelen = rd32(h + 24, big);
            r->flags = 0;
            r->comment_len = 0;
            r->btype = btype;
            r->has_flags = 0;
            r->spare = 0;
            Py_ssize_t o = 28 + PAD4((Py_ssize_t)caplen), end = (Py_ssize_t)blen - 4;
            while (o + 4 <= end) {
                uint16_t code = rd16(h + o, big), olen = rd16(h + o + 2, big);
                if (code == 0 || o + 4 + olen > end)
                    break;
                if (code == 1 && r->comment < 0) {
                    r->comment = pos + o + 4;
                    r->comment_len = olen;
                } else if (code == 2 && olen == 4 && !r->has_flags) {
                    r->flags = rd32(h + o + 4, big);
                    r->has_flags = 1;
                }
                o += 4 + PAD4((Py_ssize_t)olen);
            }
            if (window > 0)
                copy_window(w + n * window, h + 28, (Py_ssize_t)caplen, window);
            n++;
        } else if (btype == 3u) {                  /* simple packet block */
            if (blen < 16) { status = ST_BAD_CAPLEN; break; }
            pcapng_entry *r = &e[n];
            uint32_t wirelen = rd32(h + 8, big), room = blen - 16;
            memset(r, 0, sizeof *r);
            r->block = pos;
            r->data = pos + 12;
            r->comment = -1;
            r->caplen = wirelen < room ? wirelen : room;
            r->wirelen = wirelen;
            r->btype = 3u;
            if (window > 0)
                copy_window(w + n * window, h + 12, (Py_ssize_t)r->caplen, window);
            n++;
        } else if (btype == 9u) {                  /* systemd Journal Export block: its body */
            pcapng_entry *r = &e[n];
            memset(r, 0, sizeof *r);
            r->block = pos;
            r->data = pos + 8;
            r->comment = -1;
            r->caplen = r->wirelen = blen - 12;
            r->btype = 9u;
            if (window > 0)
                copy_window(w + n * window, h + 8, (Py_ssize_t)r->caplen, window);
            n++;
        }
        pos += blen;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    PyBuffer_Release(&win);
    return Py_BuildValue("nni", n, pos, status);
}

static PyMethodDef methods[] = {
    {"pcap_walk", pcap_walk, METH_VARARGS,
     "pcap_walk(buf, pos, big_endian, maxcap, out, windows, window[, record_header=16]) -> (count, next_pos, status)"},
    {"pcapng_walk", pcapng_walk, METH_VARARGS,
     "pcapng_walk(buf, pos, big_endian, out, windows, window) -> (count, next_pos, status)"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_capwalk",
                                    "pcap/pcapng record walks", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__capwalk(void) { return PyModule_Create(&module); }
