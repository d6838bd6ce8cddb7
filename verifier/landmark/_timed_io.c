/* The landmark's timed receive and send, each one call from Python (Linux only).
 *
 * Why: the landmark's cycle per exchange is bound by its total work, and the agent spins
 * through all of it. These two calls do the system calls, the clock readings and the
 * ancillary parsing that server.py's reference path does around `socket.recvmsg` and
 * `socket.sendmsg`, in the same order, with the interpreter lock released around them. They
 * only move bytes and read clocks: the conversions and every soundness rule stay in Python
 * (clock.py), and server.py falls back to the reference path where this module is missing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifndef __linux__
#error "the landmark's native timed I/O needs Linux's socket timestamps"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_RECEIVE_BYTES 65536
#define CONTROL_BYTES 256

/* A named tuple type (clock.Bracket) whose instances the calls build, set once. */
static PyTypeObject *bracket_type = NULL;

/* The last source address seen and its Python form, so that a round's many answers from one
 * peer share one tuple; and the last destination tuple (held, so its identity stays unique)
 * and its socket address. Both are read and written with the interpreter lock held. */
static struct sockaddr_storage source_addr;
static socklen_t source_len = 0;
static PyObject *source_tuple = NULL;
static PyObject *peer_tuple = NULL;
static int peer_family = 0;
static struct sockaddr_storage peer_addr;
static socklen_t peer_len = 0;

typedef struct {
    long long before;
    long long realtime;
    long long after;
} Reading;

static long long
clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Monotonic, realtime, monotonic: the order of clock.read_bracket(). */
static void
read_clocks(Reading *reading)
{
    reading->before = clock_ns(CLOCK_MONOTONIC);
    reading->realtime = clock_ns(CLOCK_REALTIME);
    reading->after = clock_ns(CLOCK_MONOTONIC);
}

/* The items are all built before the tuple takes them: a tuple frees what it holds, so an
 * item it holds must never be released again on an error path. */
static PyObject *
new_bracket(const Reading *reading)
{
    const long long values[3] = {reading->before, reading->realtime, reading->after};
    PyObject *items[3] = {NULL, NULL, NULL};
    PyObject *bracket = NULL;
    for (int i = 0; i < 3; i++) {
        items[i] = PyLong_FromLongLong(values[i]);
        if (items[i] == NULL) {
            goto failed;
        }
    }
    bracket = bracket_type->tp_alloc(bracket_type, 3);
    if (bracket == NULL) {
        goto failed;
    }
    for (int i = 0; i < 3; i++) {
        PyTuple_SET_ITEM(bracket, i, items[i]);
    }
    return bracket;
failed:
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(items[i]);
    }
    return NULL;
}

/* The address as the socket module gives it: (host, port) or (host, port, flowinfo,
 * scope_id); None for an empty one. */
static PyObject *
source_address(const struct sockaddr_storage *addr, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (len == 0) {
        Py_RETURN_NONE;
    }
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(si)", host, ntohs(in->sin_port));
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(siII)", host, ntohs(in6->sin6_port),
                             (unsigned int)ntohl(in6->sin6_flowinfo),
                             (unsigned int)in6->sin6_scope_id);
    }
    PyErr_SetString(PyExc_OSError, "unexpected address family");
    return NULL;
}

static PyObject *
cached_source(const struct sockaddr_storage *addr, socklen_t len)
{
    if (source_tuple != NULL && len == source_len && memcmp(addr, &source_addr, len) == 0) {
        return Py_NewRef(source_tuple);
    }
    PyObject *source = source_address(addr, len);
    if (source == NULL) {
        return NULL;
    }
    Py_XSETREF(source_tuple, Py_NewRef(source));
    memcpy(&source_addr, addr, len);
    source_len = len;
    return source;
}

/* The socket module's range checks, made after the host is resolved as it makes them. */
static int
checked_port(int port, unsigned int flowinfo)
{
    if (port < 0 || port > 0xffff) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535.");
        return -1;
    }
    if (flowinfo > 0xfffff) {
        PyErr_SetString(PyExc_OverflowError, "flowinfo must be 0-1048575.");
        return -1;
    }
    return 0;
}

/* The socket address for a (host, port[, flowinfo[, scope_id]]) tuple as the socket module
 * reads it for an AF_INET or AF_INET6 socket: a numeric host directly, a name resolved. */
