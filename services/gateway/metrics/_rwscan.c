/* Prometheus remote-write WriteRequest scanner, compiled twin of rwscan.py's pure-Python one.
 *
 * The gateway keeps series by their raw label bytes and samples as numpy columns, so this
 * only walks the protobuf: per TimeSeries it gathers the raw Label fields (validated as
 * protobuf, not decoded as text) into one bytes key, and per Sample it appends the owner
 * index, timestamp and value to growing arrays. Every read is checked against the end of
 * the enclosing message, because the body comes from the network.
 *
 * Field keys are recognised only in their one-byte form and anything else is skipped by
 * wire type, exactly as services/gateway/metrics/remote_write.py does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static PyObject *Malformed;

typedef struct {
    const uint8_t *buf;
    const char *error; /* the first malformation met; NULL while the input is sound */
} Reader;

typedef struct {
    int32_t *owner;
    int64_t *stamp;
    double *value;
    size_t len;
    size_t cap;
} Columns;

typedef struct {
    uint8_t *data;
    size_t cap;
} Scratch;

static int fail(Reader *r, const char *reason)
{
    if (r->error == NULL)
        r->error = reason;
    return -1;
}

/* A base-128 varint within [*pos, end). At most ten bytes, as protobuf allows; *wide is
 * set when the tenth byte carries bits past 64 (a length so large is always an overrun). */
static inline int read_varint(Reader *r, size_t *pos, size_t end, uint64_t *out, int *wide)
{
    const uint8_t *buf = r->buf;
    size_t p = *pos;
    uint64_t result = 0;
    unsigned shift = 0;
    for (;;) {
        if (p >= end)
            return fail(r, "a varint runs past the end of its message");
        uint8_t byte = buf[p++];
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            if (wide != NULL)
                *wide = shift == 63 && byte > 1;
            break;
        }
        shift += 7;
        if (shift > 63)
            return fail(r, "a varint is longer than 10 bytes");
    }
    *pos = p;
    *out = result;
    return 0;
}

/* The bounds of a length-delimited field whose length prefix starts at *pos. */
static inline int read_span(Reader *r, size_t *pos, size_t end, size_t *start)
{
    uint64_t length;
    int wide;
    size_t p = *pos;
    if (p < end && r->buf[p] < 0x80) {
        length = r->buf[p++];
        wide = 0;
    } else if (read_varint(r, &p, end, &length, &wide) < 0) {
        return -1;
    }
    if (wide || length > (uint64_t)(end - p))
        return fail(r, "a field claims more bytes than its message holds");
    *start = p;
    *pos = p + (size_t)length;
    return 0;
}

/* Past an unneeded field; `key` has been read and *pos is just after it. */
static int skip_field(Reader *r, size_t *pos, size_t end, uint64_t key)
{
    uint64_t ignored;
    size_t start;
    switch (key & 7) {
    case 0:
        return read_varint(r, pos, end, &ignored, NULL);
    case 1:
        if (end - *pos < 8)
            return fail(r, "a field runs past the end of its message");
        *pos += 8;
        return 0;
    case 2:
        return read_span(r, pos, end, &start);
    case 5:
        if (end - *pos < 4)
            return fail(r, "a field runs past the end of its message");
        *pos += 4;
        return 0;
    default:
        return fail(r, "a field has a wire type protobuf lacks (3, 4, 6 or 7)");
    }
}

/* The key byte at *pos - 1 was not one this reader takes: re-read it as a varint if it is
 * multi-byte, then skip the field. */
static inline int skip_unknown(Reader *r, size_t *pos, size_t end, uint8_t first)
{
    uint64_t key = first;
    if (first >= 0x80) {
        *pos -= 1;
        if (read_varint(r, pos, end, &key, NULL) < 0)
            return -1;
    }
    return skip_field(r, pos, end, key);
}

/* A Label's protobuf structure; its text is decoded (and checked as UTF-8) only by
 * decode_labels, once per new series. */
