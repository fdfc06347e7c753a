/*
 * _pgencode: DataFrame column buffers to rows of PostgreSQL binary COPY.
 *
 * pgmagic/bulk/encode.py turns each column of a chunk into one of three shapes
 * (numpy values plus a NULL mask, Arrow offsets plus data, or an object
 * ndarray) and Encoder.encode() interleaves them into rows:
 *
 *     int16 field count, then per field int32 length (-1 = NULL) and the
 *     value in the type's binary send format.
 *
 * The stream header and trailer (HEADER, TRAILER) are the caller's to send.
 *
 * Invariants
 * ----------
 * - Every value is encoded exactly as the server's *_send function would
 *   write it (tests compare bytes with COPY ... TO STDOUT (FORMAT binary)),
 *   and only when the server would read the same value from the text the
 *   CSV path writes; a value that cannot be (a str in a numeric column, a
 *   ragged list, an out-of-range number) raises Unencodable, and the load
 *   falls back to CSV, where the server decides.
 * - Object columns are converted first, with the GIL held, into a scratch
 *   buffer per column; the interleaving pass then touches only raw memory
 *   and runs with the GIL released, so the event loop can send the previous
 *   chunk meanwhile.
 * - All sizes are checked before the output is allocated: the output is
 *   written exactly once, to its exact length.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* column kinds EK_*: pgmagic._oids.EncodeKind */
#include "oids.h"

/* how a column is laid out for the interleaving pass */
enum { M_FIXED = 1, M_INTERVAL = 2, M_ARROW = 3, M_SCRATCH = 4 };

#define ARRAY_MAXDIM 6
#define PG_EPOCH_DAYS 10957 /* 2000-01-01 - 1970-01-01 */
#define US_PER_DAY INT64_C(86400000000)
#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000
#define NUMERIC_DSCALE_MAX 0x3FFF
#define NUMERIC_WEIGHT_MAX 32767
/* Older servers' numeric_recv refused more base-10000 digits than this
 * (NUMERIC_MAX_PRECISION + NUMERIC_MAX_RESULT_SCALE); PostgreSQL 18 takes more,
 * but values that long (over 12,000 digits) are rare: they take the CSV path. */
#define NUMERIC_MAX_GROUPS 3000

static PyObject *Unencodable;
static PyObject *str_bytes; /* interned "bytes" */

static inline void wr16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}
static inline void wr32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}
static inline void wr64(unsigned char *p, uint64_t v) {
    wr32(p, (uint32_t)(v >> 32));
    wr32(p + 4, (uint32_t)v);
}