static int
peer_address(int family, PyObject *peer, struct sockaddr_storage *addr, socklen_t *len)
{
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyTuple_Check(peer)) {
        PyErr_Format(PyExc_TypeError, "a peer address must be a tuple, not %.200s",
                     Py_TYPE(peer)->tp_name);
        return -1;
    }
    if (family == AF_INET6) {
        if (!PyArg_ParseTuple(peer, "si|II;a peer address", &host, &port, &flowinfo,
                              &scope_id)) {
            return -1;
        }
    }
    else if (!PyArg_ParseTuple(peer, "si;a peer address", &host, &port)) {
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)port);
        *len = sizeof(*in);
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
            return checked_port(port, flowinfo);
        }
    }
    else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)port);
        in6->sin6_flowinfo = htonl(flowinfo);
        in6->sin6_scope_id = scope_id;
        *len = sizeof(*in6);
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            return checked_port(port, flowinfo);
        }
    }
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = getaddrinfo(host, NULL, &hints, &found);
    Py_END_ALLOW_THREADS
    if (error != 0) {
        PyObject *socket_module = PyImport_ImportModule("socket");
        PyObject *gaierror =
            socket_module == NULL ? NULL : PyObject_GetAttrString(socket_module, "gaierror");
        Py_XDECREF(socket_module);
        if (gaierror != NULL) {
            PyErr_Format(gaierror, "[Errno %d] %s", error, gai_strerror(error));
            Py_DECREF(gaierror);
        }
        return -1;
    }
    if (family == AF_INET) {
        ((struct sockaddr_in *)addr)->sin_addr =
            ((struct sockaddr_in *)found->ai_addr)->sin_addr;
    }
    else {
        ((struct sockaddr_in6 *)addr)->sin6_addr =
            ((struct sockaddr_in6 *)found->ai_addr)->sin6_addr;
    }
    freeaddrinfo(found);
    return checked_port(port, flowinfo);
}

/* The peer's socket address, copied out (the copy is read with the lock released). */
static int
cached_peer(int family, PyObject *peer, struct sockaddr_storage *addr, socklen_t *len)
{
    if (peer != peer_tuple || family != peer_family) {
        struct sockaddr_storage resolved;
        socklen_t resolved_len;
        if (peer_address(family, peer, &resolved, &resolved_len) < 0) {
            return -1;
        }
        Py_XSETREF(peer_tuple, Py_NewRef(peer));
        peer_family = family;
        peer_addr = resolved;
        peer_len = resolved_len;
    }
    memcpy(addr, &peer_addr, peer_len);
    *len = peer_len;
    return 0;
}

/* An int argument; -1 with an exception set where it is not one. */
static int
int_argument(PyObject *value)
{
    long number = PyLong_AsLong(value);
    if (number == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (number < INT_MIN || number > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "an int argument is out of range");
        return -1;
    }
    return (int)number;
}

/* A call with other than `expected` positional arguments is a TypeError. */
static int
check_arguments(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name,
                     expected, nargs);
        return -1;
    }
    return 0;
}

static PyObject *
bind_bracket(PyObject *Py_UNUSED(module), PyObject *type)
{
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "the bracket type must be a tuple subclass");
        return NULL;
    }
    Py_XSETREF(bracket_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_NONE;
}

/* SCM_TIMESTAMPNS in a received datagram's ancillary data, as clock.kernel_stamp reads it. */
static int
receive_stamp(struct msghdr *msg, long long *stamp)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_type == SO_TIMESTAMPNS && c->cmsg_level == SOL_SOCKET
            && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            *stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
            return 1;
        }
    }
    return 0;
}

PyDoc_STRVAR(receive_doc,
"receive(fd, size, until_ns)\n--\n\n"
"One datagram: (data, source, bracket, kernel stamp or None), the bracket read right after\n"
"recvmsg returned. until_ns 0: a blocking read (the socket's SO_RCVTIMEO applies);\n"
"otherwise polled without waiting until the monotonic clock reaches until_ns (None then).");