static int check_label(Reader *r, size_t pos, size_t end)
{
    size_t start;
    while (pos < end) {
        uint8_t key = r->buf[pos++];
        if (key == 0x0A || key == 0x12) {
            if (read_span(r, &pos, end, &start) < 0)
                return -1;
        } else if (skip_unknown(r, &pos, end, key) < 0) {
            return -1;
        }
    }
    return 0;
}

static int read_sample(Reader *r, size_t pos, size_t end, double *value, int64_t *stamp)
{
    const uint8_t *buf = r->buf;
    uint64_t bits;
    *value = 0.0;
    *stamp = 0;
    while (pos < end) {
        uint8_t key = buf[pos++];
        if (key == 0x09) {
            if (end - pos < 8)
                return fail(r, "a sample's value runs past its end");
            bits = (uint64_t)buf[pos] | (uint64_t)buf[pos + 1] << 8 |
                   (uint64_t)buf[pos + 2] << 16 | (uint64_t)buf[pos + 3] << 24 |
                   (uint64_t)buf[pos + 4] << 32 | (uint64_t)buf[pos + 5] << 40 |
                   (uint64_t)buf[pos + 6] << 48 | (uint64_t)buf[pos + 7] << 56;
            memcpy(value, &bits, sizeof bits);
            pos += 8;
        } else if (key == 0x10) {
            if (read_varint(r, &pos, end, &bits, NULL) < 0)
                return -1;
            *stamp = (int64_t)bits; /* two's complement, as protobuf's int64 */
        } else if (skip_unknown(r, &pos, end, key) < 0) {
            return -1;
        }
    }
    return 0;
}

static int grow_columns(Columns *c)
{
    size_t cap = c->cap ? c->cap * 2 : 1024;
    int32_t *owner = realloc(c->owner, cap * sizeof *owner);
    if (owner == NULL)
        return -1;
    c->owner = owner;
    int64_t *stamp = realloc(c->stamp, cap * sizeof *stamp);
    if (stamp == NULL)
        return -1;
    c->stamp = stamp;
    double *value = realloc(c->value, cap * sizeof *value);
    if (value == NULL)
        return -1;
    c->value = value;
    c->cap = cap;
    return 0;
}

/* Appends [start, stop) of the input to the scratch buffer, which is at least as large as
 * the series being read (sized by the caller). */
static inline void gather(Scratch *s, size_t *used, const uint8_t *buf, size_t start, size_t stop)
{
    memcpy(s->data + *used, buf + start, stop - start);
    *used += stop - start;
}

/* One TimeSeries: its key appended to `keys`, its samples to `cols`. Returns -1 with
 * r->error set on malformed input, -2 with a Python exception set otherwise. */
static int read_series(Reader *r, size_t pos, size_t end, int32_t index, PyObject *keys,
                       Columns *cols, Scratch *scratch)
{
    const uint8_t *buf = r->buf;
    /* Labels usually sit side by side: they are kept as one run [run_start, run_stop) and
     * copied to the scratch buffer only when samples or other fields come between them. */
    size_t run_start = pos, run_stop = pos, used = 0;
    int scattered = 0;
    size_t start, field;
    while (pos < end) {
        field = pos;
        uint8_t key = buf[pos++];
        if (key == 0x0A) {
            if (read_span(r, &pos, end, &start) < 0 || check_label(r, start, pos) < 0)
                return -1;
            if (field != run_stop) {
                if (run_stop != run_start) {
                    if (!scattered && scratch->cap < end - run_start) {
                        free(scratch->data);
                        scratch->data = malloc(end - run_start);
                        if (scratch->data == NULL) {
                            scratch->cap = 0;
                            PyErr_NoMemory();
                            return -2;
                        }
                        scratch->cap = end - run_start;
                    }
                    scattered = 1;
                    gather(scratch, &used, buf, run_start, run_stop);
                }
                run_start = field;
            }
            run_stop = pos;
        } else if (key == 0x12) {
            if (read_span(r, &pos, end, &start) < 0)
                return -1;
            if (cols->len == cols->cap && grow_columns(cols) < 0) {
                PyErr_NoMemory();
                return -2;
            }
            if (read_sample(r, start, pos, &cols->value[cols->len], &cols->stamp[cols->len]) < 0)
                return -1;
            cols->owner[cols->len++] = index;
        } else if (skip_unknown(r, &pos, end, key) < 0) {
            return -1;
        }
    }
    PyObject *label_key;
    if (scattered) {
        gather(scratch, &used, buf, run_start, run_stop);
        label_key = PyBytes_FromStringAndSize((const char *)scratch->data, (Py_ssize_t)used);
    } else {
        label_key = PyBytes_FromStringAndSize((const char *)buf + run_start,
                                              (Py_ssize_t)(run_stop - run_start));
    }
    if (label_key == NULL)
        return -2;
    int appended = PyList_Append(keys, label_key);
    Py_DECREF(label_key);
    return appended < 0 ? -2 : 0;
}

