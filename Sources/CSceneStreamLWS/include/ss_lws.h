#ifndef SS_LWS_H
#define SS_LWS_H
/* SceneStream's thin C layer over libwebsockets: one context with an HTTP protocol and the scenestream.v1
 * WebSocket protocol, a timer and a wake-up. Every HTTP request (files included) goes to Swift, which answers it
 * now or later (`ss_http_respond` by request id). Every lws callback becomes one call of `ss_event_fn`; all lws
 * objects stay on the service thread. Only SceneStreamTransport includes this. */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_ctx ss_ctx;
typedef struct lws ss_wsi;

enum ss_event {
    SS_EV_OPEN = 1,          /* a WebSocket connection (server side) is established; data = peer address */
    SS_EV_RECEIVE = 2,       /* a fragment; flags: bit0 first, bit1 final, bit2 binary. Return -1 to close. */
    SS_EV_WRITABLE = 3,      /* the connection can take one message. Return -1 to close. */
    SS_EV_CLOSED = 4,        /* the connection is gone */
    SS_EV_HTTP = 5,          /* an HTTP request, id in `conn`; data = NUL-terminated fields: method, path, query,
                              * authorization, content-type, host, origin, if-match, peer, then the body. flags bit0: has a body,
                              * bit1: body over the limit (cut), bit2: bad Content-Length (conflicting or not a number).
                              * Answer with ss_http_respond (now or later) or the connection is held until it closes. */
    SS_EV_WAKE = 6,          /* lws_cancel_service() was called */
    SS_EV_TIMER = 7,         /* the timer fired */
    SS_EV_CLIENT_OPEN = 8,   /* an outgoing connection is established */
    SS_EV_CLIENT_ERROR = 9,  /* an outgoing connection failed; data = reason */
    SS_EV_FILTER = 10,       /* a WebSocket upgrade; data = "subprotocols\norigin\npeer\nversion\nkey\nmethod\npath".
                              * Return 0 to accept, or an HTTP status (400, 403, 426, 429) to refuse with. */
    SS_EV_HTTP_CLOSED = 11,  /* the connection of HTTP request `conn` closed (an unanswered request is void) */
};

typedef int (*ss_event_fn)(void *user, int event, uint64_t conn, ss_wsi *wsi, const uint8_t *data, size_t len,
                           int flags);

typedef struct ss_config {
    int port;                       /* -1: no listening socket (clients only) */
    const char *iface;              /* NULL: all interfaces */
    const char *subprotocol;        /* e.g. "scenestream.v1" */
    size_t max_body;                /* largest POST body */
    int body_seconds;               /* a POST body must arrive within this */
    const char *tls_cert;           /* NULL: plain */
    const char *tls_key;
    int ping_seconds;               /* 0: lws default */
    int hangup_seconds;
    size_t rx_chunk;                /* largest fragment handed over at once */
    int log_level;                  /* lws log bitmask */
} ss_config;

/* Creates the context. Returns NULL on failure (the reason is in lws' log). */
ss_ctx *ss_create(const ss_config *config, ss_event_fn fn, void *user);
/* The port the server listens on (the one the kernel chose for port 0); -1 without a listening socket. */
int ss_listen_port(ss_ctx *c);
/* Runs one service pass; returns < 0 when the context is broken. Service thread only. */
int ss_service(ss_ctx *c);
/* Wakes the service thread (any thread). */
void ss_wake(ss_ctx *c);
/* Destroys the context (service thread, after the loop ended). */
void ss_destroy(ss_ctx *c);
/* Fires SS_EV_TIMER once after `us` microseconds (replaces a pending timer). Service thread only. */
void ss_schedule(ss_ctx *c, int64_t us);

/* Asks for SS_EV_WRITABLE on this connection. */
void ss_request_write(ss_wsi *wsi);
/* Writes one message (binary or text). Returns bytes written or < 0. Only inside SS_EV_WRITABLE. */
int ss_write(ss_ctx *c, ss_wsi *wsi, const uint8_t *data, size_t len, int binary);
/* Sets the close code and reason sent when the callback returns -1. */
void ss_close_reason(ss_wsi *wsi, int code, const char *reason);
/* Answers the HTTP request on `wsi` (from SS_EV_HTTP; inside that event or later, service thread): the answer is
 * queued and written when the connection is writable. Returns 0, or -1 when out of memory. */
int ss_http_respond(ss_ctx *c, ss_wsi *wsi, unsigned status, const char *content_type, const char *extra_headers,
                    const uint8_t *body, size_t len);
/* Opens an outgoing WebSocket; events for it carry `conn`. Returns 0 on success. Service thread only. */
int ss_connect(ss_ctx *c, uint64_t conn, const char *host, int port, const char *path, int tls, int tls_insecure);
/* Sets the calling thread's nice value (Linux: per thread). Returns 0 or -1. */
int ss_nice_current_thread(int nice);
/* Puts the calling thread in the idle scheduling class (Linux SCHED_IDLE): it runs only when no other thread
   wants the CPU. For bulk work whose latency does not matter (HTTP snapshots). */
int ss_idle_current_thread(void);
/* A per-thread mark: the service thread marks itself with its loop, so "am I on the loop's thread?" is one
   thread-local read, no lock. */
void ss_mark_thread(const void *loop);
const void *ss_thread_mark(void);
/* Bytes lws still holds for this connection (unsent). */
size_t ss_pending(ss_wsi *wsi);

#ifdef __cplusplus
}
#endif
#endif