static PyObject *
receive(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (check_arguments("receive", nargs, 3) < 0) {
        return NULL;
    }
    /* Each conversion checked before the next: none may run with an exception set. */
    int fd = int_argument(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long long until_ns = PyLong_AsLongLong(args[2]);
    if (until_ns == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0 || size > MAX_RECEIVE_BYTES) {
        PyErr_SetString(PyExc_ValueError, "receive size out of range");
        return NULL;
    }
    if (bracket_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_bracket was not called");
        return NULL;
    }
    char data[MAX_RECEIVE_BYTES];
    char control[CONTROL_BYTES] __attribute__((aligned(sizeof(size_t))));
    struct sockaddr_storage addr;
    struct iovec iov = {.iov_base = data, .iov_len = (size_t)size};
    struct msghdr msg;
    Reading received;
    ssize_t n;
    int error;
    for (;;) {
        memset(&msg, 0, sizeof(msg));
        msg.msg_name = &addr;
        msg.msg_namelen = sizeof(addr);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        Py_BEGIN_ALLOW_THREADS
        if (until_ns == 0) {
            n = recvmsg(fd, &msg, 0);
        }
        else {
            while ((n = recvmsg(fd, &msg, MSG_DONTWAIT)) < 0
                   && (errno == EAGAIN || errno == EWOULDBLOCK)
                   && clock_ns(CLOCK_MONOTONIC) < until_ns) {
                msg.msg_namelen = sizeof(addr);
                msg.msg_controllen = sizeof(control);
                msg.msg_flags = 0;
            }
        }
        error = errno;
        if (n >= 0) {
            read_clocks(&received);
        }
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            break;
        }
        if (error != EINTR) {
            if (until_ns != 0 && (error == EAGAIN || error == EWOULDBLOCK)) {
                Py_RETURN_NONE;
            }
            errno = error;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
    long long stamp = 0;
    int stamped = receive_stamp(&msg, &stamp);
    /* Built one at a time, each only while no exception is set, all released on failure. */
    PyObject *items[4] = {NULL, NULL, NULL, NULL};
    PyObject *result = NULL;
    if ((items[0] = PyBytes_FromStringAndSize(data, n)) == NULL
        || (items[1] = cached_source(&addr, msg.msg_namelen)) == NULL
        || (items[2] = new_bracket(&received)) == NULL
        || (items[3] = stamped ? PyLong_FromLongLong(stamp) : Py_NewRef(Py_None)) == NULL
        || (result = PyTuple_New(4)) == NULL) {
        for (int i = 0; i < 4; i++) {
            Py_XDECREF(items[i]);
        }
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        PyTuple_SET_ITEM(result, i, items[i]);
    }
    return result;
}

/* One error-queue message's transmit stamp, as clock.transmit_stamp reads it: 1 and the
 * key and stamp where it carries both, 0 where not. */
static int
transmit_stamp(struct msghdr *msg, unsigned long long *key, long long *stamp)
{
    int has_stamp = 0, has_key = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_type == SO_TIMESTAMPING && c->cmsg_level == SOL_SOCKET) {
            if (c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                *stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                has_stamp = 1;
            }
        }
        else if (((c->cmsg_type == IP_RECVERR && c->cmsg_level == IPPROTO_IP)
                  || (c->cmsg_type == IPV6_RECVERR && c->cmsg_level == IPPROTO_IPV6))
                 && c->cmsg_len >= CMSG_LEN(sizeof(struct sock_extended_err))) {
            struct sock_extended_err err;
            memcpy(&err, CMSG_DATA(c), sizeof(err));
            if (err.ee_origin == SO_EE_ORIGIN_TIMESTAMPING && err.ee_info == SCM_TSTAMP_SND) {
                *key = err.ee_data;
                has_key = 1;
            }
        }
    }
    return has_stamp && has_key;
}

PyDoc_STRVAR(send_timed_doc,
"send_timed(fd, family, datagram, peer, key, stamped)\n--\n\n"
"A challenge's send: (sent, errno, key, stamp, after). sent: the bracket read immediately\n"
"before sendmsg; errno: sendmsg's error, 0 if it sent. Where stamped (and it sent), the\n"
"send asks for its transmit stamp and the error queue is read back as the reference path\n"
"does: stamps of keys before key dropped, read no further than key's, stopped when empty;\n"
"key: the key the next stamped send gets; stamp: key's stamp (realtime ns), 0 if it was\n"
"not queued; after: a bracket read after it, None without one.");