static PyObject *column(const void *data, size_t count, size_t width)
{
    return PyByteArray_FromStringAndSize(count ? (const char *)data : NULL,
                                         (Py_ssize_t)(count * width));
}

PyDoc_STRVAR(scan_doc,
             "scan(data) -> (keys, owner, timestamps, values)\n\n"
             "keys: list of bytes, each TimeSeries' raw Label fields; the rest bytearrays of\n"
             "native int32 series indices, int64 milliseconds and float64 values per sample.\n"
             "Raises Malformed (a ValueError) with a short reason.");

static PyObject *scan(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Reader r = {(const uint8_t *)view.buf, NULL};
    size_t pos = 0, end = (size_t)view.len, start;
    Columns cols = {NULL, NULL, NULL, 0, 0};
    Scratch scratch = {NULL, 0};
    PyObject *keys = PyList_New(0);
    PyObject *result = NULL;
    int status = keys == NULL ? -2 : 0;
    int32_t index = 0;
    uint64_t key;
    while (status == 0 && pos < end) {
        if (r.buf[pos] == 0x0A) {
            pos += 1;
            status = read_span(&r, &pos, end, &start);
            if (status == 0 && index == INT32_MAX)
                status = fail(&r, "more time series than an int32 counts");
            if (status == 0)
                status = read_series(&r, start, pos, index++, keys, &cols, &scratch);
        } else {
            status = read_varint(&r, &pos, end, &key, NULL);
            if (status == 0)
                status = skip_field(&r, &pos, end, key);
        }
    }
    if (status == -1) {
        PyErr_SetString(Malformed, r.error);
    } else if (status == 0) {
        PyObject *owner = column(cols.owner, cols.len, sizeof(int32_t));
        PyObject *stamp = owner ? column(cols.stamp, cols.len, sizeof(int64_t)) : NULL;
        PyObject *value = stamp ? column(cols.value, cols.len, sizeof(double)) : NULL;
        if (value != NULL)
            result = PyTuple_Pack(4, keys, owner, stamp, value);
        Py_XDECREF(owner);
        Py_XDECREF(stamp);
        Py_XDECREF(value);
    }
    Py_XDECREF(keys);
    free(cols.owner);
    free(cols.stamp);
    free(cols.value);
    free(scratch.data);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_rwscan",
    "Compiled scanner of Prometheus remote-write WriteRequests (see rwscan.py).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__rwscan(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (Malformed == NULL) {
        Malformed = PyErr_NewExceptionWithDoc("services.gateway.metrics._rwscan.Malformed",
                                              "The body is not a protobuf WriteRequest.",
                                              PyExc_ValueError, NULL);
        if (Malformed == NULL) {
            Py_DECREF(module);
            return NULL;
        }
    }
    if (PyModule_AddObjectRef(module, "Malformed", Malformed) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
