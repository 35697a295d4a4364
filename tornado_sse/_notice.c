/* The listener's fast path for one trigger notification (issue 21).
 *
 * Checks the proof of origin and builds the Event of a notification in the
 * shape sql/004's trigger sends, in one call: the same work as
 * Listener._proven plus Event.from_notification, which cost the server more
 * per event than anything else it runs in Python (bench/RESULTS.md, issue 21
 * round 4). It only ever says yes: for anything it does not recognise
 * exactly (a wrong or missing proof, an odd field, an envelope with a line
 * break, a large event sent by id) it returns None and the listener takes
 * its Python path, which decides, counts and logs as before. So this file
 * holds no policy, and tests/test_notice.py checks that every Event it
 * returns is the one the Python path builds from the same payload.
 *
 * The HMAC is computed with the hashlib objects the listener hands in (the
 * key's two pad states, see listener._Mac): no cryptography of our own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <string.h>

#define MAC_LEN 64      /* hex digits of HMAC-SHA256 in front of the body */
#define FIELDS 8        /* id created staff products topic resource rid envelope */
#define MAX_DIGITS 18   /* an id that fits a bigint, with room: 10^18 - 1 */

/* What configure() was given: the topics and resources the Python side
 * knows (events.TOPICS), as the str objects it uses, and the Event class. */
static PyObject *topics;         /* tuple of str */
static PyObject *resources;      /* tuple of str */
static PyTypeObject *event_type; /* a tuple subclass with 11 fields */
static PyObject *s_copy, *s_update, *s_digest;

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')  /* lowercase only: the Python path compares hexdigest() */
        return c - 'a' + 10;
    return -1;
}

/* 1 to MAX_DIGITS ASCII digits; -1 for anything else. */
static long long
digits(const char *p, Py_ssize_t n)
{
    long long v = 0;
    if (n < 1 || n > MAX_DIGITS)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* An audience field: "-" is None, "" the empty set, else digits separated
 * by single commas. NULL without an error set: not in that shape. */
static PyObject *
audience(const char *p, Py_ssize_t n)
{
    if (n == 1 && p[0] == '-')
        Py_RETURN_NONE;
    /* A new object on Python >= 3.10 (no empty singleton), so filling it is
     * allowed, as PySet_Add documents for brand-new frozensets. */
    PyObject *set = PyFrozenSet_New(NULL);
    if (set == NULL)
        return NULL;
    Py_ssize_t start = 0;
    while (n > 0 && start <= n) {
        Py_ssize_t end = start;
        while (end < n && p[end] != ',')
            end++;
        long long v = digits(p + start, end - start);
        if (v < 0)
            goto bad;
        PyObject *id = PyLong_FromLongLong(v);
        if (id == NULL || PySet_Add(set, id) < 0) {
            Py_XDECREF(id);
            goto bad;
        }
        Py_DECREF(id);
        start = end + 1;
    }
    return set;
bad:
    Py_DECREF(set);
    PyErr_Clear();
    return NULL;
}

/* The one of ``names`` (a tuple of str) that equals p[:n], borrowed; NULL if none. */
static PyObject *
known(PyObject *names, const char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(name, &len);
        if (text == NULL) {
            PyErr_Clear();
            return NULL;
        }
        if (len == n && memcmp(text, p, (size_t)n) == 0)
            return name;
    }
    return NULL;
}