static PyObject *
send_timed(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (check_arguments("send_timed", nargs, 6) < 0) {
        return NULL;
    }
    /* Each conversion checked before the next: none may run with an exception set. */
    int fd = int_argument(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int family = int_argument(args[1]);
    if (family == -1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long long key = PyLong_AsUnsignedLongLong(args[4]);
    if (key == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    int stamped = PyObject_IsTrue(args[5]);
    if (stamped < 0) {
        return NULL;
    }
    if (bracket_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_bracket was not called");
        return NULL;
    }
    if (family != AF_INET && family != AF_INET6) {
        PyErr_SetString(PyExc_ValueError, "family must be AF_INET or AF_INET6");
        return NULL;
    }
    Py_buffer datagram;
    if (PyObject_GetBuffer(args[2], &datagram, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    struct sockaddr_storage addr;
    socklen_t len;
    if (cached_peer(family, args[3], &addr, &len) < 0) {
        PyBuffer_Release(&datagram);
        return NULL;
    }
    struct iovec iov = {.iov_base = datagram.buf, .iov_len = (size_t)datagram.len};
    char request[CMSG_SPACE(sizeof(uint32_t))] __attribute__((aligned(sizeof(size_t))));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = &addr;
    msg.msg_namelen = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (stamped) {
        memset(request, 0, sizeof(request));
        msg.msg_control = request;
        msg.msg_controllen = sizeof(request);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SO_TIMESTAMPING;
        c->cmsg_len = CMSG_LEN(sizeof(uint32_t));
        uint32_t flags = SOF_TIMESTAMPING_TX_SOFTWARE;
        memcpy(CMSG_DATA(c), &flags, sizeof(flags));
    }
    char control[CONTROL_BYTES] __attribute__((aligned(sizeof(size_t))));
    struct msghdr queued;
    Reading sent, after;
    long long stamp = 0;
    int error = 0, found = 0, retried = 0;
    ssize_t n;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        if (!retried) {
            read_clocks(&sent);
        }
        n = sendmsg(fd, &msg, 0);
        error = n < 0 ? errno : 0;
        if (n >= 0 && stamped) {
            unsigned long long wanted = key;
            while (!found) {
                long long queued_stamp = 0;
                unsigned long long queued_key = 0;
                memset(&queued, 0, sizeof(queued));
                queued.msg_control = control;
                queued.msg_controllen = sizeof(control);
                while ((n = recvmsg(fd, &queued, MSG_ERRQUEUE | MSG_DONTWAIT)) < 0
                       && errno == EINTR) {
                }
                if (n < 0) {
                    break;
                }
                if (!transmit_stamp(&queued, &queued_key, &queued_stamp)) {
                    continue;
                }
                if (queued_key == wanted) {
                    stamp = queued_stamp;
                    found = 1;
                }
                else if (queued_key > wanted) {
                    wanted = queued_key;
                }
            }
            key = wanted + 1;
            if (found) {
                read_clocks(&after);
            }
        }
        Py_END_ALLOW_THREADS
        /* A signal during the send (PEP 475, as the socket module): its handler runs, and the
         * send is retried unless the handler raised; the bracket stays the one before the first
         * try, as on the reference path. */
        if (error != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&datagram);
            return NULL;
        }
        retried = 1;
    }
    PyBuffer_Release(&datagram);
    PyObject *sent_bracket = new_bracket(&sent);
    if (sent_bracket == NULL) {
        return NULL;
    }
    PyObject *after_bracket = found ? new_bracket(&after) : Py_NewRef(Py_None);
    if (after_bracket == NULL) {
        Py_DECREF(sent_bracket);
        return NULL;
    }
    return Py_BuildValue("(NiKLN)", sent_bracket, error, key, stamp, after_bracket);
}

static PyMethodDef methods[] = {
    {"bind_bracket", bind_bracket, METH_O,
     "bind_bracket(type)\n--\n\nThe tuple subclass the calls build their clock readings as."},
    {"receive", (PyCFunction)(void (*)(void))receive, METH_FASTCALL, receive_doc},
    {"send_timed", (PyCFunction)(void (*)(void))send_timed, METH_FASTCALL, send_timed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geoattest.verifier.landmark._timed_io",
    .m_doc = "The landmark's timed receive and send with their clock readings (Linux).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__timed_io(void)
{
    return PyModule_Create(&module);
}