static inline int64_t floordiv64(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

/* ------------------------------------------------------------------------ */
/* scratch: the encoded fields of one object column                         */

typedef struct {
    int32_t *lens;       /* per row: field length, -1 = NULL */
    unsigned char *data; /* the fields, back to back */
    Py_ssize_t len, cap;
} Scratch;

/* Room for n more bytes at data + len; NULL with MemoryError set. */
static unsigned char *room(Scratch *s, Py_ssize_t n) {
    if (n > PY_SSIZE_T_MAX - s->len) {
        PyErr_NoMemory();
        return NULL;
    }
    if (s->len + n > s->cap) {
        Py_ssize_t ncap = s->cap ? s->cap : 4096;
        while (ncap < s->len + n) {
            if (ncap > PY_SSIZE_T_MAX / 2) {
                ncap = s->len + n;
                break;
            }
            ncap *= 2;
        }
        unsigned char *d = PyMem_Realloc(s->data, (size_t)ncap);
        if (d == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        s->data = d;
        s->cap = ncap;
    }
    return s->data + s->len;
}

static int append(Scratch *s, const void *src, Py_ssize_t n) {
    unsigned char *p = room(s, n);
    if (p == NULL) return -1;
    if (n) memcpy(p, src, (size_t)n);
    s->len += n;
    return 0;
}

static int unencodable(const char *msg) {
    PyErr_SetString(Unencodable, msg);
    return -1;
}

/* A Python error raised while converting a value becomes Unencodable (the
 * CSV path will meet the value again and decide); MemoryError and
 * non-Exception errors (KeyboardInterrupt) stay as they are. */
static int as_unencodable(void) {
    if (!PyErr_ExceptionMatches(PyExc_Exception) || PyErr_ExceptionMatches(PyExc_MemoryError))
        return -1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyErr_Format(Unencodable, "%S", value ? value : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* numeric                                                                   */

static int put_numeric_special(Scratch *s, uint16_t sign) {
    unsigned char *p = room(s, 8);
    if (p == NULL) return -1;
    wr16(p, 0);
    wr16(p + 2, 0);
    wr16(p + 4, sign);
    wr16(p + 6, 0);
    s->len += 8;
    return 0;
}

/* (-1)^neg * digits * 10^e10 with display scale dscale, as numeric_send
 * writes it: base-10000 groups, leading and trailing zero groups dropped. */
static int put_numeric(Scratch *s, int neg, const char *digits, Py_ssize_t n, int64_t e10,
                       int64_t dscale) {
    if (dscale > NUMERIC_DSCALE_MAX) return unencodable("numeric scale out of range");
    while (n > 0 && *digits == '0') {
        digits++;
        n--;
    }
    while (n > 0 && digits[n - 1] == '0') {
        n--;
        e10++;
    }
    if (n == 0) {
        unsigned char *p = room(s, 8);
        if (p == NULL) return -1;
        wr16(p, 0);
        wr16(p + 2, 0);
        wr16(p + 4, NUMERIC_POS);
        wr16(p + 6, (uint16_t)dscale);
        s->len += 8;
        return 0;
    }
    /* the first digit stands for 10^top, the last for 10^e10 */
    int64_t top = (int64_t)(n - 1) + e10;
    int64_t weight = floordiv64(top, 4);
    int64_t ngroups = weight - floordiv64(e10, 4) + 1;
    if (weight > NUMERIC_WEIGHT_MAX || ngroups > NUMERIC_MAX_GROUPS)
        return unencodable("numeric value out of range");
    unsigned char *p = room(s, 8 + 2 * (Py_ssize_t)ngroups);
    if (p == NULL) return -1;
    wr16(p, (uint16_t)ngroups);
    wr16(p + 2, (uint16_t)(int16_t)weight);
    wr16(p + 4, neg ? NUMERIC_NEG : NUMERIC_POS);
    wr16(p + 6, (uint16_t)dscale);
    for (int64_t g = 0; g < ngroups; g++) {
        int64_t low = 4 * (weight - g); /* power of ten of the group's last digit */
        int v = 0;
        for (int64_t pw = low + 3; pw >= low; pw--) {
            int64_t i = top - pw;
            v = v * 10 + ((i >= 0 && i < n) ? digits[i] - '0' : 0);
        }
        wr16(p + 8 + 2 * g, (uint16_t)v);
    }
    s->len += 8 + 2 * (Py_ssize_t)ngroups;
    return 0;
}

static int put_numeric_u64(Scratch *s, int neg, uint64_t mag) {
    char buf[24];
    int k = (int)sizeof(buf);
    do {
        buf[--k] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    return put_numeric(s, neg, buf + k, (Py_ssize_t)sizeof(buf) - k, 0, 0);
}

static int put_numeric_i64(Scratch *s, int64_t v) {
    return put_numeric_u64(s, v < 0, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

static int ci_equal(const char *s, Py_ssize_t n, const char *word) {
    Py_ssize_t k = (Py_ssize_t)strlen(word);
    if (n != k) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return 0;
    }
    return 1;
}

/* str(Decimal) or str(int): [sign] digits [. digits] [e [sign] digits], or
 * NaN / Infinity / inf.  Display scale as numeric_in computes it. */
static int put_numeric_text(Scratch *s, const char *t, Py_ssize_t n) {
    Py_ssize_t i = 0;
    int neg = 0;
    if (i < n && (t[i] == '-' || t[i] == '+')) neg = t[i++] == '-';
    if (ci_equal(t + i, n - i, "nan")) /* numeric_in refuses a signed NaN */
        return i ? unencodable("not a number") : put_numeric_special(s, NUMERIC_NAN);
    if (ci_equal(t + i, n - i, "infinity") || ci_equal(t + i, n - i, "inf"))
        return put_numeric_special(s, neg ? NUMERIC_NINF : NUMERIC_PINF);
    char small[64];
    char *digits = small;
    if (n - i > (Py_ssize_t)sizeof(small)) {
        digits = PyMem_Malloc((size_t)(n - i));
        if (digits == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_ssize_t nd = 0, frac = 0;
    int point = 0, rc = -1;
    for (; i < n; i++) {
        char c = t[i];
        if (c >= '0' && c <= '9') {
            digits[nd++] = c;
            frac += point;
        } else if (c == '.' && !point) {
            point = 1;
        } else {
            break;
        }
    }
    int64_t exponent = 0;
    if (nd > 0 && i < n && (t[i] == 'e' || t[i] == 'E')) {
        int eneg = 0, any = 0;
        i++;
        if (i < n && (t[i] == '-' || t[i] == '+')) eneg = t[i++] == '-';
        for (; i < n && t[i] >= '0' && t[i] <= '9'; i++) {
            any = 1;
            exponent = exponent * 10 + (t[i] - '0');
            if (exponent > 1000000000) break;
        }
        if (!any || exponent > 1000000000) {
            unencodable("numeric exponent out of range");
            goto done;
        }
        if (eneg) exponent = -exponent;
    }
    if (nd == 0 || i != n) {
        unencodable("not a number");
        goto done;
    }
    int64_t e10 = exponent - (int64_t)frac;
    rc = put_numeric(s, neg, digits, nd, e10, e10 < 0 ? -e10 : 0);
done:
    if (digits != small) PyMem_Free(digits);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* uuid                                                                      */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The forms uuid_in accepts: optional braces, a hyphen allowed after any
 * group of four hex digits. */
static int parse_uuid(const char *t, Py_ssize_t n, unsigned char out[16]) {
    Py_ssize_t i = 0;
    int braces = n > 0 && t[0] == '{';
    i += braces;
    for (int b = 0; b < 16; b++) {
        if (i + 2 > n) return -1;
        int hi = hexval(t[i]), lo = hexval(t[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[b] = (unsigned char)(hi << 4 | lo);
        i += 2;
        if (i < n && t[i] == '-' && b % 2 == 1 && b < 15) i++;
    }
    if (braces) {
        if (i >= n || t[i] != '}') return -1;
        i++;
    }
    return i == n ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* dates                                                                     */

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* ------------------------------------------------------------------------ */
/* the encoder                                                               */

typedef struct {
    PyObject_HEAD
    int ncols;
    unsigned char *kinds;
    unsigned char *elem_kinds;
    uint32_t *elem_oids;
    PyObject *missing;      /* tuple: objects that mean NULL besides None and NaN */
    PyObject *uuid_type;
    PyObject *decimal_type;
    PyObject *json_dumps;   /* list -> bytes of a compact JSON array */
    PyObject *json_one;     /* value -> bytes, for lists json_dumps refuses */
} EncoderObject;

static int is_missing(EncoderObject *e, PyObject *o) {
    if (o == Py_None) return 1;
    if (PyFloat_Check(o)) return isnan(PyFloat_AS_DOUBLE(o));
    Py_ssize_t n = PyTuple_GET_SIZE(e->missing);
    for (Py_ssize_t i = 0; i < n; i++)
        if (o == PyTuple_GET_ITEM(e->missing, i)) return 1;
    return 0;
}

static int put_utf8(Scratch *s, PyObject *o, int jsonb) {
    if (jsonb && append(s, "\x01", 1) < 0) return -1;
    if (PyUnicode_IS_ASCII(o)) return append(s, PyUnicode_DATA(o), PyUnicode_GET_LENGTH(o));
    /* not PyUnicode_AsUTF8AndSize: it would keep a UTF-8 copy in every string */
    PyObject *b = PyUnicode_AsUTF8String(o);
    if (b == NULL) return as_unencodable();
    int rc = append(s, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return rc;
}

static int int_value(PyObject *o, int64_t lo, int64_t hi, int64_t *out) {
    if (PyBool_Check(o) || !PyIndex_Check(o)) return unencodable("not an integer");
    PyObject *i = PyNumber_Index(o);
    if (i == NULL) return as_unencodable();
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
    Py_DECREF(i);
    if (v == -1 && PyErr_Occurred()) return as_unencodable();
    if (overflow || v < lo || v > hi) return unencodable("integer out of range");
    *out = v;
    return 0;
}

static int put_array(EncoderObject *e, Scratch *s, int elem_kind, uint32_t elem_oid,
                     PyObject *o);

/* Appends o's value of the given kind (not JSON) to s. */
static int put_value(EncoderObject *e, Scratch *s, int kind, int elem_kind, uint32_t elem_oid,
                     PyObject *o) {
    unsigned char *p;
    int64_t v;
    switch (kind) {
    case EK_BOOL:
        if (o != Py_True && o != Py_False) return unencodable("not a bool");
        return append(s, o == Py_True ? "\x01" : "\x00", 1);
    case EK_INT2:
        if (int_value(o, INT16_MIN, INT16_MAX, &v) < 0) return -1;
        if ((p = room(s, 2)) == NULL) return -1;
        wr16(p, (uint16_t)(int16_t)v);
        s->len += 2;
        return 0;
    case EK_INT4:
        if (int_value(o, INT32_MIN, INT32_MAX, &v) < 0) return -1;
        if ((p = room(s, 4)) == NULL) return -1;
        wr32(p, (uint32_t)(int32_t)v);
        s->len += 4;
        return 0;
    case EK_INT8:
        if (int_value(o, INT64_MIN, INT64_MAX, &v) < 0) return -1;
        if ((p = room(s, 8)) == NULL) return -1;
        wr64(p, (uint64_t)v);
        s->len += 8;
        return 0;
    case EK_FLOAT8: {
        double d;
        if (PyFloat_Check(o)) {
            d = PyFloat_AS_DOUBLE(o);
        } else if (PyLong_Check(o) && !PyBool_Check(o)) {
            d = PyLong_AsDouble(o);
            if (d == -1.0 && PyErr_Occurred()) return as_unencodable();
        } else {
            return unencodable("not a float");
        }
        uint64_t bits;
        memcpy(&bits, &d, 8);
        if ((p = room(s, 8)) == NULL) return -1;
        wr64(p, bits);
        s->len += 8;
        return 0;
    }
    case EK_NUMERIC: {
        PyObject *t;
        if (PyObject_TypeCheck(o, (PyTypeObject *)e->decimal_type)) {
            t = PyObject_Str(o);
        } else if (!PyBool_Check(o) && PyIndex_Check(o)) {
            PyObject *i = PyNumber_Index(o);
            if (i == NULL) return as_unencodable();
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
            if (!overflow && !(v == -1 && PyErr_Occurred())) {
                Py_DECREF(i);
                return put_numeric_i64(s, v);
            }
            PyErr_Clear();
            t = PyObject_Str(i);
            Py_DECREF(i);
        } else {
            return unencodable("not a Decimal or an int");
        }
        if (t == NULL) return as_unencodable();
        Py_ssize_t n;
        const char *c = PyUnicode_AsUTF8AndSize(t, &n);
        int rc = c == NULL ? as_unencodable() : put_numeric_text(s, c, n);
        Py_DECREF(t);
        return rc;
    }
    case EK_TEXT:
        if (!PyUnicode_Check(o)) return unencodable("not a str");
        return put_utf8(s, o, 0);
    case EK_BYTEA: {
        if (!PyBytes_Check(o) && !PyByteArray_Check(o) && !PyMemoryView_Check(o))
            return unencodable("not bytes");
        Py_buffer view;
        if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) return as_unencodable();
        int rc = append(s, view.buf, view.len);
        PyBuffer_Release(&view);
        return rc;
    }
    case EK_UUID: {
        if ((p = room(s, 16)) == NULL) return -1;
        if (PyUnicode_Check(o)) {
            Py_ssize_t n;
            const char *c = PyUnicode_AsUTF8AndSize(o, &n);
            if (c == NULL) return as_unencodable();
            if (parse_uuid(c, n, p) < 0) return unencodable("not a UUID");
        } else if (PyObject_TypeCheck(o, (PyTypeObject *)e->uuid_type)) {
            PyObject *b = PyObject_GetAttr(o, str_bytes);
            if (b == NULL) return as_unencodable();
            if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 16) {
                Py_DECREF(b);
                return unencodable("UUID.bytes is not 16 bytes");
            }
            memcpy(p, PyBytes_AS_STRING(b), 16);
            Py_DECREF(b);
        } else {
            return unencodable("not a UUID");
        }
        s->len += 16;
        return 0;
    }
    case EK_DATE: {
        if (!PyDate_Check(o) || PyDateTime_Check(o)) return unencodable("not a date");
        int64_t days = days_from_civil(PyDateTime_GET_YEAR(o), PyDateTime_GET_MONTH(o),
                                       PyDateTime_GET_DAY(o)) - PG_EPOCH_DAYS;
        if ((p = room(s, 4)) == NULL) return -1;
        wr32(p, (uint32_t)(int32_t)days);
        s->len += 4;
        return 0;
    }
    case EK_TIME: {
        if (!PyTime_Check(o) || PyDateTime_TIME_GET_TZINFO(o) != Py_None)
            return unencodable("not a naive time");
        int64_t us = ((int64_t)PyDateTime_TIME_GET_HOUR(o) * 3600 +
                      PyDateTime_TIME_GET_MINUTE(o) * 60 + PyDateTime_TIME_GET_SECOND(o)) *
                         1000000 +
                     PyDateTime_TIME_GET_MICROSECOND(o);
        if ((p = room(s, 8)) == NULL) return -1;
        wr64(p, (uint64_t)us);
        s->len += 8;
        return 0;
    }
    case EK_ARRAY:
        return put_array(e, s, elem_kind, elem_oid, o);
    default:
        PyErr_SetString(PyExc_SystemError, "_pgencode: bad kind");
        return -1;
    }
}

static int is_seq(PyObject *o) { return PyList_Check(o) || PyTuple_Check(o); }

/* Writes the elements at one level of a (rectangular) nested list. */
static int put_elements(EncoderObject *e, Scratch *s, int elem_kind, PyObject *o, int level,
                        int ndim, const Py_ssize_t *dims, int *has_nulls) {
    if (!is_seq(o) || PySequence_Fast_GET_SIZE(o) != dims[level])
        return unencodable("arrays must be rectangular lists");
    for (Py_ssize_t i = 0; i < dims[level]; i++) {
        /* an element's conversion may run Python code (str() of a Decimal
         * subclass) that changes the list: re-read it, and own the item */
        if (i >= PySequence_Fast_GET_SIZE(o)) return unencodable("list changed while encoding");
        PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(o, i));
        int rc;
        if (level + 1 < ndim) {
            rc = put_elements(e, s, elem_kind, item, level + 1, ndim, dims, has_nulls);
        } else if (item == Py_None) {
            unsigned char *p = room(s, 4);
            rc = p == NULL ? -1 : 0;
            if (p != NULL) {
                wr32(p, 0xFFFFFFFFu);
                s->len += 4;
                *has_nulls = 1;
            }
        } else if (is_seq(item)) {
            rc = unencodable("arrays must be rectangular lists");
        } else {
            Py_ssize_t at = s->len;
            rc = room(s, 4) == NULL ? -1 : 0;
            if (rc == 0) {
                s->len += 4;
                rc = put_value(e, s, elem_kind, 0, 0, item);
            }
            if (rc == 0) {
                Py_ssize_t n = s->len - at - 4;
                if (n > INT32_MAX) rc = unencodable("array element too long");
                else wr32(s->data + at, (uint32_t)n);
            }
        }
        Py_DECREF(item);
        if (rc < 0) return -1;
    }
    return 0;
}

/* A list without elements is rectangular if every level above the empty
 * one holds lists of the same length ([[], []], not [[], [1]]). */
static int check_shape(PyObject *o, int level, int ndim, const Py_ssize_t *dims) {
    if (!is_seq(o) || PySequence_Fast_GET_SIZE(o) != dims[level])
        return unencodable("arrays must be rectangular lists");
    if (level + 1 == ndim) return 0;
    for (Py_ssize_t i = 0; i < dims[level]; i++)
        if (check_shape(PySequence_Fast_GET_ITEM(o, i), level + 1, ndim, dims) < 0) return -1;
    return 0;
}

/* array_send: ndim, has-nulls flag, element OID, (size, lower bound 1) per
 * dimension, then the elements; an array without elements has ndim 0. */
static int put_array(EncoderObject *e, Scratch *s, int elem_kind, uint32_t elem_oid,
                     PyObject *o) {
    if (!is_seq(o)) return unencodable("not a list");
    Py_ssize_t dims[ARRAY_MAXDIM];
    int ndim = 0;
    Py_ssize_t nitems = 1;
    PyObject *level = o;
    for (;;) {
        if (ndim == ARRAY_MAXDIM) return unencodable("arrays have at most 6 dimensions");
        Py_ssize_t n = PySequence_Fast_GET_SIZE(level);
        if (n > INT32_MAX) return unencodable("array too long");
        dims[ndim++] = n;
        nitems = n == 0 ? 0 : nitems;
        if (nitems && n > PY_SSIZE_T_MAX / nitems) return unencodable("array too long");
        nitems *= n;
        if (n == 0 || !is_seq(PySequence_Fast_GET_ITEM(level, 0))) break;
        level = PySequence_Fast_GET_ITEM(level, 0);
    }
    if (nitems > INT32_MAX) return unencodable("array too long");
    Py_ssize_t at = s->len;
    unsigned char *p = room(s, 12);
    if (p == NULL) return -1;
    wr32(p, 0);
    wr32(p + 4, 0);
    wr32(p + 8, elem_oid);
    s->len += 12;
    if (nitems == 0) return check_shape(o, 0, ndim, dims);
    if ((p = room(s, 8 * (Py_ssize_t)ndim)) == NULL) return -1;
    for (int d = 0; d < ndim; d++) {
        wr32(p + 8 * d, (uint32_t)dims[d]);
        wr32(p + 8 * d + 4, 1);
    }
    s->len += 8 * (Py_ssize_t)ndim;
    int has_nulls = 0;
    if (put_elements(e, s, elem_kind, o, 0, ndim, dims, &has_nulls) < 0) return -1;
    wr32(s->data + at, (uint32_t)ndim);
    wr32(s->data + at + 4, (uint32_t)has_nulls);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON: one json_dumps call per chunk, split into its top-level elements    */

/* The next element of a compact JSON array starting at *pos: [*start, *end);
 * *pos moves past the separator.  -1 if the text is not what was expected. */
static int json_next(const unsigned char *b, Py_ssize_t n, Py_ssize_t *pos, Py_ssize_t *start,
                     Py_ssize_t *end) {
    Py_ssize_t i = *pos;
    int depth = 0;
    *start = i;
    while (i < n) {
        unsigned char c = b[i];
        if (c == '"') {
            for (i++; i < n && b[i] != '"'; i++)
                if (b[i] == '\\') i++;
            if (i >= n) return -1;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth == 0) break;
            depth--;
        } else if (c == ',' && depth == 0) {
            break;
        }
        i++;
    }
    if (i >= n || i == *start) return -1;
    *end = i;
    *pos = i + 1;
    return 0;
}

static int put_json_column(EncoderObject *e, Scratch *s, PyObject **objs, Py_ssize_t nrows,
                           int jsonb) {
    PyObject *list = PyList_New(nrows);
    if (list == NULL) return -1;
    for (Py_ssize_t r = 0; r < nrows; r++) {
        PyObject *o = objs[r];
        /* str values are JSON text already, and are sent as they are */
        PyList_SET_ITEM(list, r, Py_NewRef(is_missing(e, o) || PyUnicode_Check(o) ? Py_None : o));
    }
    PyObject *dumped = PyObject_CallOneArg(e->json_dumps, list);
    int rc = -1;
    if (dumped == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) goto done;
        PyErr_Clear(); /* a value it cannot serialise: one at a time below */
    } else if (!PyBytes_Check(dumped)) {
        PyErr_SetString(PyExc_TypeError, "json_dumps must return bytes");
        goto done;
    }
    const unsigned char *b = NULL;
    Py_ssize_t n = 0, pos = 1, start = 0, end = 0;
    if (dumped != NULL) {
        b = (const unsigned char *)PyBytes_AS_STRING(dumped);
        n = PyBytes_GET_SIZE(dumped);
        if (n < 2 || b[0] != '[' || b[n - 1] != ']') {
            unencodable("json_dumps did not return a JSON array");
            goto done;
        }
        if (nrows == 0 && n != 2) {
            unencodable("json_dumps returned extra elements");
            goto done;
        }
    }
    for (Py_ssize_t r = 0; r < nrows; r++) {
        /* the list owns the values json_one may see; strings are read in C */
        PyObject *o = objs[r];
        Py_ssize_t at = s->len;
        if (b != NULL && json_next(b, n, &pos, &start, &end) < 0) {
            unencodable("json_dumps returned unexpected text");
            goto done;
        }
        if (is_missing(e, o)) {
            s->lens[r] = -1;
            continue;
        }
        if (PyUnicode_Check(o)) {
            if (put_utf8(s, o, jsonb) < 0) goto done;
        } else if (b != NULL) {
            if (jsonb && append(s, "\x01", 1) < 0) goto done;
            if (append(s, b + start, end - start) < 0) goto done;
        } else {
            PyObject *one = PyObject_CallOneArg(e->json_one, PyList_GET_ITEM(list, r));
            if (one == NULL) {
                as_unencodable();
                goto done;
            }
            if (!PyBytes_Check(one)) {
                Py_DECREF(one);
                PyErr_SetString(PyExc_TypeError, "json_one must return bytes");
                goto done;
            }
            int bad = (jsonb && append(s, "\x01", 1) < 0) ||
                      append(s, PyBytes_AS_STRING(one), PyBytes_GET_SIZE(one)) < 0;
            Py_DECREF(one);
            if (bad) goto done;
        }
        if (s->len - at > INT32_MAX) {
            unencodable("value too long");
            goto done;
        }
        s->lens[r] = (int32_t)(s->len - at);
    }
    if (b != NULL && nrows > 0 && pos != n) {
        unencodable("json_dumps returned extra elements");
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(dumped);
    Py_DECREF(list);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* one column of one encode() call                                           */

typedef struct {
    int mode;
    int width;                   /* M_FIXED: bytes per value */
    const unsigned char *values; /* M_FIXED, M_INTERVAL */
    const unsigned char *mask;   /* M_FIXED, M_INTERVAL: 1 = NULL, or NULL */
    const unsigned char *offsets, *data, *validity; /* M_ARROW */
    int owidth, prefix;
    Py_ssize_t start;
    Scratch scratch;             /* M_SCRATCH */
    Py_ssize_t pos;              /* M_SCRATCH: read position while writing */
    Py_buffer views[4];
    int nviews;
    Py_ssize_t total;            /* bytes the column adds to the output */
} Field;

static void field_clear(Field *f) {
    for (int i = 0; i < f->nviews; i++) PyBuffer_Release(&f->views[i]);
    PyMem_Free(f->scratch.lens);
    PyMem_Free(f->scratch.data);
}

/* Adds a buffer view of o (None allowed when optional: *out = NULL). */
static int get_view(Field *f, PyObject *o, const unsigned char **out, Py_ssize_t need,
                    int optional, const char *what) {
    if (o == Py_None && optional) {
        *out = NULL;
        return 0;
    }
    Py_buffer *v = &f->views[f->nviews];
    if (PyObject_GetBuffer(o, v, PyBUF_SIMPLE) < 0) return -1;
    f->nviews++;
    if (v->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd", what, v->len, need);
        return -1;
    }
    *out = v->buf;
    return 0;
}

static Py_ssize_t count_nulls(const unsigned char *mask, Py_ssize_t n) {
    Py_ssize_t k = 0;
    if (mask != NULL)
        for (Py_ssize_t r = 0; r < n; r++) k += mask[r] != 0;
    return k;
}

static inline uint64_t rd_native(const unsigned char *p, int width) {
    switch (width) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline uint64_t arrow_offset(const Field *f, Py_ssize_t i) {
    if (f->owidth == 4) {
        int32_t v;
        memcpy(&v, f->offsets + 4 * i, 4);
        return (uint64_t)(int64_t)v;
    }
    int64_t v;
    memcpy(&v, f->offsets + 8 * i, 8);
    return (uint64_t)v;
}

static inline int arrow_null(const Field *f, Py_ssize_t r) {
    Py_ssize_t i = f->start + r;
    return f->validity != NULL && !(f->validity[i >> 3] >> (i & 7) & 1);
}

static int prepare(EncoderObject *e, Field *f, int col, PyObject *spec, Py_ssize_t nrows) {
    int kind = e->kinds[col];
    if (!PyTuple_Check(spec)) {
        PyErr_Format(PyExc_TypeError, "column %d: expected a tuple", col);
        return -1;
    }
    Py_ssize_t nspec = PyTuple_GET_SIZE(spec);
    if (kind <= EK_NUMERIC_U64) { /* the numpy kinds come first in EncodeKind */
        static const int widths[EK_NUMERIC_U64 + 1] = {
            [EK_FIXED1] = 1, [EK_FIXED2] = 2, [EK_FIXED4] = 4, [EK_FIXED8] = 8,
            [EK_INTERVAL] = 8, [EK_NUMERIC_I64] = 8, [EK_NUMERIC_U64] = 8,
        };
        f->width = widths[kind];
        if (nspec != 2 ||
            get_view(f, PyTuple_GET_ITEM(spec, 0), &f->values, nrows * f->width, 0, "values") < 0 ||
            get_view(f, PyTuple_GET_ITEM(spec, 1), &f->mask, nrows, 1, "mask") < 0) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "column %d: (values, mask)", col);
            return -1;
        }
        Py_ssize_t nulls = count_nulls(f->mask, nrows);
        if (kind == EK_INTERVAL) {
            f->mode = M_INTERVAL;
            f->total = 4 * nrows + 16 * (nrows - nulls);
            return 0;
        }
        if (kind != EK_NUMERIC_I64 && kind != EK_NUMERIC_U64) {
            f->mode = M_FIXED;
            f->total = 4 * nrows + (Py_ssize_t)f->width * (nrows - nulls);
            return 0;
        }
        f->mode = M_SCRATCH;
        Scratch *s = &f->scratch;
        if ((s->lens = PyMem_Malloc((size_t)(nrows ? nrows : 1) * sizeof(int32_t))) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t r = 0; r < nrows; r++) {
            if (f->mask != NULL && f->mask[r]) {
                s->lens[r] = -1;
                continue;
            }
            Py_ssize_t at = s->len;
            uint64_t v = rd_native(f->values + 8 * r, 8);
            int rc = kind == EK_NUMERIC_I64 ? put_numeric_i64(s, (int64_t)v)
                                           : put_numeric_u64(s, 0, v);
            if (rc < 0) return -1;
            s->lens[r] = (int32_t)(s->len - at);
        }
        f->total = 4 * nrows + s->len;
        return 0;
    }
    if (kind == EK_ARROW_TEXT || kind == EK_ARROW_JSONB) {
        /* (offsets, offset width 4|8, first index, data, validity) */
        int owidth;
        Py_ssize_t start;
        if (nspec != 5 || (owidth = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 1))) == -1 ||
            (start = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 2))) == -1) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError,
                             "column %d: (offsets, width, start, data, validity)", col);
            return -1;
        }
        if ((owidth != 4 && owidth != 8) || start < 0 || start > PY_SSIZE_T_MAX / 16 - nrows) {
            PyErr_Format(PyExc_ValueError, "column %d: bad offsets", col);
            return -1;
        }
        f->mode = M_ARROW;
        f->owidth = owidth;
        f->start = start;
        f->prefix = kind == EK_ARROW_JSONB;
        if (get_view(f, PyTuple_GET_ITEM(spec, 0), &f->offsets, (start + nrows + 1) * owidth, 0,
                     "offsets") < 0 ||
            get_view(f, PyTuple_GET_ITEM(spec, 3), &f->data, 0, 0, "data") < 0 ||
            get_view(f, PyTuple_GET_ITEM(spec, 4), &f->validity, (start + nrows + 7) / 8, 1,
                     "validity") < 0)
            return -1;
        uint64_t limit = (uint64_t)f->views[1].len;
        Py_ssize_t total = 4 * nrows;
        for (Py_ssize_t r = 0; r < nrows; r++) {
            if (arrow_null(f, r)) continue;
            uint64_t a = arrow_offset(f, start + r), b = arrow_offset(f, start + r + 1);
            if (a > b || b > limit) {
                PyErr_Format(PyExc_ValueError, "column %d: offsets out of bounds", col);
                return -1;
            }
            if (b - a + (uint64_t)f->prefix > INT32_MAX) return unencodable("value too long");
            total += (Py_ssize_t)(b - a) + f->prefix;
            if (total > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
        }
        f->total = total;
        return 0;
    }
    /* an object ndarray of nrows items */
    Py_buffer *v = &f->views[0];
    if (nspec != 1 || PyObject_GetBuffer(PyTuple_GET_ITEM(spec, 0), v,
                                         PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "column %d: (objects,)", col);
        return -1;
    }
    f->nviews = 1;
    if (v->format == NULL || strcmp(v->format, "O") != 0 || v->itemsize != sizeof(PyObject *) ||
        v->len != nrows * (Py_ssize_t)sizeof(PyObject *)) {
        PyErr_Format(PyExc_ValueError, "column %d: expected an object array of %zd items", col,
                     nrows);
        return -1;
    }
    PyObject **objs = v->buf;
    f->mode = M_SCRATCH;
    Scratch *s = &f->scratch;
    if ((s->lens = PyMem_Malloc((size_t)(nrows ? nrows : 1) * sizeof(int32_t))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (kind == EK_JSON || kind == EK_JSONB) {
        if (put_json_column(e, s, objs, nrows, kind == EK_JSONB) < 0) return -1;
    } else {
        for (Py_ssize_t r = 0; r < nrows; r++) {
            PyObject *o = Py_NewRef(objs[r]);
            int rc = 0;
            if (is_missing(e, o)) {
                s->lens[r] = -1;
            } else {
                Py_ssize_t at = s->len;
                rc = put_value(e, s, kind, e->elem_kinds[col], e->elem_oids[col], o);
                if (rc == 0 && s->len - at > INT32_MAX) rc = unencodable("value too long");
                if (rc == 0) s->lens[r] = (int32_t)(s->len - at);
            }
            Py_DECREF(o);
            if (rc < 0) return -1;
        }
    }
    f->total = 4 * nrows + s->len;
    return 0;
}

/* The interleaving pass; touches no Python objects (runs without the GIL).
 * Returns the end of what it wrote. */
static unsigned char *write_rows(Field *fields, int ncols, Py_ssize_t nrows, unsigned char *o) {
    for (Py_ssize_t r = 0; r < nrows; r++) {
        wr16(o, (uint16_t)ncols);
        o += 2;
        for (int c = 0; c < ncols; c++) {
            Field *f = &fields[c];
            switch (f->mode) {
            case M_FIXED:
                if (f->mask != NULL && f->mask[r]) {
                    wr32(o, 0xFFFFFFFFu);
                    o += 4;
                    break;
                }
                wr32(o, (uint32_t)f->width);
                o += 4;
                switch (f->width) {
                case 1: *o = f->values[r]; break;
                case 2: wr16(o, (uint16_t)rd_native(f->values + 2 * r, 2)); break;
                case 4: wr32(o, (uint32_t)rd_native(f->values + 4 * r, 4)); break;
                default: wr64(o, rd_native(f->values + 8 * r, 8)); break;
                }
                o += f->width;
                break;
            case M_INTERVAL: {
                if (f->mask != NULL && f->mask[r]) {
                    wr32(o, 0xFFFFFFFFu);
                    o += 4;
                    break;
                }
                /* asyncpg's convention: whole days in the day field, the
                 * non-negative rest in microseconds, no months */
                int64_t us = (int64_t)rd_native(f->values + 8 * r, 8);
                int64_t days = floordiv64(us, US_PER_DAY);
                wr32(o, 16);
                wr64(o + 4, (uint64_t)(us - days * US_PER_DAY));
                wr32(o + 12, (uint32_t)(int32_t)days);
                wr32(o + 16, 0);
                o += 20;
                break;
            }
            case M_ARROW: {
                if (arrow_null(f, r)) {
                    wr32(o, 0xFFFFFFFFu);
                    o += 4;
                    break;
                }
                uint64_t a = arrow_offset(f, f->start + r), b = arrow_offset(f, f->start + r + 1);
                size_t n = (size_t)(b - a);
                wr32(o, (uint32_t)(n + (size_t)f->prefix));
                o += 4;
                if (f->prefix) *o++ = 1;
                memcpy(o, f->data + a, n);
                o += n;
                break;
            }
            default: {
                int32_t n = f->scratch.lens[r];
                wr32(o, (uint32_t)n);
                o += 4;
                if (n > 0) {
                    memcpy(o, f->scratch.data + f->pos, (size_t)n);
                    o += n;
                    f->pos += n;
                }
                break;
            }
            }
        }
    }
    return o;
}

static PyObject *Encoder_encode(EncoderObject *e, PyObject *args) {
    PyObject *columns;
    Py_ssize_t nrows;
    if (!PyArg_ParseTuple(args, "On", &columns, &nrows)) return NULL;
    if (nrows < 0 || nrows > PY_SSIZE_T_MAX / 64) {
        PyErr_SetString(PyExc_ValueError, "nrows out of range");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(columns, "columns must be a sequence");
    if (seq == NULL) return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != e->ncols) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "expected %d columns", e->ncols);
        return NULL;
    }
    PyObject *out = NULL;
    Field *fields = PyMem_Calloc((size_t)(e->ncols ? e->ncols : 1), sizeof(Field));
    if (fields == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t total = 2 * nrows;
    for (int c = 0; c < e->ncols; c++) {
        if (prepare(e, &fields[c], c, PySequence_Fast_GET_ITEM(seq, c), nrows) < 0) {
            if (PyErr_ExceptionMatches(Unencodable)) {
                /* say which column; the row is in the message already or moot */
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_Format(Unencodable, "column %d: %S", c, value ? value : Py_None);
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(tb);
            }
            goto done;
        }
        if (fields[c].total > PY_SSIZE_T_MAX - total) {
            PyErr_NoMemory();
            goto done;
        }
        total += fields[c].total;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) goto done;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out), *end;
    Py_BEGIN_ALLOW_THREADS
    end = write_rows(fields, e->ncols, nrows, o);
    Py_END_ALLOW_THREADS
    if (end != o + total) { /* the sizes above and the writes disagree: a bug */
        Py_CLEAR(out);
        PyErr_SetString(PyExc_SystemError, "_pgencode: output size mismatch");
    }
done:
    for (int c = 0; c < e->ncols; c++) field_clear(&fields[c]);
    PyMem_Free(fields);
    Py_DECREF(seq);
    return out;
}

static void Encoder_dealloc(EncoderObject *e) {
    PyMem_Free(e->kinds);
    PyMem_Free(e->elem_kinds);
    PyMem_Free(e->elem_oids);
    Py_XDECREF(e->missing);
    Py_XDECREF(e->uuid_type);
    Py_XDECREF(e->decimal_type);
    Py_XDECREF(e->json_dumps);
    Py_XDECREF(e->json_one);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int valid_elem_kind(int k) {
    switch (k) {
    case EK_BOOL: case EK_INT2: case EK_INT4: case EK_INT8: case EK_FLOAT8: case EK_NUMERIC:
    case EK_TEXT: case EK_BYTEA: case EK_UUID: case EK_DATE: case EK_TIME:
        return 1;
    default:
        return 0;
    }
}

static PyObject *Encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"kinds", "elem_kinds", "elem_oids", "missing", "uuid_type",
                             "decimal_type", "json_dumps", "json_one", NULL};
    Py_buffer kinds, elem_kinds;
    PyObject *elem_oids, *missing, *uuid_type, *decimal_type, *json_dumps, *json_one;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*O!O!O!O!OO", kwlist, &kinds, &elem_kinds,
                                     &PyTuple_Type, &elem_oids, &PyTuple_Type, &missing,
                                     &PyType_Type, &uuid_type, &PyType_Type, &decimal_type,
                                     &json_dumps, &json_one))
        return NULL;
    EncoderObject *e = NULL;
    Py_ssize_t n = kinds.len;
    if (elem_kinds.len != n || PyTuple_GET_SIZE(elem_oids) != n || n > 1600) {
        PyErr_SetString(PyExc_ValueError,
                        "kinds, elem_kinds and elem_oids differ in length (or > 1600 columns)");
        goto done;
    }
    e = (EncoderObject *)type->tp_alloc(type, 0);
    if (e == NULL) goto done;
    e->ncols = (int)n;
    e->kinds = PyMem_Malloc((size_t)(n ? n : 1));
    e->elem_kinds = PyMem_Malloc((size_t)(n ? n : 1));
    e->elem_oids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(uint32_t));
    if (e->kinds == NULL || e->elem_kinds == NULL || e->elem_oids == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(e->kinds, kinds.buf, (size_t)n);
    memcpy(e->elem_kinds, elem_kinds.buf, (size_t)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        int k = e->kinds[i];
        if (k < EK_FIXED1 || k >= EK_MAX || (k == EK_ARRAY && !valid_elem_kind(e->elem_kinds[i]))) {
            PyErr_Format(PyExc_ValueError, "unsupported kind at column %zd", i);
            goto fail;
        }
        unsigned long oid = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(elem_oids, i));
        if (PyErr_Occurred()) goto fail;
        if (oid > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "element OID out of range");
            goto fail;
        }
        e->elem_oids[i] = (uint32_t)oid;
    }
    e->missing = Py_NewRef(missing);
    e->uuid_type = Py_NewRef(uuid_type);
    e->decimal_type = Py_NewRef(decimal_type);
    e->json_dumps = Py_NewRef(json_dumps);
    e->json_one = Py_NewRef(json_one);
    goto done;
fail:
    Py_CLEAR(e);
done:
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&elem_kinds);
    return (PyObject *)e;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)Encoder_encode, METH_VARARGS,
     "encode(columns, nrows) -> bytes: the rows of a chunk in binary COPY format."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pgmagic._pgencode.Encoder",
    .tp_basicsize = sizeof(EncoderObject),
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Column buffers of DataFrame chunks to binary COPY rows.",
    .tp_methods = Encoder_methods,
    .tp_new = Encoder_new,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_pgencode", "DataFrame columns to PostgreSQL binary COPY.", -1, NULL,
};

/* PyModule_Add (3.13) for 3.11: adds value and drops the reference */
static int add_new(PyObject *m, const char *name, PyObject *value) {
    if (value == NULL) return -1;
    int rc = PyModule_AddObjectRef(m, name, value);
    Py_DECREF(value);
    return rc;
}

PyMODINIT_FUNC PyInit__pgencode(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    if (PyType_Ready(&EncoderType) < 0) return NULL;
    str_bytes = PyUnicode_InternFromString("bytes");
    if (str_bytes == NULL) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    static const char header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    Unencodable = PyErr_NewException("pgmagic._pgencode.Unencodable", PyExc_ValueError, NULL);
    if (Unencodable == NULL ||
        PyModule_AddObjectRef(m, "Unencodable", Unencodable) < 0 ||
        PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        add_new(m, "HEADER", PyBytes_FromStringAndSize(header, 19)) < 0 ||
        add_new(m, "TRAILER", PyBytes_FromStringAndSize("\377\377", 2)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