/* hash.copy(), .update(data), .digest(): a new reference to the digest or NULL. */
static PyObject *
hashed(PyObject *state, PyObject *data)
{
    PyObject *h = PyObject_CallMethodNoArgs(state, s_copy);
    if (h == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodOneArg(h, s_update, data);
    if (r == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    Py_DECREF(r);
    r = PyObject_CallMethodNoArgs(h, s_digest);
    Py_DECREF(h);
    return r;
}

/* 1 if the lowercase hex ``mac`` is HMAC(body) under the pad states, 0 if
 * not, -1 on an error (set). Compares every byte: constant time. */
static int
proven(PyObject *inner, PyObject *outer, const char *body, Py_ssize_t n, const unsigned char *mac)
{
    PyObject *view = PyMemoryView_FromMemory((char *)body, n, PyBUF_READ);
    if (view == NULL)
        return -1;
    PyObject *first = hashed(inner, view);
    Py_DECREF(view);
    if (first == NULL)
        return -1;
    PyObject *second = hashed(outer, first);
    Py_DECREF(first);
    if (second == NULL)
        return -1;
    if (!PyBytes_Check(second) || PyBytes_GET_SIZE(second) != MAC_LEN / 2) {
        Py_DECREF(second);
        return 0;
    }
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(second);
    unsigned int diff = 0;
    for (int i = 0; i < MAC_LEN / 2; i++) {
        int hi = hexval(mac[2 * i]), lo = hexval(mac[2 * i + 1]);
        diff |= (unsigned int)(hi < 0) | (unsigned int)(lo < 0);  /* not lowercase hex */
        diff |= (((unsigned int)(hi & 15) << 4) | (unsigned int)(lo & 15)) ^ d[i];
    }
    Py_DECREF(second);
    return diff == 0;
}

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *t, *r, *cls;
    if (!PyArg_ParseTuple(args, "O!O!O!:configure", &PyTuple_Type, &t, &PyTuple_Type, &r,
                          &PyType_Type, &cls))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure: the event class must be a tuple");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t) + PyTuple_GET_SIZE(r); i++) {
        PyObject *name = i < PyTuple_GET_SIZE(t) ? PyTuple_GET_ITEM(t, i)
                                                 : PyTuple_GET_ITEM(r, i - PyTuple_GET_SIZE(t));
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "configure: topics and resources are str");
            return NULL;
        }
    }
    Py_INCREF(t);
    Py_XSETREF(topics, t);
    Py_INCREF(r);
    Py_XSETREF(resources, r);
    Py_INCREF(cls);
    Py_XSETREF(event_type, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

/* event(payload, inner, outer): the Event, or None (the Python path decides). */
static PyObject *
event(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "event(payload, inner, outer)");
        return NULL;
    }
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "event: configure() first");
        return NULL;
    }
    PyObject *payload = args[0];
    if (!PyBytes_Check(payload))
        Py_RETURN_NONE;
    const char *all = PyBytes_AS_STRING(payload);
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    if (size <= MAC_LEN + 1 || all[MAC_LEN] != ' ')
        Py_RETURN_NONE;
    const char *body = all + MAC_LEN + 1;
    Py_ssize_t n = size - MAC_LEN - 1;

    /* Split at the first seven spaces; the envelope is the rest. */
    const char *field[FIELDS];
    Py_ssize_t len[FIELDS];
    Py_ssize_t at = 0;
    for (int f = 0; f < FIELDS - 1; f++) {
        const char *space = memchr(body + at, ' ', (size_t)(n - at));
        if (space == NULL)
            Py_RETURN_NONE;
        field[f] = body + at;
        len[f] = space - (body + at);
        at = space - body + 1;
    }
    field[FIELDS - 1] = body + at;
    len[FIELDS - 1] = n - at;

    long long eid = digits(field[0], len[0]);
    long long rid = digits(field[6], len[6]);
    PyObject *topic = known(topics, field[4], len[4]);
    PyObject *resource = known(resources, field[5], len[5]);
    const char *env = field[7];
    Py_ssize_t env_len = len[7];
    if (eid < 0 || rid < 0 || topic == NULL || resource == NULL || env_len < 6
        || memcmp(env, "{\"id\":", 6) != 0 || memchr(env, '\n', (size_t)env_len) != NULL
        || memchr(env, '\r', (size_t)env_len) != NULL || memchr(env, '\0', (size_t)env_len) != NULL)
        Py_RETURN_NONE;
    /* created: the characters of a float8's text, which float() then reads. */
    if (len[1] < 1)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < len[1]; i++) {
        char c = field[1][i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == '+' || c == '-'))
            Py_RETURN_NONE;
    }

    int ok = proven(args[1], args[2], body, n, (const unsigned char *)all);
    if (ok < 0)
        return NULL;
    if (ok == 0)
        Py_RETURN_NONE;

    PyObject *item[11] = {NULL};
    PyObject *text = PyUnicode_FromStringAndSize(field[1], len[1]);
    if (text == NULL)
        return NULL;
    item[6] = PyFloat_FromString(text);
    Py_DECREF(text);
    if (item[6] == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    item[4] = audience(field[2], len[2]);
    item[5] = item[4] == NULL ? NULL : audience(field[3], len[3]);
    item[7] = item[5] == NULL ? NULL : PyUnicode_DecodeUTF8(env, env_len, "strict");
    if (item[7] == NULL) {
        PyErr_Clear();  /* not in the shape, or not UTF-8: the Python path says which */
        goto none;
    }

    Py_ssize_t topic_len;
    const char *topic_text = PyUnicode_AsUTF8AndSize(topic, &topic_len);
    if (topic_text == NULL)
        goto fail;
    char head[48];
    int head_len = snprintf(head, sizeof head, "id: %lld\nevent: ", eid);
    Py_ssize_t frame_len = head_len + topic_len + 7 + env_len + 2;
    item[8] = PyBytes_FromStringAndSize(NULL, frame_len);
    if (item[8] == NULL)
        goto fail;
    char *w = PyBytes_AS_STRING(item[8]);
    memcpy(w, head, (size_t)head_len);
    w += head_len;
    memcpy(w, topic_text, (size_t)topic_len);
    w += topic_len;
    memcpy(w, "\ndata: ", 7);
    w += 7;
    memcpy(w, env, (size_t)env_len);
    w += env_len;
    memcpy(w, "\n\n", 2);

    char size_line[24];
    int size_len = snprintf(size_line, sizeof size_line, "%zx\r\n", (size_t)frame_len);
    item[9] = PyBytes_FromStringAndSize(NULL, size_len + frame_len + 2);
    if (item[9] == NULL)
        goto fail;
    w = PyBytes_AS_STRING(item[9]);
    memcpy(w, size_line, (size_t)size_len);
    memcpy(w + size_len, PyBytes_AS_STRING(item[8]), (size_t)frame_len);
    memcpy(w + size_len + frame_len, "\r\n", 2);

    item[0] = PyLong_FromLongLong(eid);
    item[3] = PyLong_FromLongLong(rid);
    item[10] = PyLong_FromSsize_t(PyUnicode_GET_LENGTH(item[7]) + frame_len + size_len + frame_len + 2);
    if (item[0] == NULL || item[3] == NULL || item[10] == NULL)
        goto fail;
    Py_INCREF(topic);
    item[1] = topic;
    Py_INCREF(resource);
    item[2] = resource;

    PyObject *ev = event_type->tp_alloc(event_type, 11);
    if (ev == NULL)
        goto fail;
    for (int i = 0; i < 11; i++)
        PyTuple_SET_ITEM(ev, i, item[i]);  /* steals */
    return ev;

none:
    for (int i = 0; i < 11; i++)
        Py_XDECREF(item[i]);
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < 11; i++)
        Py_XDECREF(item[i]);
    return NULL;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(topics, resources, event_class): what event() accepts and builds."},
    {"event", (PyCFunction)(void (*)(void))event, METH_FASTCALL,
     "event(payload, inner, outer) -> Event | None: a proven trigger notification's Event,\n"
     "or None when the Python path must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tornado_sse._notice",
    "The listener's fast path for one trigger notification (see _notice.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__notice(void)
{
    s_copy = PyUnicode_InternFromString("copy");
    s_update = PyUnicode_InternFromString("update");
    s_digest = PyUnicode_InternFromString("digest");
    if (s_copy == NULL || s_update == NULL || s_digest == NULL)
        return NULL;
    return PyModule_Create(&module);
}
