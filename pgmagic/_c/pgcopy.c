/*
 * _pgcopy: a streaming parser for PostgreSQL binary COPY output that fills
 * per-column buffers ready to become pandas/pyarrow arrays.
 *
 * The parser runs on the event-loop thread, inside the COPY sink, with the
 * GIL held: it creates Python objects (Decimal, UUID, decoded JSON ...) for
 * object columns as rows arrive, so object creation overlaps with the server
 * producing the next rows.  The kernel socket buffer is the pipeline stage
 * between the two processes.
 *
 * Invariants
 * ----------
 * - Values are decoded exactly as asyncpg 0.32 decodes them (see the comment
 *   on each decoder); where asyncpg would raise, the parser records the first
 *   such error, keeps consuming the stream (so the COPY ends cleanly and the
 *   session's transaction is untouched) and raises it from finish().
 * - Malformed binary COPY data (a protocol error) raises at once.
 * - A row is decoded only once it is complete in the buffer; a partial row is
 *   carried over to the next feed().
 * - Column buffers grow geometrically with realloc (glibc moves large blocks
 *   with mremap, no copy) and are shrunk to size in finish(); finish() hands
 *   ownership to Buffer objects that numpy/pyarrow wrap without copying.
 *
 * Layouts
 * -------
 * The pandas layout (above) is for DataFrames.  Two more serve exports and
 * create no Python object per value, so a batch costs memory copies only:
 * - arrow: buffers laid out as Arrow arrays (validity bitmaps; fixed-width
 *   values, bit-packed booleans, or int64 offsets + bytes; arrays as int32
 *   offsets per dimension over an element column).  json/jsonb stay the
 *   server's text, numeric becomes its text form (Arrow casts it to a
 *   decimal whose scale the data decides), uuid its 16 bytes.
 * - jsonl: one JSON object per row, appended to a single byte buffer.
 * take_batch() hands out the rows decoded so far and starts the next batch
 * with buffers sized like the last one; a partial row stays carried over.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* column kinds CK_* and layouts CL_*: pgmagic._oids.CopyKind and CopyLayout */
#include "oids.h"

/* storage classes */
enum { S_FIXED = 1, S_TEXT = 2, S_OBJECT = 3 };

#define ARRAY_MAXDIM 6

/* 2000-01-01 relative to 1970-01-01 */
#define PG_EPOCH_DAYS 10957
#define PG_EPOCH_US INT64_C(946684800000000)
#define US_PER_DAY INT64_C(86400000000)
/* datetime.datetime.min / max as microseconds since 1970 */
#define DT_MIN_US INT64_C(-62135596800000000)
#define DT_MAX_US INT64_C(253402300799999999)
/* datetime.date.min / max as days since 1970 */
#define DATE_MIN_DAYS INT64_C(-719162)
#define DATE_MAX_DAYS INT64_C(2932896)
#define NAT INT64_MIN

static inline uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}
static inline uint32_t rd32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t rd64(const unsigned char *p) {
    return ((uint64_t)rd32(p) << 32) | (uint64_t)rd32(p + 4);
}

/* ------------------------------------------------------------------------ */
/* Buffer: owns a PyMem_Raw block and exports it through the buffer protocol */

typedef struct {
    PyObject_HEAD
    char *ptr;
    Py_ssize_t len;
} BufferObject;

