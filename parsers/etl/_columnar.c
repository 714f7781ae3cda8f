/* C accelerator of columnar.py: the byte moves of bulk field decoding (same results as its numpy fallback).
 *
 * fixed(data, pos, width, out): out[i*width : (i+1)*width] = data[pos[i] : pos[i]+width]
 *     (positions outside data give zero bytes: the caller rejects those records).
 * spans(data, start, length, out): the spans [start[i], start[i]+length[i]) concatenated into out.
 * terminators(data, pos, end, unit, out): out[i] = position of the first NUL unit (1 or 2 bytes) at
 *     pos[i] + k*unit below end[i], or len(data) when there is none.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = p[i];
            if (a >= 0 && a + width <= data.len)
                memcpy(o + i * width, d + a, width);
            else
                memset(o + i * width, 0, width);
        }
        Py_END_ALLOW_THREADS
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
    int bad = 0;
    for (Py_ssize_t i = 0; i < n && !bad; i++) {
        if (s[i] < 0 || l[i] < 0 || s[i] + l[i] > data.len || at + l[i] > out.len) {
            bad = 1;
            break;
        }
        memcpy(o + at, d + s[i], l[i]);
        at += l[i];
    }
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
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = p[i], stop = e[i] < none ? e[i] : none, hit = none;
            if (a < 0) { o[i] = none; continue; }
            if (unit == 1) {
                const uint8_t *z = a < stop ? memchr(d + a, 0, stop - a) : NULL;
                if (z) hit = z - d;
            } else {
                for (int64_t q = a; q + 2 <= stop; q += 2)
                    if (d[q] == 0 && d[q + 1] == 0) { hit = q; break; }
            }
            o[i] = hit;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&end);
    PyBuffer_Release(&pos);
    PyBuffer_Release(&data);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fixed", fixed, METH_VARARGS, "fixed(data, pos, width, out): width bytes at each position."},
    {"spans", spans, METH_VARARGS, "spans(data, start, length, out): the spans, concatenated."},
    {"terminators", terminators, METH_VARARGS,
     "terminators(data, pos, end, unit, out): first NUL unit of each string (len(data): none)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_columnar",
                                    "C accelerator of etwtools' columnar event decoding.", -1, methods};

PyMODINIT_FUNC
PyInit__columnar(void)
{
    return PyModule_Create(&module);
}