static void Buffer_dealloc(BufferObject *self) {
    PyMem_RawFree(self->ptr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Buffer_getbuffer(BufferObject *self, Py_buffer *view, int flags) {
    /* a zero-length block may be NULL; export a valid pointer anyway */
    static char empty[1];
    return PyBuffer_FillInfo(view, (PyObject *)self,
                             self->ptr ? self->ptr : empty, self->len, 0,
                             flags);
}

static Py_ssize_t Buffer_length(BufferObject *self) { return self->len; }

static PyBufferProcs Buffer_as_buffer = {
    (getbufferproc)Buffer_getbuffer,
    NULL,
};

static PySequenceMethods Buffer_as_sequence = {
    .sq_length = (lenfunc)Buffer_length,
};

static PyTypeObject BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pgmagic._pgcopy.Buffer",
    .tp_basicsize = sizeof(BufferObject),
    .tp_dealloc = (destructor)Buffer_dealloc,
    .tp_as_buffer = &Buffer_as_buffer,
    .tp_as_sequence = &Buffer_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A block of memory owned by the parser's output.",
};

/* Takes ownership of ptr (shrunk to len). */
static PyObject *buffer_adopt(char **pptr, Py_ssize_t len) {
    BufferObject *b = PyObject_New(BufferObject, &BufferType);
    if (b == NULL) return NULL;
    char *p = *pptr;
    if (len > 0) {
        char *q = PyMem_RawRealloc(p, (size_t)len);
        if (q != NULL) p = q;
    } else {
        PyMem_RawFree(p);
        p = NULL;
    }
    *pptr = NULL;
    b->ptr = p;
    b->len = len;
    return (PyObject *)b;
}

/* ------------------------------------------------------------------------ */
/* columns                                                                   */

typedef struct {
    int kind;
    int elem_kind;      /* CK_ARRAY only */
    uint32_t elem_oid;  /* CK_ARRAY only: expected element OID */
    int storage;
    int width;          /* bytes per row for S_FIXED */
    char *values;       /* S_FIXED: width * cap; S_TEXT: int64 offsets (cap+1) */
    uint8_t *mask;      /* S_FIXED nullable ints/bool: 1 = NULL */
    uint8_t *validity;  /* S_TEXT: arrow validity bitmap, 1 = valid */
    char *data;         /* S_TEXT: utf-8 bytes */
    Py_ssize_t data_len, data_cap;
    Py_ssize_t null_count;
    PyObject **objs;    /* S_OBJECT */
    /* What the pandas value loses, for a display that shows the server's
     * value (zero for NULL rows): CK_INTERVAL the 16 wire bytes (micros,
     * days, months: a month is not 30 days), CK_JSON/JSONB 1 where the
     * value is JSON null (which pandas holds as None, like SQL NULL) */
    uint8_t *aux;
    int aux_width;
    /* CK_JSON/CK_JSONB: values waiting to be decoded together as one JSON
     * array "[v1,v2,...]" (one orjson call per batch instead of per value);
     * their objs[] slots stay NULL until the batch is flushed */
    char *jbuf;
    Py_ssize_t jlen, jcap;
    Py_ssize_t *jpend;  /* per pending value: row, offset in jbuf, length */
    int jcount;
} Column;

#define JSON_BATCH 512
#define JSON_BATCH_BYTES (256 * 1024)

/* Arrow layout widths besides a byte count */
#define W_VAR 0      /* int64 offsets + bytes */
#define W_BITS (-1)  /* booleans, one bit per value */
#define W_LIST (-2)  /* arrays: int32 offsets per dimension + an element column */
#define W_NONE (-3)  /* void: a length and nothing else */

typedef struct ArrowCol {
    int kind;
    int width;
    uint32_t elem_oid;      /* CK_ARRAY: expected element OID */
    Py_ssize_t len, cap;
    Py_ssize_t hint, data_hint; /* the last batch's sizes, to size the next */
    Py_ssize_t null_count;
    uint8_t *validity;      /* 1 = valid */
    char *values;           /* fixed values, bits, or int64 offsets (cap+1) */
    char *data;
    Py_ssize_t data_len, data_cap;
    /* CK_NUMERIC: the widest finite value of the batch, for the decimal type */
    int max_scale, max_int_digits;
    /* CK_ARRAY: dimensions, fixed by the first non-empty value (0: none yet);
     * level d holds level_len[d] lists as level_len[d]+1 offsets, level 0
     * one per row */
    int ndims;
    int32_t *levels[ARRAY_MAXDIM];
    Py_ssize_t level_len[ARRAY_MAXDIM], level_cap[ARRAY_MAXDIM];
    struct ArrowCol *child;
} ArrowCol;

#define DEC_CACHE_SIZE 1024
#define DEC_CACHE_KEY 24

typedef struct {
    PyObject *value;
    uint8_t len;
    unsigned char key[DEC_CACHE_KEY];
} DecCacheEntry;

typedef struct {
    PyObject_HEAD
    int ncols;
    Column *cols;
    Py_ssize_t nrows, cap;
    int state;          /* 0 = expect header, 1 = rows, 2 = trailer seen */
    char *carry;
    Py_ssize_t carry_len, carry_cap;
    /* first value error, raised by finish() */
    PyObject *err_type, *err_value, *err_tb;
    /* helpers */
    PyObject *decimal_type;
    PyObject *uuid_type;
    PyObject *json_loads;     /* fast decoder (orjson.loads) or NULL */
    PyObject *json_fallback;  /* json.loads */
    PyObject *dec_nan, *dec_pinf, *dec_ninf;
    PyObject *tz_cache;       /* dict: offset minutes -> timezone */
    PyObject *empty_tuple;
    DecCacheEntry *dec_cache; /* DEC_CACHE_SIZE entries, or NULL */
    int dec_fast;             /* _decimal layout verified: build Decimals in place */
    struct JstrCacheEntry *jstr_cache; /* JSTR_CACHE_SIZE entries, or NULL */
    int uuid_fast;            /* pgproto UUID layout verified */
    int finished;
    int broken;               /* protocol error seen: the rest is dropped */
    int layout;               /* CL_PANDAS, CL_ARROW or CL_JSONL */
    ArrowCol *acols;          /* CL_ARROW: one per column */
    char *out;                /* CL_JSONL: the batch's lines */
    Py_ssize_t out_len, out_cap, out_hint;
    char *keys;               /* CL_JSONL: '{"name":' or ',"name":' per column */
    Py_ssize_t *key_offs;     /* CL_JSONL: ncols + 1 offsets into keys */
    /* CL_JSONL: the session's time zone for timestamptz (zone_n 0: UTC, 'Z').
     * zone_off[i] seconds east of UTC hold from zone_at[i] (microseconds
     * since 1970; zone_at[0] is INT64_MIN) on; from zone_end on, the rules
     * repeat every 400 Gregorian years. */
    int64_t *zone_at;
    int32_t *zone_off;
    Py_ssize_t zone_n, zone_last;  /* zone_last: the entry found last time */
    int64_t zone_end;
} ParserObject;

/* pgproto.UUID stores its 16 bytes right after the object header; verified
 * at runtime by probe_uuid() before the fast constructor is used. */
#define UUID_DATA_OFFSET (sizeof(PyObject))

static int storage_of(int kind, int *width) {
    switch (kind) {
    case CK_BOOL: *width = 1; return S_FIXED;
    case CK_INT2: *width = 2; return S_FIXED;
    case CK_INT4: *width = 4; return S_FIXED;
    case CK_INT8: case CK_OID: *width = 8; return S_FIXED;
    case CK_FLOAT4: *width = 4; return S_FIXED;
    case CK_FLOAT8: case CK_NUMERIC_FLOAT: *width = 8; return S_FIXED;
    case CK_TIMESTAMP: case CK_TIMESTAMPTZ: case CK_DATE: case CK_INTERVAL:
        *width = 8; return S_FIXED;
    case CK_TEXT: *width = 8; return S_TEXT;
    case CK_NUMERIC: case CK_TIME: case CK_TIMETZ: case CK_UUID: case CK_BYTEA:
    case CK_JSON: case CK_JSONB: case CK_ARRAY:
        *width = sizeof(PyObject *); return S_OBJECT;
    default: return 0;
    }
}

static int aux_width_of(int kind) {
    return kind == CK_INTERVAL ? 16 : (kind == CK_JSON || kind == CK_JSONB) ? 1 : 0;
}

static int has_mask(int kind) {
    return kind == CK_BOOL || kind == CK_INT2 || kind == CK_INT4 ||
           kind == CK_INT8 || kind == CK_OID;
}

/* ------------------------------------------------------------------------ */
/* error helpers                                                             */

static PyObject *ProtocolError;  /* malformed stream */

static int protocol_error(const char *msg) {
    PyErr_SetString(ProtocolError, msg);
    return -1;
}

/* Record the pending Python exception as the parser's deferred error (the
 * first one wins) and clear it. */
static void defer_error(ParserObject *p) {
    if (p->err_type == NULL) {
        PyErr_Fetch(&p->err_type, &p->err_value, &p->err_tb);
    } else {
        PyErr_Clear();
    }
}

static void defer_new_error(ParserObject *p, PyObject *type, const char *msg) {
    if (p->err_type == NULL) {
        PyErr_SetString(type, msg);
        defer_error(p);
    }
}

/* ------------------------------------------------------------------------ */
/* growth                                                                    */

static int grow_rows(ParserObject *p) {
    Py_ssize_t ncap = p->cap ? p->cap * 2 : 1024;
    for (int i = 0; i < p->ncols; i++) {
        Column *c = &p->cols[i];
        size_t vsize = c->storage == S_TEXT ? (size_t)(ncap + 1) * 8
                                            : (size_t)ncap * (size_t)c->width;
        if (c->storage == S_OBJECT) {
            PyObject **o = PyMem_RawRealloc(c->objs, (size_t)ncap * sizeof(PyObject *));
            if (o == NULL) goto nomem;
            c->objs = o;
        } else {
            char *v = PyMem_RawRealloc(c->values, vsize);
            if (v == NULL) goto nomem;
            if (c->storage == S_TEXT && p->cap == 0) ((int64_t *)v)[0] = 0;
            c->values = v;
        }
        if (c->aux_width) {
            size_t w = (size_t)c->aux_width;
            uint8_t *a = PyMem_RawRealloc(c->aux, (size_t)ncap * w);
            if (a == NULL) goto nomem;
            memset(a + (size_t)p->cap * w, 0, (size_t)(ncap - p->cap) * w);
            c->aux = a;
        }
        if (c->storage == S_FIXED && has_mask(c->kind)) {
            uint8_t *m = PyMem_RawRealloc(c->mask, (size_t)ncap);
            if (m == NULL) goto nomem;
            c->mask = m;
        }
        if (c->storage == S_TEXT) {
            size_t nbytes = (size_t)(ncap + 7) / 8;
            size_t obytes = (size_t)(p->cap + 7) / 8;
            uint8_t *m = PyMem_RawRealloc(c->validity, nbytes);
            if (m == NULL) goto nomem;
            memset(m + obytes, 0, nbytes - obytes);
            c->validity = m;
        }
    }
    p->cap = ncap;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

static int text_reserve(Column *c, Py_ssize_t extra) {
    if (c->data_len + extra <= c->data_cap) return 0;
    Py_ssize_t ncap = c->data_cap ? c->data_cap : 65536;
    while (ncap < c->data_len + extra) ncap = ncap + ncap / 2 + 1;
    char *d = PyMem_RawRealloc(c->data, (size_t)ncap);
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->data = d;
    c->data_cap = ncap;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* UTF-8 validation (strict, as Python's decoder: no surrogates, no overlong) */

static int utf8_valid(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        /* fast path: 8 ASCII bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080)) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0;  /* overlong */
            if (c == 0xED && c1 > 0x9F) return 0;  /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && c1 < 0x90) return 0;
            if (c == 0xF4 && c1 > 0x8F) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* object decoders: each returns a new reference, or NULL with an exception  */

/* asyncpg text_decode: strict UTF-8 */
static PyObject *make_str(const unsigned char *b, Py_ssize_t n) {
    return PyUnicode_DecodeUTF8((const char *)b, n, NULL);
}

/* What numeric_to_str wrote: "[-]0.<digits>[E<exponent>]" */
typedef struct {
    int neg;
    const char *digits;
    Py_ssize_t ndigits;
    int64_t exponent;
} NumericParts;

/* numeric -> the exact string asyncpg's numeric_decode_binary_ex builds
 * (trail_fract_zero = 0).  Returns the length written to out (which must
 * hold 4 * ndigits + |dscale| + 32 bytes), or -1 for a malformed value.
 * *special is set to 1 (NaN), 2 (+Inf), 3 (-Inf), 4 (zero digits), else 0;
 * when it is 0, *parts (if not NULL) tells where the pieces of the string are. */
static Py_ssize_t numeric_to_str(const unsigned char *b, Py_ssize_t n, char *out,
                                 int *special, unsigned *dscale_out, NumericParts *parts) {
    if (n < 8) return -1;
    uint16_t ndigits = rd16(b);
    int16_t weight = (int16_t)rd16(b + 2);
    uint16_t sign = rd16(b + 4);
    uint16_t dscale = rd16(b + 6);
    *special = 0;
    *dscale_out = dscale;
    if (sign == 0xC000) { *special = 1; return 0; }
    if (sign == 0xD000) { *special = 2; return 0; }
    if (sign == 0xF000) { *special = 3; return 0; }
    if (sign != 0x0000 && sign != 0x4000) return -1;
    if (n != 8 + 2 * (Py_ssize_t)ndigits) return -1;
    if (ndigits == 0) { *special = 4; return 0; }
    const unsigned char *d = b + 8;
    int pgdigit0 = (int16_t)rd16(d);
    int front_padding = 0;
    if (weight >= 0) {
        if (pgdigit0 < 10) front_padding = 3;
        else if (pgdigit0 < 100) front_padding = 2;
        else if (pgdigit0 < 1000) front_padding = 1;
    }
    Py_ssize_t num_fract_digits = ((Py_ssize_t)ndigits - weight - 1) * 4;
    Py_ssize_t trailing_adj = (Py_ssize_t)dscale - num_fract_digits;
    int64_t exponent = ((int64_t)weight + 1) * 4 - front_padding;
    char *q = out;
    if (sign == 0x4000) *q++ = '-';
    *q++ = '0';
    *q++ = '.';
    for (int i = 0; i < ndigits; i++) {
        int v = (int16_t)rd16(d + 2 * i);
        if (v < 0 || v > 9999) return -1;
        int d0 = v / 1000, d1 = (v / 100) % 10, d2 = (v / 10) % 10, d3 = v % 10;
        if (i == 0 && weight >= 0) {
            /* _unpack_digit_stripping_lzeros */
            int sig = d0 > 0;
            if (sig) *q++ = (char)('0' + d0);
            sig |= d1 > 0;
            if (sig) *q++ = (char)('0' + d1);
            sig |= d2 > 0;
            if (sig) *q++ = (char)('0' + d2);
            *q++ = (char)('0' + d3);
        } else {
            *q++ = (char)('0' + d0);
            *q++ = (char)('0' + d1);
            *q++ = (char)('0' + d2);
            *q++ = (char)('0' + d3);
        }
    }
    if (dscale) {
        for (Py_ssize_t i = 0; i < trailing_adj; i++) q[i] = '0';
        q += trailing_adj;
    }
    if (parts != NULL) {
        parts->neg = sign == 0x4000;
        parts->digits = out + (parts->neg ? 3 : 2);
        parts->ndigits = q - parts->digits;
        parts->exponent = exponent;
    }
    if (exponent != 0) {
        *q++ = 'E';
        *q++ = exponent < 0 ? '-' : '+';
        uint64_t e = (uint64_t)(exponent < 0 ? -exponent : exponent);
        char tmp[24];
        int k = 0;
        while (e) { tmp[k++] = (char)('0' + e % 10); e /= 10; }
        while (k) *q++ = tmp[--k];
    }
    *q = '\0';
    return q - out;
}

/* upper bound of numeric_to_str's output, including trailing zero padding */
static Py_ssize_t numeric_str_size(const unsigned char *b, Py_ssize_t n) {
    if (n < 8) return 64;
    int16_t weight = (int16_t)rd16(b + 2);
    return 4 * (Py_ssize_t)rd16(b) + (Py_ssize_t)rd16(b + 6) +
           4 * (Py_ssize_t)(weight > 0 ? weight : 0) + 64;
}

static PyObject *make_decimal_str(ParserObject *p, const char *s, Py_ssize_t len) {
    PyObject *str = PyUnicode_New(len, 127);
    if (str == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(str), s, (size_t)len);
    PyObject *r = PyObject_CallOneArg(p->decimal_type, str);
    Py_DECREF(str);
    return r;
}

/* A Decimal object of CPython's _decimal: libmpdec's mpd_t (64-bit build)
 * with room for four words of coefficient inside the object.  Not a public
 * API: probe_decimal() checks it against Decimals the type builds itself
 * before decimal_from_digits() writes one.  Parsing the string costs three
 * quarters of Decimal(str); writing the fields skips it. */
#define DEC_WORD_DIGITS 19
#define DEC_INLINE_WORDS 4
#define DEC_FLAG_NEG 1
#define DEC_FLAGS_STATIC 48  /* MPD_STATIC | MPD_STATIC_DATA */

typedef struct {
    PyObject_HEAD
    Py_hash_t hash;
    uint8_t flags;
    int64_t exp;
    int64_t digits;  /* of the coefficient; 1 for zero */
    int64_t len;     /* words in use, the most significant one not zero */
    int64_t alloc;
    uint64_t *data;  /* least significant word first, base 10**19 */
    uint64_t inline_data[DEC_INLINE_WORDS];
} DecObject;

/* The Decimal (-1)**neg * int(digits) * 10**exp, built in place; NULL
 * without an exception when it has more digits than the object holds. */
static PyObject *decimal_from_digits(PyTypeObject *t, int neg, const char *d,
                                     Py_ssize_t k, int64_t exp) {
    while (k > 1 && *d == '0') { d++; k--; }
    if (k > DEC_INLINE_WORDS * DEC_WORD_DIGITS) return NULL;
    DecObject *o = (DecObject *)t->tp_alloc(t, 0);
    if (o == NULL) return NULL;
    o->hash = -1;
    o->flags = DEC_FLAGS_STATIC | (neg ? DEC_FLAG_NEG : 0);
    o->exp = exp;
    o->digits = k;
    o->alloc = DEC_INLINE_WORDS;
    o->data = o->inline_data;
    int64_t len = 0;
    for (Py_ssize_t end = k; end > 0; end -= DEC_WORD_DIGITS) {
        uint64_t w = 0;
        for (Py_ssize_t i = end > DEC_WORD_DIGITS ? end - DEC_WORD_DIGITS : 0; i < end; i++)
            w = w * 10 + (uint64_t)(d[i] - '0');
        o->inline_data[len++] = w;
    }
    o->len = len;
    return (PyObject *)o;
}

/* Whether decimal_from_digits() builds, for each case, an object identical
 * field by field to what Decimal(str) builds, and equal to it in value,
 * string and hash.  Returns 1 (yes), 0 (no: use Decimal(str)) or -1. */
static int probe_decimal(PyObject *type) {
    static const struct { int neg; const char *digits; int64_t exp; const char *text; } cases[] = {
        {0, "12345", -2, "123.45"},
        {1, "0", -3, "-0.000"},
        {0, "0", 0, "0"},
        {0, "1", 20, "1E+20"},
        {1, "00042", -4, "-0.0042"},
        {0, "9999999999999999999", 0, "9999999999999999999"},
        {0, "10000000000000000000", -1, "1000000000000000000.0"},
        {1, "1234567890123456789012345678901234567890123456789012345678901234567890123456", -40,
         "-123456789012345678901234567890123456.7890123456789012345678901234567890123456"},
    };
    if (!PyType_Check(type)) return 0;
    PyTypeObject *t = (PyTypeObject *)type;
    if (t->tp_basicsize != (Py_ssize_t)sizeof(DecObject) || PyType_IS_GC(t) ||
        t->tp_alloc == NULL)
        return 0;
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof(cases) / sizeof(cases[0]); i++) {
        PyObject *ref = PyObject_CallFunction(type, "s", cases[i].text);
        if (ref == NULL) { PyErr_Clear(); return 0; }
        PyObject *fast = decimal_from_digits(t, cases[i].neg, cases[i].digits,
                                             (Py_ssize_t)strlen(cases[i].digits), cases[i].exp);
        if (fast == NULL) {
            Py_DECREF(ref);
            return PyErr_Occurred() ? -1 : 0;
        }
        DecObject *a = (DecObject *)ref, *b = (DecObject *)fast;
        ok = Py_TYPE(ref) == t && a->data == a->inline_data && a->flags == b->flags &&
             a->exp == b->exp && a->digits == b->digits && a->len == b->len &&
             a->alloc == b->alloc && a->len >= 1 && a->len <= DEC_INLINE_WORDS &&
             memcmp(a->inline_data, b->inline_data, (size_t)a->len * 8) == 0;
        if (ok) {
            PyObject *sa = PyObject_Str(ref), *sb = PyObject_Str(fast);
            ok = sa != NULL && sb != NULL && PyUnicode_Compare(sa, sb) == 0 &&
                 PyUnicode_CompareWithASCIIString(sa, cases[i].text) == 0 &&
                 PyObject_RichCompareBool(ref, fast, Py_EQ) == 1 &&
                 PyObject_Hash(ref) == PyObject_Hash(fast);
            Py_XDECREF(sa);
            Py_XDECREF(sb);
            PyErr_Clear();
        }
        Py_DECREF(ref);
        Py_DECREF(fast);
    }
    return ok;
}

/* The Decimal of a finite numeric whose coefficient has at most 19 digits,
 * straight from the base-10000 digits: asyncpg's string is int(digits) *
 * 10**-dscale once its trailing zeros are adjusted to dscale (or, for dscale
 * 0, the digits times 10**(4 * (weight + 1 - ndigits))).  NULL without an
 * exception for any other value. */
static PyObject *numeric_word(PyTypeObject *t, const unsigned char *b, Py_ssize_t n) {
    static const uint64_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                     100000000, 1000000000, 10000000000, 100000000000,
                                     1000000000000, 10000000000000, 100000000000000,
                                     1000000000000000, 10000000000000000,
                                     100000000000000000, 1000000000000000000,
                                     UINT64_C(10000000000000000000)};
    if (n < 8) return NULL;
    int ndigits = rd16(b);
    int weight = (int16_t)rd16(b + 2);
    uint16_t sign = rd16(b + 4);
    int dscale = rd16(b + 6);
    if ((sign != 0x0000 && sign != 0x4000) || n != 8 + 2 * (Py_ssize_t)ndigits) return NULL;
    int adj = dscale ? dscale - (ndigits - weight - 1) * 4 : 0;
    if (ndigits == 0 || adj < -3 || ndigits * 4 + (adj > 0 ? adj : 0) > 19) return NULL;
    uint64_t c = 0;
    for (int i = 0; i < ndigits; i++) {
        int v = (int16_t)rd16(b + 8 + 2 * i);
        if (v < 0 || v > 9999) return NULL;
        c = c * 10000 + (uint64_t)v;
    }
    c = adj >= 0 ? c * pow10[adj] : c / pow10[-adj];
    DecObject *o = (DecObject *)t->tp_alloc(t, 0);
    if (o == NULL) return NULL;
    int digits = 1;
    while (digits < 20 && c >= pow10[digits]) digits++;
    o->hash = -1;
    o->flags = DEC_FLAGS_STATIC | (sign == 0x4000 ? DEC_FLAG_NEG : 0);
    o->exp = dscale ? -(int64_t)dscale : 4 * ((int64_t)weight + 1 - ndigits);
    o->digits = digits;
    o->len = 1;
    o->alloc = DEC_INLINE_WORDS;
    o->data = o->inline_data;
    o->inline_data[0] = c;
    return (PyObject *)o;
}

static PyObject *make_numeric_uncached(ParserObject *p, const unsigned char *b, Py_ssize_t n);

/* Decimals are immutable, so equal values may share one instance: a small
 * direct-mapped cache keyed by the raw bytes pays off on the low-cardinality
 * columns (prices, quantities) common in practice and costs a hash and a
 * compare on a miss. */
static PyObject *make_numeric(ParserObject *p, const unsigned char *b, Py_ssize_t n) {
    if (n > DEC_CACHE_KEY || p->dec_cache == NULL) return make_numeric_uncached(p, b, n);
    uint64_t h = (uint64_t)n;
    for (Py_ssize_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, b + i, (size_t)(n - i < 8 ? n - i : 8));
        h = (h ^ w) * UINT64_C(0x9E3779B97F4A7C15);
        h ^= h >> 32;
    }
    DecCacheEntry *e = &p->dec_cache[(h ^ (h >> 29)) & (DEC_CACHE_SIZE - 1)];
    if (e->value != NULL && e->len == n && memcmp(e->key, b, (size_t)n) == 0)
        return Py_NewRef(e->value);
    PyObject *r = make_numeric_uncached(p, b, n);
    if (r != NULL) {
        Py_XSETREF(e->value, Py_NewRef(r));
        e->len = (uint8_t)n;
        memcpy(e->key, b, (size_t)n);
    }
    return r;
}

static PyObject *make_numeric_uncached(ParserObject *p, const unsigned char *b, Py_ssize_t n) {
    if (p->dec_fast) {
        PyObject *r = numeric_word((PyTypeObject *)p->decimal_type, b, n);
        if (r != NULL || PyErr_Occurred()) return r;
    }
    char small[256];
    char *buf = small;
    Py_ssize_t need = numeric_str_size(b, n);
    if (need > (Py_ssize_t)sizeof(small)) {
        buf = PyMem_Malloc((size_t)need);
        if (buf == NULL) return PyErr_NoMemory();
    }
    int special;
    unsigned dscale;
    NumericParts parts;
    PyObject *r = NULL;
    Py_ssize_t len = numeric_to_str(b, n, buf, &special, &dscale, &parts);
    if (len < 0) {
        protocol_error("malformed numeric value");
    } else if (special == 1) {
        r = Py_NewRef(p->dec_nan);
    } else if (special == 2) {
        r = Py_NewRef(p->dec_pinf);
    } else if (special == 3) {
        r = Py_NewRef(p->dec_ninf);
    } else if (special == 4) {
        /* asyncpg: _Dec('0e-' + str(dscale)) */
        if (p->dec_fast)
            r = decimal_from_digits((PyTypeObject *)p->decimal_type, 0, "0", 1, -(int64_t)dscale);
        if (r == NULL && !PyErr_Occurred()) {
            len = sprintf(buf, "0e-%u", dscale);
            r = make_decimal_str(p, buf, len);
        }
    } else {
        /* "[-]0.<digits>E<exponent>" is int(digits) * 10**(exponent - ndigits) */
        if (p->dec_fast && parts.ndigits >= 1)
            r = decimal_from_digits((PyTypeObject *)p->decimal_type, parts.neg, parts.digits,
                                    parts.ndigits, parts.exponent - parts.ndigits);
        if (r == NULL && !PyErr_Occurred()) r = make_decimal_str(p, buf, len);
    }
    if (buf != small) PyMem_Free(buf);
    return r;
}

/* float(Decimal(s)) == float(s): CPython's Decimal.__float__ parses str(self) */
static int numeric_to_double(const unsigned char *b, Py_ssize_t n, double *out) {
    char small[256];
    char *buf = small;
    Py_ssize_t need = numeric_str_size(b, n);
    if (need > (Py_ssize_t)sizeof(small)) {
        buf = PyMem_Malloc((size_t)need);
        if (buf == NULL) { PyErr_NoMemory(); return -1; }
    }
    int special;
    unsigned dscale;
    int rc = 0;
    Py_ssize_t len = numeric_to_str(b, n, buf, &special, &dscale, NULL);
    if (len < 0) {
        rc = protocol_error("malformed numeric value");
    } else if (special == 1) {
        *out = Py_NAN;
    } else if (special == 2) {
        *out = Py_HUGE_VAL;
    } else if (special == 3) {
        *out = -Py_HUGE_VAL;
    } else if (special == 4) {
        *out = 0.0;
    } else {
        *out = PyOS_string_to_double(buf, NULL, NULL);
        if (*out == -1.0 && PyErr_Occurred()) rc = -1;
    }
    if (buf != small) PyMem_Free(buf);
    return rc;
}

static PyObject *make_uuid(ParserObject *p, const unsigned char *b) {
    if (p->uuid_fast) {
        PyTypeObject *t = (PyTypeObject *)p->uuid_type;
        PyObject *u = t->tp_new(t, p->empty_tuple, NULL);
        if (u == NULL) return NULL;
        memcpy((char *)u + UUID_DATA_OFFSET, b, 16);
        /* its fields hold only None or ints: it cannot be part of a cycle */
        if (PyObject_GC_IsTracked(u)) PyObject_GC_UnTrack(u);
        return u;
    }
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)b, 16);
    if (bytes == NULL) return NULL;
    PyObject *u = PyObject_CallOneArg(p->uuid_type, bytes);
    Py_DECREF(bytes);
    return u;
}

/* days since 1970-01-01 -> civil date (proleptic Gregorian) */
static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static inline int64_t floordiv64(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

/* asyncpg timestamp(tz)_decode: infinity -> datetime.max (naive, also for
 * timestamptz), -infinity -> datetime.min (naive); otherwise epoch + delta,
 * which raises OverflowError outside years 1..9999. */
static PyObject *make_datetime(const unsigned char *b, int tz) {
    int64_t ts = (int64_t)rd64(b);
    int64_t us;
    PyObject *tzinfo = Py_None;
    if (ts == INT64_MAX) {
        us = DT_MAX_US;
    } else if (ts == INT64_MIN) {
        us = DT_MIN_US;
    } else {
        if (ts > DT_MAX_US - PG_EPOCH_US || ts < DT_MIN_US - PG_EPOCH_US) {
            PyErr_SetString(PyExc_OverflowError, "date value out of range");
            return NULL;
        }
        us = ts + PG_EPOCH_US;
        if (tz) tzinfo = PyDateTime_TimeZone_UTC;
    }
    int64_t days = floordiv64(us, US_PER_DAY);
    int64_t rem = us - days * US_PER_DAY;
    int y, mo, d;
    civil_from_days(days, &y, &mo, &d);
    int64_t secs = rem / 1000000;
    return PyDateTimeAPI->DateTime_FromDateAndTime(
        y, mo, d, (int)(secs / 3600), (int)((secs / 60) % 60), (int)(secs % 60),
        (int)(rem % 1000000), tzinfo, PyDateTimeAPI->DateTimeType);
}

static PyObject *make_date(const unsigned char *b) {
    int32_t v = (int32_t)rd32(b);
    int64_t days;
    if (v == INT32_MAX) days = DATE_MAX_DAYS;
    else if (v == INT32_MIN) days = DATE_MIN_DAYS;
    else {
        days = (int64_t)v + PG_EPOCH_DAYS;
        if (days < DATE_MIN_DAYS || days > DATE_MAX_DAYS) {
            /* asyncpg: date.fromordinal(...) raises; let it say so */
            PyObject *r = PyObject_CallMethod((PyObject *)PyDateTimeAPI->DateType,
                                              "fromordinal", "L",
                                              (long long)(days + 719163));
            if (r != NULL) {
                Py_DECREF(r);
                PyErr_SetString(PyExc_ValueError, "date out of range");
            }
            return NULL;
        }
    }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    return PyDateTimeAPI->Date_FromDate(y, m, d, PyDateTimeAPI->DateType);
}

/* asyncpg time_decode: hours may reach 24 for '24:00:00', which
 * datetime.time rejects with ValueError, as asyncpg does. */
static PyObject *make_time(const unsigned char *b, PyObject *tzinfo) {
    int64_t ts = (int64_t)rd64(b);
    int64_t seconds = floordiv64(ts, 1000000);
    int64_t us = ts - seconds * 1000000;
    int64_t minutes = seconds / 60;
    int64_t hours = minutes / 60;
    if (hours < 0 || hours > 23) {
        PyErr_SetString(PyExc_ValueError, "hour must be in 0..23");
        return NULL;
    }
    return PyDateTimeAPI->Time_FromTime((int)hours, (int)(minutes % 60),
                                        (int)(seconds % 60), (int)us, tzinfo,
                                        PyDateTimeAPI->TimeType);
}

static PyObject *tz_for_offset(ParserObject *p, int32_t offset_seconds) {
    /* asyncpg: offset = int(offset_seconds / 60); timezone(timedelta(minutes=-offset)) */
    int32_t minutes = (int32_t)((double)offset_seconds / 60.0);
    PyObject *key = PyLong_FromLong(minutes);
    if (key == NULL) return NULL;
    PyObject *tz = PyDict_GetItemWithError(p->tz_cache, key);
    if (tz != NULL) {
        Py_DECREF(key);
        return Py_NewRef(tz);
    }
    if (PyErr_Occurred()) { Py_DECREF(key); return NULL; }
    PyObject *delta = PyDelta_FromDSU(0, -minutes * 60, 0);
    if (delta == NULL) { Py_DECREF(key); return NULL; }
    tz = PyTimeZone_FromOffset(delta);
    Py_DECREF(delta);
    if (tz == NULL || PyDict_SetItem(p->tz_cache, key, tz) < 0) {
        Py_DECREF(key);
        Py_XDECREF(tz);
        return NULL;
    }
    Py_DECREF(key);
    return tz;
}

static PyObject *make_timetz(ParserObject *p, const unsigned char *b) {
    PyObject *tz = tz_for_offset(p, (int32_t)rd32(b + 8));
    if (tz == NULL) return NULL;
    PyObject *r = make_time(b, tz);
    Py_DECREF(tz);
    return r;
}

/* asyncpg interval_decode, including its int32 arithmetic:
 *   years = trunc(months / 12), months = rem; days + months*30 + years*365
 * computed in (wrapping) int32, then timedelta(days, seconds, us).
 * For infinite intervals the time part is left at 0. */
static int interval_parts(const unsigned char *b, int64_t *days_out, int64_t *time_us) {
    int64_t ts = (int64_t)rd64(b);
    int32_t days = (int32_t)rd32(b + 8);
    int32_t months = (int32_t)rd32(b + 12);
    int32_t years;
    if (months < 0) {
        years = -(int32_t)((-(int64_t)months) / 12);
        months = -(int32_t)((-(int64_t)months) % 12);
    } else {
        years = months / 12;
        months = months % 12;
    }
    uint32_t total = (uint32_t)days + (uint32_t)months * 30u + (uint32_t)years * 365u;
    *days_out = (int64_t)(int32_t)total;
    *time_us = (ts == INT64_MAX || ts == INT64_MIN) ? 0 : ts;
    return 0;
}

static PyObject *make_timedelta(const unsigned char *b) {
    int64_t days, us;
    interval_parts(b, &days, &us);
    int64_t secs = floordiv64(us, 1000000);
    int64_t rem = us - secs * 1000000;
    int64_t sdays = floordiv64(secs, 86400);
    secs -= sdays * 86400;
    days += sdays;
    if (days > 999999999 || days < -999999999) {
        PyErr_Format(PyExc_OverflowError,
                     "days=%lld; must have magnitude <= 999999999",
                     (long long)days);
        return NULL;
    }
    return PyDateTimeAPI->Delta_FromDelta((int)days, (int)secs, (int)rem, 1,
                                          PyDateTimeAPI->DeltaType);
}

/* JSON read directly into Python objects, with json.loads' results, for
 * the texts orjson cannot read exactly (integers beyond 64 bits, any run of
 * 19 digits) or all of them without orjson: orjson's batches are faster
 * where they are exact (its float parser beats Python's dtoa on the 16-17
 * digit floats common in JSON, measured).  It reads the
 * grammar json.loads accepts minus a few rarities (lone surrogate escapes,
 * numbers longer than JSON_NUMBER_MAX characters, nesting deeper than
 * JSON_DEPTH_MAX, the NaN and Infinity words), for which jd_value() gives up
 * and the value takes make_json() or the batch.  Strings are decoded with
 * Python's strict UTF-8 codec (the record path decodes the text so before
 * json.loads reads it); numbers with a fraction or exponent become float(s),
 * the others int(s), as json.loads makes them.  Short ASCII strings (keys,
 * mostly) are shared through a small cache: str objects are immutable. */
#define JSON_DEPTH_MAX 64
#define JSON_NUMBER_MAX 64
#define JSTR_CACHE_SIZE 512
#define JSTR_CACHE_KEY 16

typedef struct JstrCacheEntry {
    PyObject *value;
    uint8_t len;
    uint64_t key[JSTR_CACHE_KEY / 8];  /* the bytes, zero-padded */
} JstrCacheEntry;

/* per byte inside a JSON string: 0 plain ASCII, 1 non-ASCII, 2 stop there;
 * and per byte between tokens: 1 for JSON's whitespace */
static unsigned char jd_class[256], jd_white[256];

static void jd_init_class(void) {
    for (int ch = 0; ch < 256; ch++) jd_class[ch] = ch < 0x20 ? 2 : ch >= 0x80 ? 1 : 0;
    jd_class['"'] = 2;
    jd_class['\\'] = 2;
    jd_white[' '] = jd_white['\t'] = jd_white['\n'] = jd_white['\r'] = 1;
}

static inline const unsigned char *jd_space(const unsigned char *s, const unsigned char *end) {
    while (s < end && jd_white[*s]) s++;
    return s;
}

static inline PyObject *jd_ascii(ParserObject *p, const unsigned char *b, Py_ssize_t n) {
    JstrCacheEntry *e = NULL;
    uint64_t key[2] = {0, 0};
    if (n <= JSTR_CACHE_KEY && p->jstr_cache != NULL) {
        /* keys are short: a loop beats a call to memcpy */
        for (Py_ssize_t i = 0; i < n; i++) key[i >> 3] |= (uint64_t)b[i] << (8 * (i & 7));
        uint64_t h = (key[0] ^ (uint64_t)n) * UINT64_C(0x9E3779B97F4A7C15);
        h = (h ^ (h >> 32) ^ key[1]) * UINT64_C(0x9E3779B97F4A7C15);
        e = &p->jstr_cache[(h >> 40) & (JSTR_CACHE_SIZE - 1)];
        if (e->value != NULL && e->len == n && e->key[0] == key[0] && e->key[1] == key[1])
            return Py_NewRef(e->value);
    }
    PyObject *str = PyUnicode_New(n, 127);
    if (str == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(str), b, (size_t)n);
    if (e != NULL) {
        Py_XSETREF(e->value, Py_NewRef(str));
        e->len = (uint8_t)n;
        e->key[0] = key[0];
        e->key[1] = key[1];
    }
    return str;
}

static int jd_hex4(const unsigned char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (uint32_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (uint32_t)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (uint32_t)(ch - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A string whose opening quote is at *ps; *ps is moved past the closing one.
 * NULL, with or without an exception, when it is not read here. */
static PyObject *jd_escaped(const unsigned char **ps, const unsigned char *end);

static inline PyObject *jd_string(ParserObject *p, const unsigned char **ps,
                                  const unsigned char *end) {
    const unsigned char *s = *ps + 1, *q = s;
    unsigned char wide = 0;  /* any non-ASCII byte */
    while (q < end && jd_class[*q] < 2) wide |= jd_class[*q++];
    if (q >= end || *q < 0x20) return NULL;  /* json.loads refuses raw control characters */
    if (*q == '"') {
        *ps = q + 1;
        return wide ? PyUnicode_DecodeUTF8((const char *)s, q - s, NULL) : jd_ascii(p, s, q - s);
    }
    return jd_escaped(ps, end);
}

/* A string with escapes: resolved into UTF-8, which is never longer than
 * the text, then decoded. */
static Py_NO_INLINE PyObject *jd_escaped(const unsigned char **ps, const unsigned char *end) {
    const unsigned char *s = *ps + 1, *q;
    char small[256];
    char *buf = small;
    if (end - s > (Py_ssize_t)sizeof(small)) {
        buf = PyMem_Malloc((size_t)(end - s));
        if (buf == NULL) return PyErr_NoMemory();
    }
    char *w = buf;
    PyObject *r = NULL;
    q = s;
    for (;;) {
        if (q >= end || *q < 0x20) goto done;
        unsigned char ch = *q++;
        if (ch == '"') break;
        if (ch != '\\') { *w++ = (char)ch; continue; }
        if (q >= end) goto done;
        ch = *q++;
        switch (ch) {
        case '"': case '\\': case '/': *w++ = (char)ch; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            uint32_t c, lo;
            if (end - q < 4 || jd_hex4(q, &c) < 0) goto done;
            q += 4;
            if (c >= 0xD800 && c <= 0xDBFF) {
                /* a pair makes one character; a lone half is left to json.loads */
                if (end - q < 6 || q[0] != '\\' || q[1] != 'u' || jd_hex4(q + 2, &lo) < 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    goto done;
                q += 6;
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            } else if (c >= 0xDC00 && c <= 0xDFFF) {
                goto done;
            }
            if (c < 0x80) {
                *w++ = (char)c;
            } else if (c < 0x800) {
                *w++ = (char)(0xC0 | (c >> 6));
                *w++ = (char)(0x80 | (c & 0x3F));
            } else if (c < 0x10000) {
                *w++ = (char)(0xE0 | (c >> 12));
                *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
                *w++ = (char)(0x80 | (c & 0x3F));
            } else {
                *w++ = (char)(0xF0 | (c >> 18));
                *w++ = (char)(0x80 | ((c >> 12) & 0x3F));
                *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
                *w++ = (char)(0x80 | (c & 0x3F));
            }
            break;
        }
        default:
            goto done;
        }
    }
    *ps = q;
    r = PyUnicode_DecodeUTF8(buf, w - buf, NULL);
done:
    if (buf != small) PyMem_Free(buf);
    return r;
}

/* 10**k for k <= 22: exact doubles */
static const double jd_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static PyObject *jd_number(const unsigned char **ps, const unsigned char *end) {
    const unsigned char *s = *ps, *q = s;
    int is_float = 0, neg = 0;
    uint64_t sig = 0;       /* the significant digits, while there are at most 19 */
    int nsig = 0;           /* significant digits (leading zeros not counted) */
    int64_t exp10 = 0;      /* value = sig * 10**exp10 while nsig <= 19 */
    if (q < end && *q == '-') { q++; neg = 1; }
    if (q < end && *q == '0') {
        q++;
    } else if (q < end && *q >= '1' && *q <= '9') {
        for (; q < end && *q >= '0' && *q <= '9'; q++)
            if (++nsig <= 19) sig = sig * 10 + (uint64_t)(*q - '0');
    } else {
        return NULL;
    }
    if (q < end && *q == '.') {
        if (++q >= end || *q < '0' || *q > '9') return NULL;
        for (; q < end && *q >= '0' && *q <= '9'; q++) {
            if (nsig == 0 && *q == '0') { exp10--; continue; }
            if (++nsig <= 19) { sig = sig * 10 + (uint64_t)(*q - '0'); exp10--; }
        }
        is_float = 1;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        int eneg = 0;
        int64_t e = 0;
        if (q < end && (*q == '+' || *q == '-')) eneg = *q++ == '-';
        if (q >= end || *q < '0' || *q > '9') return NULL;
        for (; q < end && *q >= '0' && *q <= '9'; q++)
            if (e < 100000) e = e * 10 + (*q - '0');
        exp10 += eneg ? -e : e;
        is_float = 1;
    }
    Py_ssize_t n = q - s;
    *ps = q;
    if (!is_float && nsig <= 18)
        return PyLong_FromLongLong(neg ? -(int64_t)sig : (int64_t)sig);
    /* Clinger's fast path: the digits and the power of ten are exact
     * doubles, so one multiplication or division rounds correctly, as
     * float(s) does */
    if (is_float && nsig <= 15 && exp10 >= -22 && exp10 <= 22) {
        double v = (double)sig;
        v = exp10 < 0 ? v / jd_pow10[-exp10] : v * jd_pow10[exp10];
        return PyFloat_FromDouble(neg ? -v : v);
    }
    if (n > JSON_NUMBER_MAX) return NULL;
    char buf[JSON_NUMBER_MAX + 1];
    memcpy(buf, s, (size_t)n);
    buf[n] = '\0';
    if (!is_float) return PyLong_FromString(buf, NULL, 10);
    /* float(s): an overflow is an infinity, not an error */
    double v = PyOS_string_to_double(buf, NULL, NULL);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(v);
}

static PyObject *jd_value(ParserObject *p, const unsigned char **ps, const unsigned char *end,
                          int depth) {
    const unsigned char *s = *ps;
    if (s >= end) return NULL;
    switch (*s) {
    case '"':
        return jd_string(p, ps, end);
    case '{': {
        if (depth >= JSON_DEPTH_MAX) return NULL;
        PyObject *d = PyDict_New();
        if (d == NULL) return NULL;
        s = jd_space(s + 1, end);
        if (s < end && *s == '}') { *ps = s + 1; return d; }
        for (;;) {
            if (s >= end || *s != '"') goto fail_dict;
            PyObject *k = jd_string(p, &s, end);
            if (k == NULL) goto fail_dict;
            s = jd_space(s, end);
            if (s >= end || *s != ':') { Py_DECREF(k); goto fail_dict; }
            s = jd_space(s + 1, end);
            PyObject *v = jd_value(p, &s, end, depth + 1);
            if (v == NULL) { Py_DECREF(k); goto fail_dict; }
            int rc = PyDict_SetItem(d, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc < 0) goto fail_dict;
            s = jd_space(s, end);
            if (s < end && *s == ',') { s = jd_space(s + 1, end); continue; }
            if (s < end && *s == '}') break;
            goto fail_dict;
        }
        *ps = s + 1;
        return d;
    fail_dict:
        Py_DECREF(d);
        return NULL;
    }
    case '[': {
        if (depth >= JSON_DEPTH_MAX) return NULL;
        PyObject *l = PyList_New(0);
        if (l == NULL) return NULL;
        s = jd_space(s + 1, end);
        if (s < end && *s == ']') { *ps = s + 1; return l; }
        for (;;) {
            PyObject *v = jd_value(p, &s, end, depth + 1);
            if (v == NULL) goto fail_list;
            int rc = PyList_Append(l, v);
            Py_DECREF(v);
            if (rc < 0) goto fail_list;
            s = jd_space(s, end);
            if (s < end && *s == ',') { s = jd_space(s + 1, end); continue; }
            if (s < end && *s == ']') break;
            goto fail_list;
        }
        *ps = s + 1;
        return l;
    fail_list:
        Py_DECREF(l);
        return NULL;
    }
    case 't':
        if (end - s < 4 || memcmp(s, "true", 4) != 0) return NULL;
        *ps = s + 4;
        return Py_NewRef(Py_True);
    case 'f':
        if (end - s < 5 || memcmp(s, "false", 5) != 0) return NULL;
        *ps = s + 5;
        return Py_NewRef(Py_False);
    case 'n':
        if (end - s < 4 || memcmp(s, "null", 4) != 0) return NULL;
        *ps = s + 4;
        return Py_NewRef(Py_None);
    default:
        return jd_number(ps, end);
    }
}

/* One JSON text read here: a new reference; NULL with an exception (memory
 * only); or NULL without one when the text is for make_json() to decode
 * (which also raises json.loads' own error for a malformed text). */
static PyObject *json_direct(ParserObject *p, const unsigned char *b, Py_ssize_t n) {
    const unsigned char *s = jd_space(b, b + n), *end = b + n;
    PyObject *r = jd_value(p, &s, end, 0);
    if (r != NULL && jd_space(s, end) != end) Py_CLEAR(r);
    if (r == NULL && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) return NULL;
        PyErr_Clear();
    }
    return r;
}

/* JSON: orjson.loads where it is exact, else json_direct(), else
 * json.loads(str) (which also raises the error for a malformed text).
 * orjson turns integers beyond 64 bits into floats and rejects what
 * json.loads accepts (lone surrogate escapes, 1e400): any run of 19+ digits
 * or any orjson error sends the value to json.loads. */
static int json_risky(const unsigned char *b, Py_ssize_t n) {
    int run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (b[i] >= '0' && b[i] <= '9') {
            if (++run >= 19) return 1;
        } else {
            run = 0;
        }
    }
    return 0;
}

static PyObject *make_json(ParserObject *p, const unsigned char *b, Py_ssize_t n) {
    if (p->json_loads != NULL) {
        if (!json_risky(b, n)) {
            PyObject *bytes = PyBytes_FromStringAndSize((const char *)b, n);
            if (bytes == NULL) return NULL;
            PyObject *r = PyObject_CallOneArg(p->json_loads, bytes);
            Py_DECREF(bytes);
            if (r != NULL) return r;
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
            PyErr_Clear();
        }
    }
    PyObject *direct = json_direct(p, b, n);
    if (direct != NULL || PyErr_Occurred()) return direct;
    PyObject *s = make_str(b, n);
    if (s == NULL) return NULL;
    PyObject *r = PyObject_CallOneArg(p->json_fallback, s);
    Py_DECREF(s);
    return r;
}

/* Decode the pending batch of a JSON column.  An orjson error on the batch
 * (a value only json.loads accepts, or nesting at orjson's depth limit)
 * sends every value of the batch through make_json one by one.
 * Returns -1 only on memory errors; value errors are deferred. */
static int json_flush(ParserObject *p, Column *c) {
    if (c->jcount == 0) return 0;
    c->jbuf[c->jlen] = ']';
    PyObject *bytes = PyBytes_FromStringAndSize(c->jbuf, c->jlen + 1);
    if (bytes == NULL) return -1;
    PyObject *list = PyObject_CallOneArg(p->json_loads, bytes);
    Py_DECREF(bytes);
    if (list != NULL && PyList_CheckExact(list) && PyList_GET_SIZE(list) == c->jcount) {
        for (int i = 0; i < c->jcount; i++)
            c->objs[c->jpend[3 * i]] = Py_NewRef(PyList_GET_ITEM(list, i));
        Py_DECREF(list);
    } else {
        Py_XDECREF(list);
        if (list == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) return -1;
            PyErr_Clear();
        }
        for (int i = 0; i < c->jcount; i++) {
            Py_ssize_t *e = c->jpend + 3 * i;
            PyObject *o = make_json(p, (const unsigned char *)c->jbuf + e[1], e[2]);
            if (o == NULL) {
                if (PyErr_ExceptionMatches(PyExc_MemoryError)) return -1;
                defer_error(p);
                o = Py_NewRef(Py_None);
            }
            c->objs[e[0]] = o;
        }
    }
    c->jcount = 0;
    c->jlen = 0;
    return 0;
}

/* Whether a json/jsonb text is the JSON null (json keeps the spaces typed). */
static uint8_t json_is_null(const unsigned char *b, Py_ssize_t n) {
    while (n > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r')) { b++; n--; }
    while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\n' || b[n - 1] == '\r')) n--;
    return n == 4 && memcmp(b, "null", 4) == 0;
}

/* Queue one JSON value of row r (already known not risky). */
static int json_queue(ParserObject *p, Column *c, Py_ssize_t r,
                      const unsigned char *b, Py_ssize_t n) {
    if (c->jpend == NULL) {
        c->jpend = PyMem_Malloc(sizeof(Py_ssize_t) * 3 * JSON_BATCH);
        if (c->jpend == NULL) { PyErr_NoMemory(); return -1; }
    }
    Py_ssize_t need = c->jlen + n + 2;  /* separator + value + closing bracket */
    if (need > c->jcap) {
        Py_ssize_t ncap = c->jcap ? c->jcap : JSON_BATCH_BYTES + 1024;
        while (ncap < need) ncap *= 2;
        char *nb = PyMem_Realloc(c->jbuf, (size_t)ncap);
        if (nb == NULL) { PyErr_NoMemory(); return -1; }
        c->jbuf = nb;
        c->jcap = ncap;
    }
    c->jbuf[c->jlen++] = c->jcount ? ',' : '[';
    memcpy(c->jbuf + c->jlen, b, (size_t)n);
    Py_ssize_t *e = c->jpend + 3 * c->jcount;
    e[0] = r;
    e[1] = c->jlen;
    e[2] = n;
    c->jlen += n;
    c->jcount++;
    c->objs[r] = NULL;
    if (c->jcount == JSON_BATCH || c->jlen >= JSON_BATCH_BYTES) return json_flush(p, c);
    return 0;
}

/* element decoders for arrays: what asyncpg returns for each element */
static PyObject *make_element(ParserObject *p, int kind, const unsigned char *b, Py_ssize_t n) {
    switch (kind) {
    case CK_BOOL:
        if (n != 1) break;
        return Py_NewRef(b[0] ? Py_True : Py_False);
    case CK_INT2:
        if (n != 2) break;
        return PyLong_FromLong((int16_t)rd16(b));
    case CK_INT4:
        if (n != 4) break;
        return PyLong_FromLong((int32_t)rd32(b));
    case CK_INT8:
        if (n != 8) break;
        return PyLong_FromLongLong((int64_t)rd64(b));
    case CK_OID:
        if (n != 4) break;
        return PyLong_FromUnsignedLong(rd32(b));
    case CK_FLOAT4: {
        if (n != 4) break;
        uint32_t u = rd32(b);
        float f;
        memcpy(&f, &u, 4);
        return PyFloat_FromDouble((double)f);
    }
    case CK_FLOAT8: {
        if (n != 8) break;
        uint64_t u = rd64(b);
        double f;
        memcpy(&f, &u, 8);
        return PyFloat_FromDouble(f);
    }
    case CK_TEXT:
        return make_str(b, n);
    /* pgmagic's sessions decode json/jsonb with json.loads (set_type_codec),
     * and asyncpg applies that codec to array elements too */
    case CK_JSON:
        return make_json(p, b, n);
    case CK_JSONB:
        if (n < 1) break;
        if (b[0] != 1) {
            PyErr_Format(PyExc_ValueError, "unexpected JSONB format: %d", b[0]);
            return NULL;
        }
        return make_json(p, b + 1, n - 1);
    case CK_NUMERIC:
        return make_numeric(p, b, n);
    case CK_BYTEA:
        return PyBytes_FromStringAndSize((const char *)b, n);
    case CK_UUID:
        if (n != 16) break;
        return make_uuid(p, b);
    case CK_DATE:
        if (n != 4) break;
        return make_date(b);
    case CK_TIMESTAMP:
    case CK_TIMESTAMPTZ:
        if (n != 8) break;
        return make_datetime(b, kind == CK_TIMESTAMPTZ);
    case CK_TIME:
        if (n != 8) break;
        return make_time(b, Py_None);
    case CK_TIMETZ:
        if (n != 12) break;
        return make_timetz(p, b);
    case CK_INTERVAL:
        if (n != 16) break;
        return make_timedelta(b);
    default:
        break;
    }
    protocol_error("unexpected array element length");
    return NULL;
}

/* Decode one array value. On a protocol error returns NULL with
 * ProtocolError set; value errors come back as ordinary exceptions. */
static PyObject *make_array(ParserObject *p, int elem_kind, uint32_t elem_oid,
                            const unsigned char *b, Py_ssize_t n) {
    if (n < 12) { protocol_error("malformed array"); return NULL; }
    int32_t ndims = (int32_t)rd32(b);
    uint32_t oid = rd32(b + 8);
    if (ndims == 0) return PyList_New(0);
    if (ndims < 0 || ndims > ARRAY_MAXDIM || n < 12 + 8 * (Py_ssize_t)ndims) {
        protocol_error("malformed array header");
        return NULL;
    }
    if (oid != elem_oid) {
        protocol_error("unexpected array element type");
        return NULL;
    }
    int32_t dims[ARRAY_MAXDIM];
    int64_t total = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = (int32_t)rd32(b + 12 + 8 * i);
        if (dims[i] < 0) { protocol_error("malformed array dimension"); return NULL; }
        total *= dims[i];
        if (total > n) { protocol_error("malformed array dimension"); return NULL; }
    }
    const unsigned char *q = b + 12 + 8 * ndims;
    const unsigned char *end = b + n;
    /* build leaves first, then fold them into nested lists */
    PyObject *flat = PyList_New((Py_ssize_t)total);
    if (flat == NULL) return NULL;
    for (int64_t i = 0; i < total; i++) {
        if (end - q < 4) { protocol_error("truncated array"); goto fail; }
        int32_t len = (int32_t)rd32(q);
        q += 4;
        PyObject *e;
        if (len == -1) {
            e = Py_NewRef(Py_None);
        } else {
            if (len < 0 || end - q < len) { protocol_error("truncated array"); goto fail; }
            e = make_element(p, elem_kind, q, len);
            if (e == NULL) goto fail;
            q += len;
        }
        PyList_SET_ITEM(flat, (Py_ssize_t)i, e);
    }
    for (int d = ndims - 1; d >= 1; d--) {
        Py_ssize_t width = dims[d];
        Py_ssize_t groups = PyList_GET_SIZE(flat) / (width ? width : 1);
        if (width == 0) groups = 0;
        /* total is 0 if any dim is 0; then the outer shape is lost the same
         * way in asyncpg (PostgreSQL never sends such arrays) */
        PyObject *outer = PyList_New(groups);
        if (outer == NULL) goto fail;
        for (Py_ssize_t g = 0; g < groups; g++) {
            PyObject *inner = PyList_GetSlice(flat, g * width, (g + 1) * width);
            if (inner == NULL) { Py_DECREF(outer); goto fail; }
            PyList_SET_ITEM(outer, g, inner);
        }
        Py_DECREF(flat);
        flat = outer;
    }
    return flat;
fail:
    Py_DECREF(flat);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* row decoding                                                              */

static inline void set_bit(uint8_t *bits, Py_ssize_t i) {
    bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* Store a NULL in column c at row r. */
static void store_null(Column *c, Py_ssize_t r) {
    switch (c->storage) {
    case S_FIXED:
        switch (c->kind) {
        case CK_BOOL: c->values[r] = 0; c->mask[r] = 1; break;
        case CK_INT2: ((int16_t *)c->values)[r] = 0; c->mask[r] = 1; break;
        case CK_INT4: ((int32_t *)c->values)[r] = 0; c->mask[r] = 1; break;
        case CK_INT8: case CK_OID: ((int64_t *)c->values)[r] = 0; c->mask[r] = 1; break;
        case CK_FLOAT4: ((float *)c->values)[r] = (float)Py_NAN; break;
        case CK_FLOAT8: case CK_NUMERIC_FLOAT: ((double *)c->values)[r] = Py_NAN; break;
        default: ((int64_t *)c->values)[r] = NAT; break;
        }
        break;
    case S_TEXT:
        ((int64_t *)c->values)[r + 1] = c->data_len;
        c->null_count++;
        break;
    default:
        c->objs[r] = Py_NewRef(Py_None);
        break;
    }
}

/* Decode a non-NULL field. Returns 0, or -1 on a protocol/memory error.
 * Value errors are deferred and a NULL-equivalent is stored instead. */
static int store_value(ParserObject *p, Column *c, Py_ssize_t r,
                       const unsigned char *b, int32_t n) {
    switch (c->kind) {
    case CK_BOOL:
        if (n != 1) goto badlen;
        c->values[r] = b[0] != 0;
        c->mask[r] = 0;
        return 0;
    case CK_INT2:
        if (n != 2) goto badlen;
        ((int16_t *)c->values)[r] = (int16_t)rd16(b);
        c->mask[r] = 0;
        return 0;
    case CK_INT4:
        if (n != 4) goto badlen;
        ((int32_t *)c->values)[r] = (int32_t)rd32(b);
        c->mask[r] = 0;
        return 0;
    case CK_INT8:
        if (n != 8) goto badlen;
        ((int64_t *)c->values)[r] = (int64_t)rd64(b);
        c->mask[r] = 0;
        return 0;
    case CK_OID:
        if (n != 4) goto badlen;
        ((int64_t *)c->values)[r] = (int64_t)rd32(b);
        c->mask[r] = 0;
        return 0;
    case CK_FLOAT4: {
        if (n != 4) goto badlen;
        uint32_t u = rd32(b);
        memcpy((float *)c->values + r, &u, 4);
        return 0;
    }
    case CK_FLOAT8: {
        if (n != 8) goto badlen;
        uint64_t u = rd64(b);
        memcpy((double *)c->values + r, &u, 8);
        return 0;
    }
    case CK_NUMERIC_FLOAT: {
        double v;
        if (numeric_to_double(b, n, &v) < 0) {
            if (PyErr_ExceptionMatches(ProtocolError)) return -1;
            defer_error(p);
            v = Py_NAN;
        }
        ((double *)c->values)[r] = v;
        return 0;
    }
    case CK_TIMESTAMP:
    case CK_TIMESTAMPTZ: {
        if (n != 8) goto badlen;
        int64_t ts = (int64_t)rd64(b), v;
        if (ts == INT64_MAX) v = DT_MAX_US;
        else if (ts == INT64_MIN) v = DT_MIN_US;
        else if (ts > DT_MAX_US - PG_EPOCH_US || ts < DT_MIN_US - PG_EPOCH_US) {
            defer_new_error(p, PyExc_OverflowError, "date value out of range");
            v = NAT;
        } else v = ts + PG_EPOCH_US;
        ((int64_t *)c->values)[r] = v;
        return 0;
    }
    case CK_DATE: {
        if (n != 4) goto badlen;
        int32_t d = (int32_t)rd32(b);
        int64_t days;
        if (d == INT32_MAX) days = DATE_MAX_DAYS;
        else if (d == INT32_MIN) days = DATE_MIN_DAYS;
        else {
            days = (int64_t)d + PG_EPOCH_DAYS;
            if (days < DATE_MIN_DAYS || days > DATE_MAX_DAYS) {
                PyObject *tmp = make_date(b);  /* sets asyncpg's error */
                Py_XDECREF(tmp);
                defer_error(p);
                ((int64_t *)c->values)[r] = NAT;
                return 0;
            }
        }
        ((int64_t *)c->values)[r] = days * 86400;
        return 0;
    }
    case CK_INTERVAL: {
        if (n != 16) goto badlen;
        int64_t days, us, total;
        memcpy(c->aux + r * 16, b, 16);
        interval_parts(b, &days, &us);
        /* the record path goes through datetime.timedelta, then to
         * timedelta64[us]: both ranges must hold */
        if (days > 999999999 || days < -999999999 ||
            __builtin_mul_overflow(days, US_PER_DAY, &total) ||
            __builtin_add_overflow(total, us, &total) || total == NAT) {
            PyObject *tmp = make_timedelta(b);
            if (tmp != NULL) {
                Py_DECREF(tmp);
                PyErr_SetString(PyExc_OverflowError,
                                "interval out of range for timedelta64[us]");
            }
            defer_error(p);
            total = NAT;
        }
        ((int64_t *)c->values)[r] = total;
        return 0;
    }
    case CK_TEXT: {
        if (!utf8_valid(b, n)) {
            PyObject *tmp = make_str(b, n);  /* raises UnicodeDecodeError */
            Py_XDECREF(tmp);
            if (tmp == NULL) defer_error(p);
        }
        if (text_reserve(c, n) < 0) return -1;
        memcpy(c->data + c->data_len, b, (size_t)n);
        c->data_len += n;
        ((int64_t *)c->values)[r + 1] = c->data_len;
        set_bit(c->validity, r);
        return 0;
    }
    default:
        break;
    }

    /* object kinds */
    PyObject *o = NULL;
    switch (c->kind) {
    case CK_NUMERIC: o = make_numeric(p, b, n); break;
    case CK_UUID:
        if (n != 16) goto badlen;
        o = make_uuid(p, b);
        break;
    case CK_BYTEA: o = PyBytes_FromStringAndSize((const char *)b, n); break;
    case CK_TIME:
        if (n != 8) goto badlen;
        o = make_time(b, Py_None);
        break;
    case CK_TIMETZ:
        if (n != 12) goto badlen;
        o = make_timetz(p, b);
        break;
    case CK_JSON:
    case CK_JSONB:
        if (c->kind == CK_JSONB) {
            if (n < 1) goto badlen;
            if (b[0] != 1) {
                PyErr_Format(PyExc_ValueError, "unexpected JSONB format: %d", b[0]);
                break;
            }
            b++;
            n--;
        }
        c->aux[r] = json_is_null(b, n);
        if (p->json_loads != NULL && !json_risky(b, n)) return json_queue(p, c, r, b, n);
        o = make_json(p, b, n);
        break;
    case CK_ARRAY: o = make_array(p, c->elem_kind, c->elem_oid, b, n); break;
    default:
        return protocol_error("unknown column kind");
    }
    if (o == NULL) {
        if (PyErr_ExceptionMatches(ProtocolError) ||
            PyErr_ExceptionMatches(PyExc_MemoryError)) return -1;
        defer_error(p);
        o = Py_NewRef(Py_None);
    }
    c->objs[r] = o;
    return 0;
badlen:
    return protocol_error("unexpected field length");
}

/* ------------------------------------------------------------------------ */
/* export layouts: shared formatting                                         */

static const char HEX[] = "0123456789abcdef";

static inline char *put2(char *q, int v) {
    q[0] = (char)('0' + v / 10);
    q[1] = (char)('0' + v % 10);
    return q + 2;
}

static char *put_digits(char *q, int64_t v, int width) {
    for (int i = width - 1; i >= 0; i--, v /= 10) q[i] = (char)('0' + v % 10);
    return q + width;
}

static char *put_int(char *q, int64_t v) {
    char tmp[20];
    int k = 0;
    /* negate in unsigned arithmetic: INT64_MIN has no positive int64 */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0) *q++ = '-';
    do { tmp[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    while (k) *q++ = tmp[--k];
    return q;
}

/* YYYY-MM-DD; days are within datetime.date's range (checked by callers) */
static char *put_date(char *q, int64_t days) {
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    q = put_digits(q, y, 4);
    *q++ = '-';
    q = put2(q, m);
    *q++ = '-';
    return put2(q, d);
}

/* HH:MM:SS, then .ffffff when always_fraction or when not zero: the
 * latter is datetime.time.isoformat() */
static char *put_time(char *q, int64_t us, int always_fraction) {
    int64_t secs = us / 1000000, frac = us % 1000000;
    q = put2(q, (int)(secs / 3600));
    *q++ = ':';
    q = put2(q, (int)(secs / 60 % 60));
    *q++ = ':';
    q = put2(q, (int)(secs % 60));
    if (always_fraction || frac) {
        *q++ = '.';
        q = put_digits(q, frac, 6);
    }
    return q;
}

/* 400 Gregorian years, in microseconds: calendars and daylight-saving rules
 * repeat with this period */
#define ZONE_CYCLE_US (INT64_C(146097) * US_PER_DAY)

/* The zone's offset in seconds east of UTC at an instant (microseconds
 * since 1970); the parser has a zone table. */
static int32_t zone_offset(ParserObject *p, int64_t us) {
    if (us >= p->zone_end) us -= ((us - p->zone_end) / ZONE_CYCLE_US + 1) * ZONE_CYCLE_US;
    Py_ssize_t lo = p->zone_last;  /* values come in runs: try last time's entry first */
    if (p->zone_at[lo] <= us && (lo + 1 == p->zone_n || us < p->zone_at[lo + 1]))
        return p->zone_off[lo];
    lo = 0;
    Py_ssize_t hi = p->zone_n - 1;  /* the last transition at or before us */
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo + 1) / 2;
        if (p->zone_at[mid] <= us) lo = mid;
        else hi = mid - 1;
    }
    p->zone_last = lo;
    return p->zone_off[lo];
}

/* +HH:MM, or +HH:MM:SS for an offset with seconds (local mean times): as
 * datetime.isoformat() writes it.  At most 9 bytes. */
static char *put_offset(char *q, int32_t east) {
    *q++ = east < 0 ? '-' : '+';
    if (east < 0) east = -east;
    q = put2(q, east / 3600);
    *q++ = ':';
    q = put2(q, east / 60 % 60);
    if (east % 60) {
        *q++ = ':';
        q = put2(q, east % 60);
    }
    return q;
}

/* timetz as asyncpg's datetime.time(..., tzinfo).isoformat(); the caller
 * checked the time of day.  At most 21 bytes. */
static char *put_timetz(char *q, const unsigned char *b) {
    q = put_time(q, (int64_t)rd64(b), 0);
    /* tz_for_offset: PostgreSQL counts seconds west of UTC */
    int32_t east = -(int32_t)((double)(int32_t)rd32(b + 8) / 60.0);
    *q++ = east < 0 ? '-' : '+';
    if (east < 0) east = -east;
    q = put2(q, east / 60);
    *q++ = ':';
    return put2(q, east % 60);
}

/* the 36-character form of a uuid */
static char *put_uuid(char *q, const unsigned char *b) {
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *q++ = '-';
        *q++ = HEX[b[i] >> 4];
        *q++ = HEX[b[i] & 15];
    }
    return q;
}

/* numeric -> PostgreSQL's own text form (numeric_out): [-]digits[.digits]
 * with exactly dscale fractional digits.  out must hold numeric_text_size()
 * bytes.  Returns the length, or -1 for a malformed value; *special is 1
 * (NaN), 2 (+Inf), 3 (-Inf), else 0; *int_digits counts the significant integer digits
 * (0 when |value| < 1) and *scale is dscale. */
static Py_ssize_t numeric_text_size(const unsigned char *b, Py_ssize_t n) {
    if (n < 8) return 16;
    int16_t weight = (int16_t)rd16(b + 2);
    /* sign, integer groups, point, dscale digits, the last group's overrun */
    return 1 + 4 * (Py_ssize_t)(weight >= 0 ? weight + 1 : 1) + 1 + rd16(b + 6) + 4;
}

static Py_ssize_t numeric_to_text(const unsigned char *b, Py_ssize_t n, char *out,
                                  int *special, int *int_digits, int *scale) {
    if (n < 8) return -1;
    uint16_t ndigits = rd16(b);
    int16_t weight = (int16_t)rd16(b + 2);
    uint16_t sign = rd16(b + 4);
    uint16_t dscale = rd16(b + 6);
    *special = 0;
    *int_digits = 0;
    *scale = dscale;
    if (sign == 0xC000) { *special = 1; return 0; }
    if (sign == 0xD000) { *special = 2; return 0; }
    if (sign == 0xF000) { *special = 3; return 0; }
    if (sign != 0x0000 && sign != 0x4000) return -1;
    if (n != 8 + 2 * (Py_ssize_t)ndigits) return -1;
    const unsigned char *d = b + 8;
    for (int i = 0; i < ndigits; i++)
        if (rd16(d + 2 * i) > 9999) return -1;
    char *q = out;
    if (sign == 0x4000 && ndigits > 0) *q++ = '-';
    if (weight < 0) {
        *q++ = '0';
    } else {
        char *start = q;
        for (int i = 0; i <= weight; i++) {
            int v = i < ndigits ? rd16(d + 2 * i) : 0;
            int d1 = v / 1000, d2 = v / 100 % 10, d3 = v / 10 % 10;
            int put = i > 0;  /* leading zeros of the first group go */
            put |= d1 > 0;
            if (put) *q++ = (char)('0' + d1);
            put |= d2 > 0;
            if (put) *q++ = (char)('0' + d2);
            put |= d3 > 0;
            if (put) *q++ = (char)('0' + d3);
            *q++ = (char)('0' + v % 10);
        }
        *int_digits = (q - start == 1 && *start == '0') ? 0 : (int)(q - start);
    }
    if (dscale > 0) {
        *q++ = '.';
        char *end = q + dscale;
        for (int i = weight + 1; q < end; i++) {
            int v = (i >= 0 && i < ndigits) ? rd16(d + 2 * i) : 0;
            q = put_digits(q, v, 4);
        }
        q = end;
    }
    return q - out;
}

/* The checks asyncpg makes before a timestamp becomes a datetime, applied
 * to microseconds since 1970: infinities become datetime's max and min.
 * Returns 0, or -1 with asyncpg's OverflowError set. */
static int timestamp_us(const unsigned char *b, int64_t *out) {
    int64_t ts = (int64_t)rd64(b);
    if (ts == INT64_MAX) *out = DT_MAX_US;
    else if (ts == INT64_MIN) *out = DT_MIN_US;
    else if (ts > DT_MAX_US - PG_EPOCH_US || ts < DT_MIN_US - PG_EPOCH_US) {
        PyErr_SetString(PyExc_OverflowError, "date value out of range");
        return -1;
    } else *out = ts + PG_EPOCH_US;
    return 0;
}

/* date -> days since 1970, as asyncpg's date (infinities clamped).
 * Returns 0, or -1 with asyncpg's error set. */
static int date_days(const unsigned char *b, int64_t *out) {
    int32_t v = (int32_t)rd32(b);
    if (v == INT32_MAX) *out = DATE_MAX_DAYS;
    else if (v == INT32_MIN) *out = DATE_MIN_DAYS;
    else {
        *out = (int64_t)v + PG_EPOCH_DAYS;
        if (*out < DATE_MIN_DAYS || *out > DATE_MAX_DAYS) {
            PyObject *tmp = make_date(b);  /* sets asyncpg's error */
            Py_XDECREF(tmp);
            return -1;
        }
    }
    return 0;
}

/* interval -> microseconds, as the record path's timedelta64[us].
 * Returns 0, or -1 with the error the record path raises set. */
static int interval_us(const unsigned char *b, int64_t *out) {
    int64_t days, us, total;
    interval_parts(b, &days, &us);
    if (days > 999999999 || days < -999999999 ||
        __builtin_mul_overflow(days, US_PER_DAY, &total) ||
        __builtin_add_overflow(total, us, &total) || total == NAT) {
        PyObject *tmp = make_timedelta(b);
        if (tmp != NULL) {
            Py_DECREF(tmp);
            PyErr_SetString(PyExc_OverflowError, "interval out of range for timedelta64[us]");
        }
        return -1;
    }
    *out = total;
    return 0;
}

/* time of day in microseconds; asyncpg refuses 24:00:00 */
static int time_us(const unsigned char *b, int64_t *out) {
    int64_t us = (int64_t)rd64(b);
    if (us < 0 || us >= US_PER_DAY) {
        PyObject *tmp = make_time(b, Py_None);  /* sets asyncpg's ValueError */
        if (tmp != NULL) {
            Py_DECREF(tmp);
            PyErr_SetString(PyExc_ValueError, "time of day out of range");
        }
        return -1;
    }
    *out = us;
    return 0;
}

static int check_utf8(const unsigned char *b, Py_ssize_t n) {
    if (utf8_valid(b, n)) return 0;
    PyObject *tmp = make_str(b, n);  /* raises UnicodeDecodeError */
    if (tmp == NULL) return -1;
    Py_DECREF(tmp);
    return 0;  /* utf8_valid refused what the decoder takes: trust the decoder */
}

/* Whether an error is fatal (the stream is malformed, or memory ran out)
 * rather than a value to defer. */
static int fatal_error(void) {
    return PyErr_ExceptionMatches(ProtocolError) || PyErr_ExceptionMatches(PyExc_MemoryError);
}

/* ------------------------------------------------------------------------ */
/* arrow layout                                                              */

static int arrow_width(int kind) {
    switch (kind) {
    case CK_BOOL: return W_BITS;
    case CK_INT2: return 2;
    case CK_INT4: case CK_FLOAT4: case CK_DATE: return 4;
    case CK_INT8: case CK_OID: case CK_FLOAT8: case CK_NUMERIC_FLOAT: case CK_TIMESTAMP:
    case CK_TIMESTAMPTZ: case CK_INTERVAL: case CK_TIME:
        return 8;
    case CK_UUID: return 16;
    case CK_TEXT: case CK_NUMERIC: case CK_TIMETZ: case CK_BYTEA: case CK_JSON: case CK_JSONB:
        return W_VAR;
    case CK_ARRAY: return W_LIST;
    case CK_VOID: return W_NONE;
    default: return INT32_MIN;
    }
}

static void acol_free(ArrowCol *c) {
    if (c == NULL) return;
    PyMem_RawFree(c->validity);
    PyMem_RawFree(c->values);
    PyMem_RawFree(c->data);
    for (int d = 0; d < ARRAY_MAXDIM; d++) PyMem_RawFree(c->levels[d]);
    if (c->child != NULL) {
        acol_free(c->child);
        PyMem_Free(c->child);
    }
}

/* Returns 0, 1 for a kind the layout does not take, -1 on memory errors. */
static int acol_init(ArrowCol *c, int kind, int elem_kind, uint32_t elem_oid) {
    c->kind = kind;
    c->width = arrow_width(kind);
    if (c->width == INT32_MIN) return 1;
    if (kind != CK_ARRAY) return 0;
    if (arrow_width(elem_kind) == INT32_MIN || elem_kind == CK_ARRAY || elem_kind == CK_VOID ||
        elem_kind == CK_NUMERIC_FLOAT)
        return 1;
    c->elem_oid = elem_oid;
    c->child = PyMem_Calloc(1, sizeof(ArrowCol));
    if (c->child == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return acol_init(c->child, elem_kind, 0, 0);
}

static int grow_bits(uint8_t **bits, Py_ssize_t old_cap, Py_ssize_t new_cap) {
    size_t obytes = (size_t)(old_cap + 7) / 8, nbytes = (size_t)(new_cap + 7) / 8;
    uint8_t *m = PyMem_RawRealloc(*bits, nbytes);
    if (m == NULL) return -1;
    memset(m + obytes, 0, nbytes - obytes);  /* NULLs and false stay 0 bits */
    *bits = m;
    return 0;
}

/* Room for one more value. */
static int acol_reserve(ArrowCol *c) {
    if (c->len < c->cap) return 0;
    Py_ssize_t ncap = c->cap ? c->cap * 2 : (c->hint > 1024 ? c->hint : 1024);
    if (c->width != W_NONE) {
        if (grow_bits(&c->validity, c->cap, ncap) < 0) goto nomem;
        if (c->width == W_BITS) {
            if (grow_bits((uint8_t **)&c->values, c->cap, ncap) < 0) goto nomem;
        } else if (c->width == W_VAR) {
            char *v = PyMem_RawRealloc(c->values, (size_t)(ncap + 1) * 8);
            if (v == NULL) goto nomem;
            if (c->cap == 0) ((int64_t *)v)[0] = 0;
            c->values = v;
        } else if (c->width == W_LIST) {
            int32_t *v = PyMem_RawRealloc(c->levels[0], (size_t)(ncap + 1) * 4);
            if (v == NULL) goto nomem;
            if (c->cap == 0) v[0] = 0;
            c->levels[0] = v;
        } else {
            char *v = PyMem_RawRealloc(c->values, (size_t)ncap * (size_t)c->width);
            if (v == NULL) goto nomem;
            c->values = v;
        }
    }
    c->cap = ncap;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

/* Room for `extra` more bytes of variable-width data; returns where they go
 * (never NULL on success, also for 0 bytes). */
static char *acol_data_reserve(ArrowCol *c, Py_ssize_t extra) {
    if (c->data == NULL || c->data_len + extra > c->data_cap) {
        Py_ssize_t ncap = c->data_cap ? c->data_cap : (c->data_hint > 65536 ? c->data_hint : 65536);
        while (ncap < c->data_len + extra) ncap = ncap + ncap / 2 + 1;
        char *d = PyMem_RawRealloc(c->data, (size_t)ncap);
        if (d == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        c->data = d;
        c->data_cap = ncap;
    }
    return c->data + c->data_len;
}

/* Append a NULL (room reserved by the caller). */
static void acol_put_null(ArrowCol *c) {
    Py_ssize_t r = c->len;
    if (c->width > 0) memset(c->values + r * c->width, 0, (size_t)c->width);
    else if (c->width == W_VAR) ((int64_t *)c->values)[r + 1] = c->data_len;
    else if (c->width == W_LIST) c->levels[0][r + 1] = c->levels[0][r];
    c->null_count++;
    c->len++;
}

static int acol_null(ArrowCol *c) {
    if (acol_reserve(c) < 0) return -1;
    acol_put_null(c);
    return 0;
}

/* Mark the value just written at row len valid and count it. */
static inline void acol_commit(ArrowCol *c) {
    if (c->width == W_VAR) ((int64_t *)c->values)[c->len + 1] = c->data_len;
    set_bit(c->validity, c->len);
    c->len++;
}

/* Append one list of `count` items at array level d (d >= 1). */
static int level_push(ArrowCol *c, int d, int64_t count) {
    if (c->level_len[d] + 2 > c->level_cap[d]) {
        Py_ssize_t ncap = c->level_cap[d] ? c->level_cap[d] * 2 : 1024;
        int32_t *v = PyMem_RawRealloc(c->levels[d], (size_t)ncap * 4);
        if (v == NULL) { PyErr_NoMemory(); return -1; }
        if (c->level_cap[d] == 0) v[0] = 0;
        c->levels[d] = v;
        c->level_cap[d] = ncap;
    }
    int32_t *v = c->levels[d];
    Py_ssize_t k = c->level_len[d];
    if (count > INT32_MAX - v[k]) {
        PyErr_SetString(PyExc_MemoryError, "too many array elements in one batch");
        return -1;
    }
    v[k + 1] = v[k] + (int32_t)count;
    c->level_len[d]++;
    return 0;
}

static int acol_value(ParserObject *p, ArrowCol *c, const unsigned char *b, int32_t n);

/* One array value: its dimensions become list levels, its elements values
 * of the element column.  Room for the row is reserved by the caller. */
static int acol_array(ParserObject *p, ArrowCol *c, const unsigned char *b, int32_t n) {
    if (n < 12) return protocol_error("malformed array");
    int32_t ndims = (int32_t)rd32(b);
    if (ndims == 0) {  /* '{}' is an empty list whatever the dimensions */
        c->levels[0][c->len + 1] = c->levels[0][c->len];
        return 0;
    }
    if (ndims < 0 || ndims > ARRAY_MAXDIM || n < 12 + 8 * (Py_ssize_t)ndims)
        return protocol_error("malformed array header");
    if (rd32(b + 8) != c->elem_oid) return protocol_error("unexpected array element type");
    int64_t dims[ARRAY_MAXDIM], total = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = (int32_t)rd32(b + 12 + 8 * i);
        if (dims[i] < 0) return protocol_error("malformed array dimension");
        total *= dims[i];
        if (total > n) return protocol_error("malformed array dimension");
    }
    if (c->ndims == 0) {
        c->ndims = ndims;
    } else if (c->ndims != ndims) {
        PyErr_Format(PyExc_ValueError,
                     "arrays of %d and of %d dimensions in one column cannot be exported "
                     "as lists", c->ndims, ndims);
        return -1;
    }
    if ((int64_t)c->levels[0][c->len] + dims[0] > INT32_MAX) {
        PyErr_SetString(PyExc_MemoryError, "too many array elements in one batch");
        return -1;
    }
    c->levels[0][c->len + 1] = c->levels[0][c->len] + (int32_t)dims[0];
    int64_t lists = dims[0];
    for (int d = 1; d < ndims; d++) {
        for (int64_t i = 0; i < lists; i++)
            if (level_push(c, d, dims[d]) < 0) return -1;
        lists *= dims[d];
    }
    const unsigned char *q = b + 12 + 8 * ndims, *end = b + n;
    for (int64_t i = 0; i < total; i++) {
        if (end - q < 4) return protocol_error("truncated array");
        int32_t len = (int32_t)rd32(q);
        q += 4;
        if (len == -1) {
            if (acol_null(c->child) < 0) return -1;
            continue;
        }
        if (len < 0 || end - q < len) return protocol_error("truncated array");
        if (acol_value(p, c->child, q, len) < 0) return -1;
        q += len;
    }
    return 0;
}

/* Decode a non-NULL value into row len (reserved).  Returns 0, or -1 with
 * an exception set: fatal ones, and values asyncpg would refuse. */
static int acol_decode(ParserObject *p, ArrowCol *c, const unsigned char *b, int32_t n) {
    Py_ssize_t r = c->len;
    int64_t v;
    switch (c->kind) {
    case CK_BOOL:
        if (n != 1) goto badlen;
        if (b[0]) set_bit((uint8_t *)c->values, r);
        return 0;
    case CK_INT2:
        if (n != 2) goto badlen;
        ((int16_t *)c->values)[r] = (int16_t)rd16(b);
        return 0;
    case CK_INT4:
    case CK_FLOAT4:  /* the bits as they are */
        if (n != 4) goto badlen;
        ((uint32_t *)c->values)[r] = rd32(b);
        return 0;
    case CK_INT8:
    case CK_FLOAT8:
        if (n != 8) goto badlen;
        ((uint64_t *)c->values)[r] = rd64(b);
        return 0;
    case CK_OID:
        if (n != 4) goto badlen;
        ((int64_t *)c->values)[r] = (int64_t)rd32(b);
        return 0;
    case CK_NUMERIC_FLOAT: {
        double f;
        if (numeric_to_double(b, n, &f) < 0) return -1;
        ((double *)c->values)[r] = f;
        return 0;
    }
    case CK_TIMESTAMP:
    case CK_TIMESTAMPTZ:
        if (n != 8) goto badlen;
        if (timestamp_us(b, &v) < 0) return -1;
        ((int64_t *)c->values)[r] = v;
        return 0;
    case CK_DATE:
        if (n != 4) goto badlen;
        if (date_days(b, &v) < 0) return -1;
        ((int32_t *)c->values)[r] = (int32_t)v;
        return 0;
    case CK_INTERVAL:
        if (n != 16) goto badlen;
        if (interval_us(b, &v) < 0) return -1;
        ((int64_t *)c->values)[r] = v;
        return 0;
    case CK_TIME:
        if (n != 8) goto badlen;
        if (time_us(b, &v) < 0) return -1;
        ((int64_t *)c->values)[r] = v;
        return 0;
    case CK_UUID:
        if (n != 16) goto badlen;
        memcpy(c->values + 16 * r, b, 16);
        return 0;
    case CK_JSONB:
        if (n < 1) goto badlen;
        if (b[0] != 1) {
            PyErr_Format(PyExc_ValueError, "unexpected JSONB format: %d", b[0]);
            return -1;
        }
        b++;
        n--;
        /* fall through - the rest is JSON text */
    case CK_TEXT:
    case CK_JSON:
        if (check_utf8(b, n) < 0) return -1;
        /* fall through */
    case CK_BYTEA: {
        char *q = acol_data_reserve(c, n);
        if (q == NULL) return -1;
        memcpy(q, b, (size_t)n);
        c->data_len += n;
        return 0;
    }
    case CK_NUMERIC: {
        char *q = acol_data_reserve(c, numeric_text_size(b, n));
        if (q == NULL) return -1;
        int special, int_digits, scale;
        Py_ssize_t len = numeric_to_text(b, n, q, &special, &int_digits, &scale);
        if (len < 0) return protocol_error("malformed numeric value");
        if (special) {
            /* NaN and the infinities have no decimal form */
            acol_put_null(c);
            return 1;
        }
        c->data_len += len;
        if (scale > c->max_scale) c->max_scale = scale;
        if (int_digits > c->max_int_digits) c->max_int_digits = int_digits;
        return 0;
    }
    case CK_TIMETZ: {
        if (n != 12) goto badlen;
        if (time_us(b, &v) < 0) return -1;
        char *q = acol_data_reserve(c, 24);
        if (q == NULL) return -1;
        c->data_len += put_timetz(q, b) - q;
        return 0;
    }
    case CK_ARRAY:
        return acol_array(p, c, b, n);
    case CK_VOID:
        acol_put_null(c);
        return 1;
    default:
        return protocol_error("unknown column kind");
    }
badlen:
    return protocol_error("unexpected field length");
}

/* Append a non-NULL value.  Returns 0, or -1 on a fatal error; a value
 * asyncpg would refuse is deferred and stored as NULL. */
static int acol_value(ParserObject *p, ArrowCol *c, const unsigned char *b, int32_t n) {
    if (acol_reserve(c) < 0) return -1;
    Py_ssize_t data_len = c->data_len;
    int rc = acol_decode(p, c, b, n);
    if (rc > 0) return 0;  /* stored as NULL already */
    if (rc == 0) {
        acol_commit(c);
        return 0;
    }
    if (fatal_error()) return -1;
    defer_error(p);
    c->data_len = data_len;
    acol_put_null(c);
    return 0;
}

/* The batch's buffers as (length, null_count, validity, values, data,
 * max_scale, max_int_digits, levels, child); the column starts afresh,
 * sized like this batch. */
static PyObject *acol_take(ArrowCol *c) {
    Py_ssize_t n = c->len;
    PyObject *child = NULL, *validity = NULL, *values = NULL, *data = NULL, *levels = NULL;
    PyObject *r = NULL;
    if (c->child != NULL) {
        child = acol_take(c->child);
        if (child == NULL) return NULL;
    } else {
        child = Py_NewRef(Py_None);
    }
    if (c->width == W_NONE || c->null_count == 0) {
        validity = Py_NewRef(Py_None);
    } else {
        validity = buffer_adopt((char **)&c->validity, (n + 7) / 8);
        if (validity == NULL) goto done;
    }
    if (c->width == W_VAR && c->values == NULL) {  /* no rows: one offset */
        c->values = PyMem_RawCalloc(1, 8);
        if (c->values == NULL) { PyErr_NoMemory(); goto done; }
    }
    if (c->width == W_BITS) values = buffer_adopt(&c->values, (n + 7) / 8);
    else if (c->width == W_VAR) values = buffer_adopt(&c->values, (n + 1) * 8);
    else if (c->width > 0) values = buffer_adopt(&c->values, n * c->width);
    else values = Py_NewRef(Py_None);
    if (values == NULL) goto done;
    data = c->width == W_VAR ? buffer_adopt(&c->data, c->data_len) : Py_NewRef(Py_None);
    if (data == NULL) goto done;
    if (c->width == W_LIST) {
        int nlevels = c->ndims > 0 ? c->ndims : 1;
        levels = PyTuple_New(nlevels);
        if (levels == NULL) goto done;
        for (int d = 0; d < nlevels; d++) {
            Py_ssize_t count = d == 0 ? n : c->level_len[d];
            if (c->levels[d] == NULL) {
                c->levels[d] = PyMem_RawCalloc(1, 4);
                if (c->levels[d] == NULL) { PyErr_NoMemory(); goto done; }
            }
            PyObject *buf = buffer_adopt((char **)&c->levels[d], (count + 1) * 4);
            if (buf == NULL) goto done;
            PyTuple_SET_ITEM(levels, d, buf);
        }
    } else {
        levels = PyTuple_New(0);
        if (levels == NULL) goto done;
    }
    r = Py_BuildValue("(nnOOOiiOO)", n, c->null_count, validity, values, data, c->max_scale,
                      c->max_int_digits, levels, child);
    if (r == NULL) goto done;
    PyMem_RawFree(c->validity);
    c->validity = NULL;
    for (int d = 0; d < ARRAY_MAXDIM; d++) {
        PyMem_RawFree(c->levels[d]);
        c->levels[d] = NULL;
        c->level_len[d] = c->level_cap[d] = 0;
    }
    c->hint = n;
    c->data_hint = c->data_len;
    c->len = c->cap = c->null_count = 0;
    c->data_len = c->data_cap = 0;
    c->max_scale = c->max_int_digits = 0;
done:
    Py_XDECREF(child);
    Py_XDECREF(validity);
    Py_XDECREF(values);
    Py_XDECREF(data);
    Py_XDECREF(levels);
    return r;
}

static int row_arrow(ParserObject *p, const unsigned char *s, int nf) {
    for (int i = 0; i < nf; i++) {
        ArrowCol *c = &p->acols[i];
        int32_t fl = (int32_t)rd32(s);
        s += 4;
        if (fl == -1) {
            if (acol_null(c) < 0) return -1;
            continue;
        }
        if (acol_value(p, c, s, fl) < 0) return -1;
        s += fl;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* jsonl layout                                                              */

/* Room for `extra` more bytes of output; returns where they go (never NULL
 * on success). */
static char *out_reserve(ParserObject *p, Py_ssize_t extra) {
    if (p->out == NULL || p->out_len + extra > p->out_cap) {
        Py_ssize_t ncap = p->out_cap ? p->out_cap : (p->out_hint > 65536 ? p->out_hint : 65536);
        while (ncap < p->out_len + extra) ncap = ncap + ncap / 2 + 1;
        char *o = PyMem_RawRealloc(p->out, (size_t)ncap);
        if (o == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        p->out = o;
        p->out_cap = ncap;
    }
    return p->out + p->out_len;
}

static int out_bytes(ParserObject *p, const char *s, Py_ssize_t n) {
    char *q = out_reserve(p, n);
    if (q == NULL) return -1;
    memcpy(q, s, (size_t)n);
    p->out_len += n;
    return 0;
}

/* s as a JSON string, UTF-8 kept as it is */
static int out_string(ParserObject *p, const unsigned char *s, Py_ssize_t n) {
    char *q = out_reserve(p, 2 + 6 * n);
    if (q == NULL) return -1;
    *q++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            *q++ = (char)ch;
            continue;
        }
        *q++ = '\\';
        switch (ch) {
        case '"': *q++ = '"'; break;
        case '\\': *q++ = '\\'; break;
        case '\n': *q++ = 'n'; break;
        case '\r': *q++ = 'r'; break;
        case '\t': *q++ = 't'; break;
        case '\b': *q++ = 'b'; break;
        case '\f': *q++ = 'f'; break;
        default:
            memcpy(q, "u00", 3);
            q[3] = HEX[ch >> 4];
            q[4] = HEX[ch & 15];
            q += 5;
        }
    }
    *q++ = '"';
    p->out_len = q - p->out;
    return 0;
}

/* A float as Python's repr() writes it, which reads back exactly; NaN and
 * the infinities have no JSON form and become null. */
static int out_double(ParserObject *p, double v, int single) {
    if (!isfinite(v)) return out_bytes(p, "null", 4);
    if (fabs(v) < 1e16 && v == (double)(int64_t)v) {
        /* integral values, common in practice, skip dtoa: repr gives "n.0" */
        char *q = out_reserve(p, 24);
        if (q == NULL) return -1;
        if (v == 0 && signbit(v)) *q++ = '-';
        q = put_int(q, (int64_t)v);
        memcpy(q, ".0", 2);
        p->out_len = q + 2 - p->out;
        return 0;
    }
    char *s = NULL;
    if (single) {
        /* the shortest form that reads back as the same float4 */
        for (int digits = 1; digits <= 9; digits++) {
            s = PyOS_double_to_string(v, 'g', digits, Py_DTSF_ADD_DOT_0, NULL);
            if (s == NULL) return -1;
            if (digits == 9 || (float)PyOS_string_to_double(s, NULL, NULL) == (float)v) break;
            PyMem_Free(s);
        }
    } else {
        s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (s == NULL) return -1;
    }
    int rc = out_bytes(p, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

/* pandas' ISO 8601 form of a timedelta, as DataFrame.to_json writes it:
 * P<days>DT<h>H<m>M<s>[.mmm[uuu]]S with the days floored */
static char *put_duration(char *q, int64_t us) {
    int64_t days = floordiv64(us, US_PER_DAY);
    int64_t rest = us - days * US_PER_DAY;
    int64_t secs = rest / 1000000, frac = rest % 1000000;
    *q++ = 'P';
    q = put_int(q, days);
    memcpy(q, "DT", 2);
    q = put_int(q + 2, secs / 3600);
    *q++ = 'H';
    q = put_int(q, secs / 60 % 60);
    *q++ = 'M';
    q = put_int(q, secs % 60);
    if (frac) {
        *q++ = '.';
        q = put_digits(q, frac / 1000, 3);
        if (frac % 1000) q = put_digits(q, frac % 1000, 3);
    }
    *q++ = 'S';
    return q;
}

static int jsonl_value(ParserObject *p, int kind, int elem_kind, uint32_t elem_oid,
                       const unsigned char *b, int32_t n);

/* An array as nested JSON arrays, one level per dimension. */
static int jsonl_array(ParserObject *p, int elem_kind, uint32_t elem_oid,
                       const unsigned char *b, int32_t n) {
    if (n < 12) return protocol_error("malformed array");
    int32_t ndims = (int32_t)rd32(b);
    if (ndims == 0) return out_bytes(p, "[]", 2);
    if (ndims < 0 || ndims > ARRAY_MAXDIM || n < 12 + 8 * (Py_ssize_t)ndims)
        return protocol_error("malformed array header");
    if (rd32(b + 8) != elem_oid) return protocol_error("unexpected array element type");
    int64_t dims[ARRAY_MAXDIM], total = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = (int32_t)rd32(b + 12 + 8 * i);
        if (dims[i] < 0) return protocol_error("malformed array dimension");
        total *= dims[i];
        if (total > n) return protocol_error("malformed array dimension");
    }
    if (total == 0) return out_bytes(p, "[]", 2);
    const unsigned char *q = b + 12 + 8 * ndims, *end = b + n;
    int64_t index[ARRAY_MAXDIM] = {0};
    for (int64_t i = 0; i < total; i++) {
        /* open a bracket for every dimension whose index is back at 0 */
        int opens = 0;
        while (opens < ndims && index[ndims - 1 - opens] == 0) opens++;
        if (i > 0 && out_bytes(p, ",", 1) < 0) return -1;
        for (int k = 0; k < (i == 0 ? ndims : opens); k++)
            if (out_bytes(p, "[", 1) < 0) return -1;
        if (end - q < 4) return protocol_error("truncated array");
        int32_t len = (int32_t)rd32(q);
        q += 4;
        if (len == -1) {
            if (out_bytes(p, "null", 4) < 0) return -1;
        } else {
            if (len < 0 || end - q < len) return protocol_error("truncated array");
            if (jsonl_value(p, elem_kind, 0, 0, q, len) < 0) return -1;
            q += len;
        }
        /* advance the index like an odometer, closing finished dimensions */
        for (int d = ndims - 1; d >= 0; d--) {
            if (++index[d] < dims[d]) break;
            index[d] = 0;
            if (out_bytes(p, "]", 1) < 0) return -1;
        }
    }
    return 0;
}

/* Append a non-NULL value as JSON.  Returns 0, or -1 with an exception set:
 * fatal ones, and values asyncpg would refuse. */
static int jsonl_decode(ParserObject *p, int kind, int elem_kind, uint32_t elem_oid,
                        const unsigned char *b, int32_t n) {
    char *q;
    int64_t v;
    switch (kind) {
    case CK_BOOL:
        if (n != 1) goto badlen;
        return b[0] ? out_bytes(p, "true", 4) : out_bytes(p, "false", 5);
    case CK_INT2:
    case CK_INT4:
    case CK_INT8:
    case CK_OID:
        if (n != (kind == CK_INT2 ? 2 : kind == CK_INT8 ? 8 : 4)) goto badlen;
        v = kind == CK_INT2 ? (int16_t)rd16(b)
            : kind == CK_INT4 ? (int32_t)rd32(b)
            : kind == CK_OID ? (int64_t)rd32(b)
            : (int64_t)rd64(b);
        if ((q = out_reserve(p, 20)) == NULL) return -1;
        p->out_len = put_int(q, v) - p->out;
        return 0;
    case CK_FLOAT4: {
        if (n != 4) goto badlen;
        uint32_t u = rd32(b);
        float f;
        memcpy(&f, &u, 4);
        return out_double(p, (double)f, 1);
    }
    case CK_FLOAT8: {
        if (n != 8) goto badlen;
        uint64_t u = rd64(b);
        double f;
        memcpy(&f, &u, 8);
        return out_double(p, f, 0);
    }
    case CK_NUMERIC_FLOAT: {
        double f;
        if (numeric_to_double(b, n, &f) < 0) return -1;
        return out_double(p, f, 0);
    }
    case CK_NUMERIC: {
        /* as a string, so no reader rounds it through a float */
        if ((q = out_reserve(p, numeric_text_size(b, n) + 2)) == NULL) return -1;
        int special, int_digits, scale;
        Py_ssize_t len = numeric_to_text(b, n, q + 1, &special, &int_digits, &scale);
        if (len < 0) return protocol_error("malformed numeric value");
        if (special == 1) return out_bytes(p, "null", 4);
        if (special == 2) return out_bytes(p, "\"Infinity\"", 10);
        if (special == 3) return out_bytes(p, "\"-Infinity\"", 11);
        q[0] = '"';
        q[len + 1] = '"';
        p->out_len += len + 2;
        return 0;
    }
    case CK_TEXT:
        if (check_utf8(b, n) < 0) return -1;
        return out_string(p, b, n);
    case CK_JSONB:
        if (n < 1) goto badlen;
        if (b[0] != 1) {
            PyErr_Format(PyExc_ValueError, "unexpected JSONB format: %d", b[0]);
            return -1;
        }
        b++;
        n--;
        /* fall through */
    case CK_JSON: {
        if (check_utf8(b, n) < 0) return -1;
        if ((q = out_reserve(p, n)) == NULL) return -1;
        /* nested as it is; a line break can only be whitespace in JSON text
         * and would end the line early */
        for (int32_t i = 0; i < n; i++) q[i] = (b[i] == '\n' || b[i] == '\r') ? ' ' : (char)b[i];
        p->out_len += n;
        return 0;
    }
    case CK_TIMESTAMP:
    case CK_TIMESTAMPTZ: {
        if (n != 8) goto badlen;
        if (timestamp_us(b, &v) < 0) return -1;
        if ((q = out_reserve(p, 40)) == NULL) return -1;
        /* timestamptz in the session's zone, as CSV has it; in UTC where
         * there is no zone, for the infinities (datetime's max and min),
         * and where the local time would leave datetime's years */
        int zoned = kind == CK_TIMESTAMPTZ && p->zone_n > 0 && v != DT_MAX_US && v != DT_MIN_US;
        int32_t east = zoned ? zone_offset(p, v) : 0;
        int64_t local = v + (int64_t)east * 1000000;
        if (zoned && (local > DT_MAX_US || local < DT_MIN_US)) zoned = 0, local = v;
        int64_t days = floordiv64(local, US_PER_DAY);
        char *e = q;
        *e++ = '"';
        e = put_date(e, days);
        *e++ = 'T';
        e = put_time(e, local - days * US_PER_DAY, 1);
        if (zoned) e = put_offset(e, east);
        else if (kind == CK_TIMESTAMPTZ) *e++ = 'Z';
        *e++ = '"';
        p->out_len += e - q;
        return 0;
    }
    case CK_DATE: {
        if (n != 4) goto badlen;
        if (date_days(b, &v) < 0) return -1;
        if ((q = out_reserve(p, 12)) == NULL) return -1;
        char *e = q;
        *e++ = '"';
        e = put_date(e, v);
        *e++ = '"';
        p->out_len += e - q;
        return 0;
    }
    case CK_INTERVAL: {
        if (n != 16) goto badlen;
        if (interval_us(b, &v) < 0) return -1;
        if ((q = out_reserve(p, 80)) == NULL) return -1;
        char *e = q;
        *e++ = '"';
        e = put_duration(e, v);
        *e++ = '"';
        p->out_len += e - q;
        return 0;
    }
    case CK_TIME:
    case CK_TIMETZ: {
        if (n != (kind == CK_TIME ? 8 : 12)) goto badlen;
        if (time_us(b, &v) < 0) return -1;
        if ((q = out_reserve(p, 32)) == NULL) return -1;
        char *e = q;
        *e++ = '"';
        e = kind == CK_TIME ? put_time(e, v, 0) : put_timetz(e, b);
        *e++ = '"';
        p->out_len += e - q;
        return 0;
    }
    case CK_UUID: {
        if (n != 16) goto badlen;
        if ((q = out_reserve(p, 38)) == NULL) return -1;
        q[0] = '"';
        put_uuid(q + 1, b);
        q[37] = '"';
        p->out_len += 38;
        return 0;
    }
    case CK_BYTEA: {
        /* PostgreSQL's hex form, as CSV exports write it */
        if ((q = out_reserve(p, 5 + 2 * (Py_ssize_t)n)) == NULL) return -1;
        char *e = q;
        memcpy(e, "\"\\\\x", 4);
        e += 4;
        for (int32_t i = 0; i < n; i++) {
            *e++ = HEX[b[i] >> 4];
            *e++ = HEX[b[i] & 15];
        }
        *e++ = '"';
        p->out_len += e - q;
        return 0;
    }
    case CK_ARRAY:
        return jsonl_array(p, elem_kind, elem_oid, b, n);
    case CK_VOID:
        return out_bytes(p, "null", 4);
    default:
        return protocol_error("unknown column kind");
    }
badlen:
    return protocol_error("unexpected field length");
}

/* Append a non-NULL value.  Returns 0, or -1 on a fatal error; a value
 * asyncpg would refuse is deferred and written as null. */
static int jsonl_value(ParserObject *p, int kind, int elem_kind, uint32_t elem_oid,
                       const unsigned char *b, int32_t n) {
    Py_ssize_t mark = p->out_len;
    if (jsonl_decode(p, kind, elem_kind, elem_oid, b, n) == 0) return 0;
    if (fatal_error()) return -1;
    defer_error(p);
    p->out_len = mark;
    return out_bytes(p, "null", 4);
}

static int row_jsonl(ParserObject *p, const unsigned char *s, int nf) {
    for (int i = 0; i < nf; i++) {
        Column *c = &p->cols[i];
        if (out_bytes(p, p->keys + p->key_offs[i], p->key_offs[i + 1] - p->key_offs[i]) < 0)
            return -1;
        int32_t fl = (int32_t)rd32(s);
        s += 4;
        if (fl == -1) {
            if (out_bytes(p, "null", 4) < 0) return -1;
            continue;
        }
        if (jsonl_value(p, c->kind, c->elem_kind, c->elem_oid, s, fl) < 0) return -1;
        s += fl;
    }
    return out_bytes(p, "}\n", 2);
}

static int row_pandas(ParserObject *p, const unsigned char *s, int nf) {
    if (p->nrows == p->cap && grow_rows(p) < 0) return -1;
    Py_ssize_t r = p->nrows;
    for (int i = 0; i < nf; i++) {
        Column *c = &p->cols[i];
        int32_t fl = (int32_t)rd32(s);
        s += 4;
        if (fl == -1) {
            store_null(c, r);
            continue;
        }
        if (store_value(p, c, r, s, fl) < 0) {
            /* keep the row consistent for dealloc: fill the rest */
            for (int j = i; j < nf; j++) store_null(&p->cols[j], r);
            p->nrows++;
            return -1;
        }
        s += fl;
    }
    return 0;
}

/* Parse as many complete rows as buf holds; returns bytes consumed or -1. */
static Py_ssize_t parse(ParserObject *p, const unsigned char *buf, Py_ssize_t len) {
    const unsigned char *q = buf, *end = buf + len;
    if (p->state == 0) {
        static const unsigned char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xFF, '\r', '\n', 0};
        if (len < 19) return 0;
        if (memcmp(q, sig, 11) != 0) return protocol_error("not a binary COPY stream");
        uint32_t ext = rd32(q + 15);
        if ((Py_ssize_t)ext > len - 19) return 0;
        q += 19 + ext;
        p->state = 1;
    }
    while (p->state == 1) {
        if (end - q < 2) break;
        int16_t nf = (int16_t)rd16(q);
        if (nf == -1) {
            q += 2;
            p->state = 2;
            break;
        }
        if (nf != p->ncols) return protocol_error("unexpected number of fields in a row");
        /* completeness check */
        const unsigned char *s = q + 2;
        int complete = 1;
        for (int i = 0; i < nf; i++) {
            if (end - s < 4) { complete = 0; break; }
            int32_t fl = (int32_t)rd32(s);
            s += 4;
            if (fl == -1) continue;
            if (fl < 0) return protocol_error("negative field length");
            if (end - s < fl) { complete = 0; break; }
            s += fl;
        }
        if (!complete) break;
        int rc = p->layout == CL_ARROW   ? row_arrow(p, q + 2, nf)
                 : p->layout == CL_JSONL ? row_jsonl(p, q + 2, nf)
                                        : row_pandas(p, q + 2, nf);
        if (rc < 0) return -1;
        p->nrows++;
        q = s;
    }
    return q - buf;
}

/* ------------------------------------------------------------------------ */
/* Parser type                                                               */

static int probe_uuid(ParserObject *p) {
    /* Use the direct constructor only if a UUID built by the type's own
     * __init__ carries its bytes at UUID_DATA_OFFSET. */
    PyTypeObject *t = (PyTypeObject *)p->uuid_type;
    if (!PyType_Check(p->uuid_type) ||
        t->tp_basicsize < (Py_ssize_t)(UUID_DATA_OFFSET + 16)) return 0;
    unsigned char raw[16];
    for (int i = 0; i < 16; i++) raw[i] = (unsigned char)(0xA5 ^ (i * 17));
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)raw, 16);
    if (bytes == NULL) return -1;
    PyObject *u = PyObject_CallOneArg(p->uuid_type, bytes);
    if (u == NULL) { Py_DECREF(bytes); PyErr_Clear(); return 0; }
    int ok = Py_TYPE(u) == t && memcmp((char *)u + UUID_DATA_OFFSET, raw, 16) == 0;
    Py_DECREF(u);
    if (ok) {
        /* and a fast-built one compares equal to it */
        PyObject *v = t->tp_new(t, p->empty_tuple, NULL);
        if (v == NULL) { Py_DECREF(bytes); PyErr_Clear(); return 0; }
        memcpy((char *)v + UUID_DATA_OFFSET, raw, 16);
        PyObject *vb = PyObject_GetAttrString(v, "bytes");
        ok = vb != NULL && PyBytes_Check(vb) &&
             PyObject_RichCompareBool(vb, bytes, Py_EQ) == 1;
        Py_XDECREF(vb);
        Py_DECREF(v);
        PyErr_Clear();
    }
    Py_DECREF(bytes);
    return ok;
}

static void Parser_dealloc(ParserObject *p) {
    for (int i = 0; i < p->ncols; i++) {
        Column *c = &p->cols[i];
        if (c->objs != NULL) {
            for (Py_ssize_t r = 0; r < p->nrows; r++) Py_XDECREF(c->objs[r]);
            PyMem_RawFree(c->objs);
        }
        PyMem_RawFree(c->values);
        PyMem_RawFree(c->mask);
        PyMem_RawFree(c->aux);
        PyMem_RawFree(c->validity);
        PyMem_RawFree(c->data);
        PyMem_Free(c->jbuf);
        PyMem_Free(c->jpend);
    }
    PyMem_Free(p->cols);
    if (p->acols != NULL) {
        for (int i = 0; i < p->ncols; i++) acol_free(&p->acols[i]);
        PyMem_Free(p->acols);
    }
    PyMem_RawFree(p->out);
    PyMem_Free(p->keys);
    PyMem_Free(p->key_offs);
    PyMem_Free(p->zone_at);
    PyMem_Free(p->zone_off);
    if (p->dec_cache != NULL) {
        for (int i = 0; i < DEC_CACHE_SIZE; i++) Py_XDECREF(p->dec_cache[i].value);
        PyMem_Free(p->dec_cache);
    }
    if (p->jstr_cache != NULL) {
        for (int i = 0; i < JSTR_CACHE_SIZE; i++) Py_XDECREF(p->jstr_cache[i].value);
        PyMem_Free(p->jstr_cache);
    }
    PyMem_RawFree(p->carry);
    Py_XDECREF(p->err_type);
    Py_XDECREF(p->err_value);
    Py_XDECREF(p->err_tb);
    Py_XDECREF(p->decimal_type);
    Py_XDECREF(p->uuid_type);
    Py_XDECREF(p->json_loads);
    Py_XDECREF(p->json_fallback);
    Py_XDECREF(p->dec_nan);
    Py_XDECREF(p->dec_pinf);
    Py_XDECREF(p->dec_ninf);
    Py_XDECREF(p->tz_cache);
    Py_XDECREF(p->empty_tuple);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *Parser_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"kinds", "elem_kinds", "elem_oids", "decimal_type",
                             "uuid_type", "json_loads", "json_fallback", "layout",
                             "keys", "zone", NULL};
    Py_buffer kinds, elem_kinds;
    PyObject *elem_oids, *decimal_type, *uuid_type, *json_loads, *json_fallback;
    PyObject *keys = Py_None, *zone = Py_None;
    int layout = CL_PANDAS;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*O!OOOO|$iOO", kwlist, &kinds,
                                     &elem_kinds, &PyTuple_Type, &elem_oids,
                                     &decimal_type, &uuid_type, &json_loads,
                                     &json_fallback, &layout, &keys, &zone))
        return NULL;
    ParserObject *p = NULL;
    if (kinds.len != elem_kinds.len || kinds.len != PyTuple_GET_SIZE(elem_oids) ||
        kinds.len > 32767) {
        PyErr_SetString(PyExc_ValueError, "kinds, elem_kinds and elem_oids differ in length");
        goto done;
    }
    if (layout != CL_PANDAS && layout != CL_ARROW && layout != CL_JSONL) {
        PyErr_SetString(PyExc_ValueError, "unknown layout");
        goto done;
    }
    if ((layout == CL_JSONL) != (keys != Py_None) ||
        (keys != Py_None && (!PyTuple_Check(keys) || PyTuple_GET_SIZE(keys) != kinds.len))) {
        PyErr_SetString(PyExc_ValueError, "the jsonl layout (only) takes one key per column");
        goto done;
    }
    p = (ParserObject *)type->tp_alloc(type, 0);
    if (p == NULL) goto done;
    p->ncols = (int)kinds.len;
    p->layout = layout;
    p->cols = PyMem_Calloc((size_t)(p->ncols ? p->ncols : 1), sizeof(Column));
    if (p->cols == NULL) { PyErr_NoMemory(); goto fail; }
    if (layout == CL_ARROW) {
        p->acols = PyMem_Calloc((size_t)(p->ncols ? p->ncols : 1), sizeof(ArrowCol));
        if (p->acols == NULL) { PyErr_NoMemory(); goto fail; }
    }
    for (int i = 0; i < p->ncols; i++) {
        Column *c = &p->cols[i];
        c->kind = ((unsigned char *)kinds.buf)[i];
        c->elem_kind = ((unsigned char *)elem_kinds.buf)[i];
        if (c->kind == CK_ARRAY) {
            c->elem_oid = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(elem_oids, i));
            if (PyErr_Occurred()) goto fail;
        }
        int unsupported;
        if (layout == CL_PANDAS) {
            c->aux_width = aux_width_of(c->kind);
            c->storage = storage_of(c->kind, &c->width);
            unsupported = c->storage == 0 ||
                          (c->kind == CK_ARRAY && (c->elem_kind == CK_ARRAY ||
                                                  storage_of(c->elem_kind, &c->width) == 0 ||
                                                  c->elem_kind == CK_NUMERIC_FLOAT));
            if (c->kind == CK_ARRAY) {
                c->storage = S_OBJECT;
                c->width = sizeof(PyObject *);
            }
        } else {
            /* both export layouts take the same kinds */
            ArrowCol probe = {0};
            unsupported = acol_init(layout == CL_ARROW ? &p->acols[i] : &probe, c->kind,
                                    c->elem_kind, c->elem_oid);
            acol_free(&probe);
            if (unsupported < 0) goto fail;
        }
        if (unsupported) {
            PyErr_Format(PyExc_ValueError, "unsupported kind at column %d", i);
            goto fail;
        }
    }
    if (layout == CL_JSONL) {
        Py_ssize_t total = 0;
        p->key_offs = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(p->ncols + 1));
        if (p->key_offs == NULL) { PyErr_NoMemory(); goto fail; }
        for (int i = 0; i < p->ncols; i++) {
            PyObject *key = PyTuple_GET_ITEM(keys, i);
            if (!PyBytes_Check(key)) {
                PyErr_SetString(PyExc_TypeError, "keys must be bytes");
                goto fail;
            }
            p->key_offs[i] = total;
            total += PyBytes_GET_SIZE(key);
        }
        p->key_offs[p->ncols] = total;
        p->keys = PyMem_Malloc((size_t)(total ? total : 1));
        if (p->keys == NULL) { PyErr_NoMemory(); goto fail; }
        for (int i = 0; i < p->ncols; i++) {
            PyObject *key = PyTuple_GET_ITEM(keys, i);
            memcpy(p->keys + p->key_offs[i], PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
        }
    }
    if (zone != Py_None) {
        /* (transitions: int64s, offsets: int32s, end: int), as
         * pgmagic.results.zones.offset_table gives them */
        Py_buffer at, off;
        long long end;
        if (!PyTuple_Check(zone)) {
            PyErr_SetString(PyExc_TypeError, "zone is (bytes, bytes, int) or None");
            goto fail;
        }
        if (!PyArg_ParseTuple(zone, "y*y*L;zone is (bytes, bytes, int)", &at, &off, &end))
            goto fail;
        Py_ssize_t n = at.len / 8;
        int ok = n > 0 && at.len == n * 8 && off.len == n * 4;
        if (ok) {
            p->zone_at = PyMem_Malloc((size_t)at.len);
            p->zone_off = PyMem_Malloc((size_t)off.len);
            if (p->zone_at != NULL && p->zone_off != NULL) {
                memcpy(p->zone_at, at.buf, (size_t)at.len);
                memcpy(p->zone_off, off.buf, (size_t)off.len);
                p->zone_n = n;
                p->zone_end = (int64_t)end;
            }
        }
        PyBuffer_Release(&at);
        PyBuffer_Release(&off);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "zone: n int64 transitions and n int32 offsets");
            goto fail;
        }
        if (p->zone_n == 0) { PyErr_NoMemory(); goto fail; }
    }
    p->decimal_type = Py_NewRef(decimal_type);
    p->uuid_type = Py_NewRef(uuid_type);
    p->json_loads = json_loads == Py_None ? NULL : Py_NewRef(json_loads);
    p->json_fallback = Py_NewRef(json_fallback);
    p->empty_tuple = PyTuple_New(0);
    p->tz_cache = PyDict_New();
    if (p->empty_tuple == NULL || p->tz_cache == NULL) goto fail;
    int has_numeric = 0;  /* Decimal objects: the pandas layout only */
    for (int i = 0; i < p->ncols && layout == CL_PANDAS; i++)
        has_numeric |= p->cols[i].kind == CK_NUMERIC || p->cols[i].elem_kind == CK_NUMERIC;
    if (has_numeric) {
        p->dec_cache = PyMem_Calloc(DEC_CACHE_SIZE, sizeof(DecCacheEntry));
        if (p->dec_cache == NULL) { PyErr_NoMemory(); goto fail; }
        p->dec_nan = PyObject_CallFunction(decimal_type, "s", "NaN");
        p->dec_pinf = PyObject_CallFunction(decimal_type, "s", "Infinity");
        p->dec_ninf = PyObject_CallFunction(decimal_type, "s", "-Infinity");
        if (!p->dec_nan || !p->dec_pinf || !p->dec_ninf) goto fail;
    }
    int has_json = 0;  /* decoded JSON objects: the pandas layout only */
    for (int i = 0; i < p->ncols && layout == CL_PANDAS; i++) {
        Column *c = &p->cols[i];
        has_json |= c->kind == CK_JSON || c->kind == CK_JSONB || c->elem_kind == CK_JSON ||
                    c->elem_kind == CK_JSONB;
    }
    if (has_json) {
        p->jstr_cache = PyMem_Calloc(JSTR_CACHE_SIZE, sizeof(JstrCacheEntry));
        if (p->jstr_cache == NULL) { PyErr_NoMemory(); goto fail; }
    }
    /* the probe's answer holds for the life of the process and type */
    static PyObject *probed_type = NULL;
    static int probed_fast = 0;
    if (probed_type != uuid_type) {
        int fast = probe_uuid(p);
        if (fast < 0) goto fail;
        Py_XSETREF(probed_type, Py_NewRef(uuid_type));
        probed_fast = fast;
    }
    p->uuid_fast = probed_fast;
    static PyObject *probed_decimal = NULL;
    static int probed_decimal_fast = 0;
    if (has_numeric && probed_decimal != decimal_type) {
        int fast = probe_decimal(decimal_type);
        if (fast < 0) goto fail;
        Py_XSETREF(probed_decimal, Py_NewRef(decimal_type));
        probed_decimal_fast = fast;
    }
    p->dec_fast = has_numeric && probed_decimal_fast;
    goto done;
fail:
    Py_CLEAR(p);
done:
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&elem_kinds);
    return (PyObject *)p;
}

static PyObject *feed_impl(ParserObject *p, PyObject *arg) {
    if (p->finished) {
        PyErr_SetString(PyExc_RuntimeError, "parser already finished");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *data = view.buf;
    Py_ssize_t len = view.len;
    Py_ssize_t used;
    if (p->carry_len > 0) {
        Py_ssize_t need = p->carry_len + len;
        if (need > p->carry_cap) {
            char *c = PyMem_RawRealloc(p->carry, (size_t)need);
            if (c == NULL) { PyBuffer_Release(&view); return PyErr_NoMemory(); }
            p->carry = c;
            p->carry_cap = need;
        }
        memcpy(p->carry + p->carry_len, data, (size_t)len);
        p->carry_len = need;
        used = parse(p, (unsigned char *)p->carry, p->carry_len);
        if (used < 0) { PyBuffer_Release(&view); return NULL; }
        memmove(p->carry, p->carry + used, (size_t)(p->carry_len - used));
        p->carry_len -= used;
    } else {
        used = parse(p, data, len);
        if (used < 0) { PyBuffer_Release(&view); return NULL; }
        Py_ssize_t rest = len - used;
        if (rest > 0) {
            if (rest > p->carry_cap) {
                char *c = PyMem_RawRealloc(p->carry, (size_t)rest);
                if (c == NULL) { PyBuffer_Release(&view); return PyErr_NoMemory(); }
                p->carry = c;
                p->carry_cap = rest;
            }
            memcpy(p->carry, data + used, (size_t)rest);
            p->carry_len = rest;
        }
    }
    PyBuffer_Release(&view);
    if (p->state == 2 && p->carry_len > 0) {
        PyErr_SetString(ProtocolError, "data after the end of the COPY stream");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A stream that does not match the columns (the statement was prepared
 * before the table changed) is not an error to raise in the sink: asyncpg
 * would cancel the COPY, which aborts an open transaction.  The parser
 * drops the rest of the stream instead and finish() raises. */
static PyObject *Parser_feed(ParserObject *p, PyObject *arg) {
    if (p->broken) Py_RETURN_NONE;
    PyObject *r = feed_impl(p, arg);
    if (r == NULL && PyErr_ExceptionMatches(ProtocolError)) {
        Py_CLEAR(p->err_type);
        Py_CLEAR(p->err_value);
        Py_CLEAR(p->err_tb);
        PyErr_Fetch(&p->err_type, &p->err_value, &p->err_tb);
        p->broken = 1;
        p->carry_len = 0;
        Py_RETURN_NONE;
    }
    return r;
}

/* The rows decoded since the last batch, as (nrows, payload): for the arrow
 * layout a list with one acol_take() tuple per column, for jsonl a Buffer
 * of lines.  The next batch starts empty; a failure leaves the columns of
 * unequal lengths, so the parser is finished then. */
static PyObject *take_impl(ParserObject *p) {
    PyObject *payload, *r = NULL;
    if (p->layout == CL_ARROW) {
        payload = PyList_New(p->ncols);
        if (payload == NULL) goto fail;
        for (int i = 0; i < p->ncols; i++) {
            PyObject *item = acol_take(&p->acols[i]);
            if (item == NULL) {
                Py_DECREF(payload);
                goto fail;
            }
            PyList_SET_ITEM(payload, i, item);
        }
    } else {
        p->out_hint = p->out_len;
        payload = buffer_adopt(&p->out, p->out_len);
        if (payload == NULL) goto fail;
        p->out_len = p->out_cap = 0;
    }
    r = Py_BuildValue("(nO)", p->nrows, payload);
    Py_DECREF(payload);
    if (r == NULL) goto fail;
    p->nrows = 0;
    return r;
fail:
    p->finished = 1;
    return NULL;
}

/* item + (aux,): the column's aux buffer appended to its finish() tuple
 * (steals item) */
static PyObject *with_aux(PyObject *item, Column *c, Py_ssize_t n) {
    PyObject *aux = c->aux ? buffer_adopt((char **)&c->aux, n * c->aux_width)
                           : PyBytes_FromStringAndSize("", 0);
    PyObject *tail = aux ? PyTuple_Pack(1, aux) : NULL;
    PyObject *r = tail ? PySequence_Concat(item, tail) : NULL;
    Py_XDECREF(aux);
    Py_XDECREF(tail);
    Py_DECREF(item);
    return r;
}

/* finish() -> list with one tuple per column:
 *   fixed:  ("fixed", values, mask_or_None[, aux])
 *   text:   ("text", validity_or_None, offsets, data, null_count)
 *   object: ("object", None[, aux])   -- move them out with take_objects()
 * aux: intervals' wire bytes, or json null flags (see Column.aux)
 * and for the export layouts the last batch, as take_batch() gives it.
 * Raises the first deferred value error, if any. */
static PyObject *Parser_finish(ParserObject *p, PyObject *Py_UNUSED(ignored)) {
    if (p->finished) {
        PyErr_SetString(PyExc_RuntimeError, "parser already finished");
        return NULL;
    }
    if (!p->broken && (p->state != 2 || p->carry_len != 0)) {
        PyErr_SetString(ProtocolError, "binary COPY stream ended early");
        return NULL;
    }
    for (int i = 0; i < p->ncols && !p->broken; i++)
        if (json_flush(p, &p->cols[i]) < 0) return NULL;
    if (p->err_type != NULL) {
        PyObject *t = p->err_type, *v = p->err_value, *tb = p->err_tb;
        p->err_type = p->err_value = p->err_tb = NULL;
        PyErr_Restore(t, v, tb);
        return NULL;
    }
    if (p->layout != CL_PANDAS) {
        PyObject *r = take_impl(p);
        p->finished = 1;
        return r;
    }
    Py_ssize_t n = p->nrows;
    PyObject *out = PyList_New(p->ncols);
    if (out == NULL) return NULL;
    for (int i = 0; i < p->ncols; i++) {
        Column *c = &p->cols[i];
        PyObject *item = NULL;
        if (c->storage == S_FIXED) {
            PyObject *vals = buffer_adopt(&c->values, n * c->width);
            PyObject *mask = c->mask ? buffer_adopt((char **)&c->mask, n) : Py_NewRef(Py_None);
            if (vals && mask) item = Py_BuildValue("(sOO)", "fixed", vals, mask);
            Py_XDECREF(vals);
            Py_XDECREF(mask);
            if (item && c->aux_width) item = with_aux(item, c, n);
        } else if (c->storage == S_TEXT) {
            if (c->values == NULL) {  /* zero rows */
                c->values = PyMem_RawCalloc(1, 8);
                if (c->values == NULL) { Py_DECREF(out); return PyErr_NoMemory(); }
            }
            PyObject *valid = c->null_count
                                  ? buffer_adopt((char **)&c->validity, (n + 7) / 8)
                                  : Py_NewRef(Py_None);
            PyObject *offs = buffer_adopt(&c->values, (n + 1) * 8);
            PyObject *data = buffer_adopt(&c->data, c->data_len);
            if (valid && offs && data)
                item = Py_BuildValue("(sOOOn)", "text", valid, offs, data, c->null_count);
            Py_XDECREF(valid);
            Py_XDECREF(offs);
            Py_XDECREF(data);
        } else {
            item = Py_BuildValue("(sO)", "object", Py_None);
            if (item && c->aux_width) item = with_aux(item, c, n);
        }
        if (item == NULL) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, item);
    }
    p->finished = 1;
    return out;
}

/* take_objects(i, array): move column i's objects into an object ndarray of
 * exactly nrows items (exported through the buffer protocol, format "O"). */
static PyObject *Parser_take_objects(ParserObject *p, PyObject *args) {
    int i;
    PyObject *arr;
    if (!PyArg_ParseTuple(args, "iO", &i, &arr)) return NULL;
    if (!p->finished || i < 0 || i >= p->ncols || p->cols[i].storage != S_OBJECT ||
        (p->cols[i].objs == NULL && p->nrows > 0)) {
        PyErr_SetString(PyExc_ValueError, "no objects to take for this column");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arr, &view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (view.format == NULL || strcmp(view.format, "O") != 0 ||
        view.itemsize != sizeof(PyObject *) || view.len != p->nrows * (Py_ssize_t)sizeof(PyObject *)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "expected an object array of nrows items");
        return NULL;
    }
    PyObject **dst = view.buf;
    Column *c = &p->cols[i];
    for (Py_ssize_t r = 0; r < p->nrows; r++) {
        PyObject *old = dst[r];
        dst[r] = c->objs[r];
        Py_XDECREF(old);
    }
    PyMem_RawFree(c->objs);
    c->objs = NULL;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* take_batch(): the export layouts' rows so far, as take_impl() gives them.
 * A deferred error is raised at once: an export stops at the first value
 * it cannot write (and keeps the error for finish()). */
static PyObject *Parser_take_batch(ParserObject *p, PyObject *Py_UNUSED(ignored)) {
    if (p->layout == CL_PANDAS) {
        PyErr_SetString(PyExc_ValueError, "take_batch() needs the arrow or jsonl layout");
        return NULL;
    }
    if (p->finished) {
        PyErr_SetString(PyExc_RuntimeError, "parser already finished");
        return NULL;
    }
    if (p->err_type != NULL) {
        PyErr_Restore(Py_NewRef(p->err_type), Py_XNewRef(p->err_value), Py_XNewRef(p->err_tb));
        return NULL;
    }
    return take_impl(p);
}

static PyObject *Parser_get_nrows(ParserObject *p, void *Py_UNUSED(closure)) {
    return PyLong_FromSsize_t(p->nrows);
}

static PyObject *Parser_get_uuid_fast(ParserObject *p, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(p->uuid_fast);
}

static PyObject *Parser_get_decimal_fast(ParserObject *p, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(p->dec_fast);
}

static PyMethodDef Parser_methods[] = {
    {"feed", (PyCFunction)Parser_feed, METH_O, "Parse the complete rows in a chunk."},
    {"finish", (PyCFunction)Parser_finish, METH_NOARGS, "End the stream; return column buffers."},
    {"take_batch", (PyCFunction)Parser_take_batch, METH_NOARGS,
     "Hand out the rows decoded so far (export layouts)."},
    {"take_objects", (PyCFunction)Parser_take_objects, METH_VARARGS,
     "Move an object column into an object ndarray."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Parser_getset[] = {
    {"nrows", (getter)Parser_get_nrows, NULL, "Rows decoded so far (in this batch).", NULL},
    {"uuid_fast", (getter)Parser_get_uuid_fast, NULL, "Direct UUID construction in use.", NULL},
    {"decimal_fast", (getter)Parser_get_decimal_fast, NULL,
     "Direct Decimal construction in use (numeric columns only).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ParserType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pgmagic._pgcopy.Parser",
    .tp_basicsize = sizeof(ParserObject),
    .tp_dealloc = (destructor)Parser_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Streaming parser of PostgreSQL binary COPY output.",
    .tp_methods = Parser_methods,
    .tp_getset = Parser_getset,
    .tp_new = Parser_new,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_pgcopy", "PostgreSQL binary COPY to column buffers.", -1, NULL,
};

PyMODINIT_FUNC PyInit__pgcopy(void) {
    jd_init_class();
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    if (PyType_Ready(&BufferType) < 0 || PyType_Ready(&ParserType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    ProtocolError = PyErr_NewException("pgmagic._pgcopy.ProtocolError", PyExc_ValueError, NULL);
    if (ProtocolError == NULL ||
        PyModule_AddObjectRef(m, "ProtocolError", ProtocolError) < 0 ||
        PyModule_AddObjectRef(m, "Parser", (PyObject *)&ParserType) < 0 ||
        PyModule_AddObjectRef(m, "Buffer", (PyObject *)&BufferType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
