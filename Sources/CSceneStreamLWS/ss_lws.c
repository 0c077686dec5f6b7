#define _GNU_SOURCE
#include "ss_lws.h"

#include <sched.h>

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define SS_PROTOCOL_HTTP_ID 41000
#define SS_PROTOCOL_WS_ID 41001

struct ss_pss {
    uint64_t req;       /* the HTTP request being served (0: none) */
    /* the queued answer, written when the connection is writable */
    char *head;         /* status, content type and extra headers: "ctype\0extra\0" */
    unsigned status;
    uint8_t *body;      /* LWS_PRE headroom included */
    size_t body_len;
    int answered;
    /* a POST being received: "method\0path\0query\0auth\0ctype\0host\0origin\0ifmatch\0peer\0body" */
    char *post;
    size_t post_len;
    size_t post_cap;
    int post_too_big;
    int post_bad_length;
    lws_usec_t post_started;
};

struct ss_ctx {
    struct lws_context *context;
    struct lws_vhost *vhost;
    ss_event_fn fn;
    void *user;
    struct lws_protocols protocols[3];
    struct lws_http_mount mount;
    lws_retry_bo_t retry;
    lws_sorted_usec_list_t sul;
    uint8_t *scratch;
    size_t scratch_len;
    uint64_t next_conn;
    size_t max_body;
    int body_seconds;
    char iface[64];
    char subprotocol[64];
    char cert[512];
    char key[512];
};

static void ss_free_answer(struct ss_pss *pss) {
    if (!pss) return;
    free(pss->head);
    free(pss->body);
    pss->head = NULL;
    pss->body = NULL;
    pss->body_len = 0;
    pss->answered = 0;
}

static void ss_free_post(struct ss_pss *pss) {
    if (!pss) return;
    free(pss->post);
    pss->post = NULL;
    pss->post_len = pss->post_cap = 0;
    pss->post_too_big = 0;
    pss->post_bad_length = 0;
}

static int ss_post_append(ss_ctx *c, struct ss_pss *pss, const void *data, size_t len, int is_body) {
    if (is_body && pss->post_len + len > c->max_body + 4096) {
        pss->post_too_big = 1;
        return 0;
    }
    if (pss->post_len + len + 1 > pss->post_cap) {
        size_t cap = (pss->post_len + len + 1) * 2;
        char *n = realloc(pss->post, cap);
        if (!n) return -1;
        pss->post = n;
        pss->post_cap = cap;
    }
    memcpy(pss->post + pss->post_len, data, len);
    pss->post_len += len;
    return 0;
}

/* Appends header `h` (at most `max` bytes; longer is cut) and a NUL. */
static int ss_post_header(ss_ctx *c, struct ss_pss *pss, struct lws *wsi, enum lws_token_indexes h, size_t max) {
    char buf[4096];
    if (max > sizeof buf) max = sizeof buf;
    int n = lws_hdr_total_length(wsi, h) > 0 ? lws_hdr_copy(wsi, buf, (int)max, h) : 0;
    if (n < 0) n = 0;
    if (ss_post_append(c, pss, buf, (size_t)n, 0) < 0) return -1;
    return ss_post_append(c, pss, "", 1, 0);
}

/* The query's arguments: libwebsockets keeps each `name=value` as its own fragment (already percent-decoded);
 * they go to Swift joined with '&', percent-encoded again where a byte would change the meaning of what Swift
 * reads: '&' and '%', and control bytes (a decoded %00 would end this field of the NUL-separated record early).
 * A fragment too long for its buffer is left out; the ones after it still come. */
static int ss_post_args(ss_ctx *c, struct ss_pss *pss, struct lws *wsi) {
    char frag[2048], out[4096];
    size_t len = 0;
    for (int i = 0; ; i++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0) break;
        if (flen >= (int)sizeof frag) continue;
        int n = lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0) continue;
        if (len && len + 1 < sizeof out) out[len++] = '&';
        for (int k = 0; k < n && len + 4 < sizeof out; k++) {
            unsigned char b = (unsigned char)frag[k];
            if (b == '&' || b == '%' || b < 0x20 || b == 0x7F) len += (size_t)snprintf(out + len, 4, "%%%02X", b);
            else out[len++] = (char)b;
        }
    }
    if (ss_post_append(c, pss, out, len, 0) < 0) return -1;
    return ss_post_append(c, pss, "", 1, 0);
}

/* Hands the request (headers collected, body if any) to Swift. */
static int ss_http_deliver(ss_ctx *c, struct lws *wsi, struct ss_pss *pss, int flags) {
    int r = c->fn(c->user, SS_EV_HTTP, pss->req, wsi, (const uint8_t *)pss->post, pss->post_len, flags);
    ss_free_post(pss);
    return r;
}

static const char *ss_methods[] = {"GET", "POST", "OPTIONS", "PUT", "PATCH", "DELETE", "CONNECT", "HEAD", "GET"};

static int ss_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lws_context *lc = lws_get_context(wsi);
    ss_ctx *c = lc ? (ss_ctx *)lws_context_user(lc) : NULL;
    struct ss_pss *pss = (struct ss_pss *)user;
    uint64_t conn = (uint64_t)(uintptr_t)lws_get_opaque_user_data(wsi);
    if (!c) return lws_callback_http_dummy(wsi, reason, user, in, len);

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char proto[256] = "", origin[256] = "", peer[128] = "", version[16] = "", key[64] = "", path[256] = "", buf[1100];
        if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 0) lws_hdr_copy(wsi, proto, sizeof proto, WSI_TOKEN_PROTOCOL);
        if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0) lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
        if (lws_hdr_total_length(wsi, WSI_TOKEN_VERSION) > 0) lws_hdr_copy(wsi, version, sizeof version, WSI_TOKEN_VERSION);
        if (lws_hdr_total_length(wsi, WSI_TOKEN_KEY) > 0 && lws_hdr_total_length(wsi, WSI_TOKEN_KEY) < (int)sizeof key)
            lws_hdr_copy(wsi, key, sizeof key, WSI_TOKEN_KEY);
        const char *method = "GET";
        if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0) {
            if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) < (int)sizeof path) lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
            else snprintf(path, sizeof path, "(too long)");
        } else {
            method = "OTHER";
        }
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP1_0) > 0) method = "HTTP/1.0";
        lws_get_peer_simple(wsi, peer, sizeof peer);
        int n = snprintf(buf, sizeof buf, "%s\n%s\n%s\n%s\n%s\n%s\n%s", proto, origin, peer, version, key, method, path);
        if (n < 0) return 1;
        int status = c->fn(c->user, SS_EV_FILTER, 0, wsi, (const uint8_t *)buf, (size_t)n, 0);
        if (status == 0) return 0;
        /* Refused: say why with an HTTP/1.1 status before the connection goes (lws' own answer here says HTTP/1.0,
         * which WebSocket clients reject as unreadable). */
        if (status >= 400 && status < 600) {
            const char *phrase = status == 400 ? "Bad Request" : status == 403 ? "Forbidden" : status == 404 ? "Not Found"
                               : status == 426 ? "Upgrade Required" : status == 429 ? "Too Many Requests" : "Service Unavailable";
            uint8_t out[LWS_PRE + 256];
            int k = snprintf((char *)out + LWS_PRE, 256,
                             "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\nconnection: close\r\n%s\r\n%s\n",
                             status, phrase, strlen(phrase) + 1, status == 426 ? "sec-websocket-version: 13\r\n" : "", phrase);
            if (k > 0 && k < 256) lws_write(wsi, out + LWS_PRE, (size_t)k, LWS_WRITE_HTTP_HEADERS);
        }
        return 1;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        uint64_t id = ++c->next_conn;
        lws_set_opaque_user_data(wsi, (void *)(uintptr_t)id);
        char peer[128] = "";
        lws_get_peer_simple(wsi, peer, sizeof peer);
        return c->fn(c->user, SS_EV_OPEN, id, wsi, (const uint8_t *)peer, strlen(peer), 0);
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        return c->fn(c->user, SS_EV_CLIENT_OPEN, conn, wsi, NULL, 0, 0);
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        int flags = (lws_is_first_fragment(wsi) ? 1 : 0) | (lws_is_final_fragment(wsi) ? 2 : 0) |
                    (lws_frame_is_binary(wsi) ? 4 : 0);
        return c->fn(c->user, SS_EV_RECEIVE, conn, wsi, (const uint8_t *)in, len, flags);
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c->fn(c->user, SS_EV_WRITABLE, conn, wsi, NULL, 0, 0);
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->fn(c->user, SS_EV_CLOSED, conn, wsi, NULL, 0, 0);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        c->fn(c->user, SS_EV_CLIENT_ERROR, conn, wsi, (const uint8_t *)(in ? in : ""), in ? strlen((const char *)in) : 0, 0);
        return 0;
    case LWS_CALLBACK_HTTP: {
        if (!pss) return -1;
        if (pss->req) c->fn(c->user, SS_EV_HTTP_CLOSED, pss->req, NULL, NULL, 0, 0);
        ss_free_post(pss);
        ss_free_answer(pss);
        pss->req = ++c->next_conn;
        char *uri = NULL;
        int ulen = 0;
        int m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
        if (m < 0 || m >= (int)(sizeof ss_methods / sizeof ss_methods[0]) || !uri) return -1;
        const char *method = ss_methods[m];
        if (ss_post_append(c, pss, method, strlen(method) + 1, 0) < 0) return -1;
        if (ss_post_append(c, pss, uri, (size_t)ulen, 0) < 0 || ss_post_append(c, pss, "", 1, 0) < 0) return -1;
        if (ss_post_args(c, pss, wsi) < 0) return -1;
        if (ss_post_header(c, pss, wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 4096) < 0) return -1;
        if (ss_post_header(c, pss, wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, 256) < 0) return -1;
        if (ss_post_header(c, pss, wsi, WSI_TOKEN_HOST, 256) < 0) return -1;
        if (ss_post_header(c, pss, wsi, WSI_TOKEN_ORIGIN, 256) < 0) return -1;
        if (ss_post_header(c, pss, wsi, WSI_TOKEN_HTTP_IF_MATCH, 256) < 0) return -1;
        char peer[128] = "";
        lws_get_peer_simple(wsi, peer, sizeof peer);
        if (ss_post_append(c, pss, peer, strlen(peer) + 1, 0) < 0) return -1;
        int has_length = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
        if (has_length) {
            /* One Content-Length, all digits: two (even equal) or anything else is refused. */
            char cl[32] = "";
            int n = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
            int ok = n > 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 1) <= 0;
            for (int i = 0; ok && i < n; i++) ok = cl[i] >= '0' && cl[i] <= '9';
            if (!ok) return ss_http_deliver(c, wsi, pss, 4);
            if (strtoull(cl, NULL, 10) == 0) return ss_http_deliver(c, wsi, pss, 1);
        }
        if (m == LWSHUMETH_POST || m == LWSHUMETH_PUT || m == LWSHUMETH_PATCH) {
            if (!has_length) return ss_http_deliver(c, wsi, pss, 1);
            /* The body must arrive within body_seconds, however slowly it trickles. */
            pss->post_started = lws_now_usecs();
            lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, c->body_seconds);
            return 0;
        }
        return ss_http_deliver(c, wsi, pss, 0);
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (!pss) break;
        if (pss->post && len) {
            if (lws_now_usecs() - pss->post_started > (lws_usec_t)c->body_seconds * 1000000) {
                ss_free_post(pss);
                return -1;
            }
            if (ss_post_append(c, pss, in, len, 1) < 0) return -1;
        }
        return 0; /* a body after an early answer (bad Content-Length) is read and dropped */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!pss) break;
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        if (!pss->post) return 0; /* answered already */
        return ss_http_deliver(c, wsi, pss, pss->post_too_big ? 3 : 1);
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!pss || !pss->answered) break;
        uint8_t hb[LWS_PRE + 2048];
        uint8_t *start = hb + LWS_PRE, *p = start, *end = hb + sizeof hb - 1;
        const char *ctype = pss->head;
        const char *extra = pss->head + strlen(pss->head) + 1;
        if (lws_add_http_common_headers(wsi, pss->status, ctype, (lws_filepos_t)pss->body_len, &p, end)) return -1;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"no-store", 8, &p, end))
            return -1;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:", (const unsigned char *)"nosniff", 7, &p, end))
            return -1;
        /* extra: "name: value" lines separated by '\n' */
        while (*extra) {
            const char *nl = strchr(extra, '\n');
            size_t ll = nl ? (size_t)(nl - extra) : strlen(extra);
            const char *colon = memchr(extra, ':', ll);
            if (colon && (size_t)(colon - extra) + 1 < 128) {
                char name[128];
                size_t nlen = (size_t)(colon - extra) + 1;
                memcpy(name, extra, nlen);
                name[nlen] = 0;
                const char *v = colon + 1;
                while (*v == ' ' && v < extra + ll) v++;
                if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v, (int)(extra + ll - v), &p, end))
                    return -1;
            }
            extra += ll;
            if (*extra == '\n') extra++;
        }
        if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
        if (pss->body_len) {
            int w = lws_write(wsi, pss->body + LWS_PRE, pss->body_len, LWS_WRITE_HTTP_FINAL);
            if (w < 0) return -1;
        }
        ss_free_answer(pss);
        uint64_t req = pss->req;
        pss->req = 0;
        c->fn(c->user, SS_EV_HTTP_CLOSED, req, NULL, NULL, 0, 0);
        if (lws_http_transaction_completed(wsi)) return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss && pss->req) {
            c->fn(c->user, SS_EV_HTTP_CLOSED, pss->req, NULL, NULL, 0, 0);
            pss->req = 0;
        }
        ss_free_answer(pss);
        ss_free_post(pss);
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        const struct lws_protocols *p = lws_get_protocol(wsi);
        if (p && p->id == SS_PROTOCOL_HTTP_ID) c->fn(c->user, SS_EV_WAKE, 0, NULL, NULL, 0, 0);
        return 0;
    }
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void ss_sul_cb(lws_sorted_usec_list_t *sul) {
    ss_ctx *c = lws_container_of(sul, ss_ctx, sul);
    c->fn(c->user, SS_EV_TIMER, 0, NULL, NULL, 0, 0);
}

static void ss_raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

ss_ctx *ss_create(const ss_config *cfg, ss_event_fn fn, void *user) {
    ss_ctx *c = calloc(1, sizeof(ss_ctx));
    if (!c) return NULL;
    c->fn = fn;
    c->user = user;
    c->next_conn = (uint64_t)1 << 40; /* server-side ids; client ids are chosen by the caller below this */
    snprintf(c->subprotocol, sizeof c->subprotocol, "%s", cfg->subprotocol ? cfg->subprotocol : "scenestream.v1");

    c->protocols[0].name = "http";
    c->protocols[0].callback = ss_cb;
    c->protocols[0].per_session_data_size = sizeof(struct ss_pss);
    c->protocols[0].id = SS_PROTOCOL_HTTP_ID;
    c->protocols[1].name = c->subprotocol;
    c->protocols[1].callback = ss_cb;
    c->protocols[1].per_session_data_size = sizeof(struct ss_pss);
    c->protocols[1].rx_buffer_size = cfg->rx_chunk ? cfg->rx_chunk : 65536;
    c->protocols[1].id = SS_PROTOCOL_WS_ID;

    /* Every HTTP path is answered by Swift (files too: its router checks access and real paths). */
    c->mount.mountpoint = "/";
    c->mount.mountpoint_len = 1;
    c->mount.origin = "http";
    c->mount.protocol = "http";
    c->mount.origin_protocol = LWSMPRO_CALLBACK;
    c->max_body = cfg->max_body ? cfg->max_body : 4 * 1024 * 1024;
    c->body_seconds = cfg->body_seconds > 0 ? cfg->body_seconds : 10;

    c->retry.secs_since_valid_ping = (uint16_t)(cfg->ping_seconds > 0 ? cfg->ping_seconds : 20);
    c->retry.secs_since_valid_hangup = (uint16_t)(cfg->hangup_seconds > 0 ? cfg->hangup_seconds : 40);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = cfg->port < 0 ? CONTEXT_PORT_NO_LISTEN : cfg->port;
    if (cfg->iface) {
        snprintf(c->iface, sizeof c->iface, "%s", cfg->iface);
        info.iface = c->iface;
    }
    info.protocols = c->protocols;
    info.mounts = cfg->port < 0 ? NULL : &c->mount;
    /* Request headers are bounded (larger ones are refused by lws). */
    info.max_http_header_data = 8192;
    info.timeout_secs = (unsigned int)c->body_seconds;
    info.user = c;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "scenestream";
    info.retry_and_idle_policy = &c->retry;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (cfg->tls_cert && cfg->tls_key) {
        snprintf(c->cert, sizeof c->cert, "%s", cfg->tls_cert);
        snprintf(c->key, sizeof c->key, "%s", cfg->tls_key);
        info.ssl_cert_filepath = c->cert;
        info.ssl_private_key_filepath = c->key;
    }
    lws_set_log_level(cfg->log_level, NULL);
    ss_raise_fd_limit();
    c->context = lws_create_context(&info);
    if (!c->context) {
        ss_destroy(c);
        return NULL;
    }
    c->vhost = lws_get_vhost_by_name(c->context, "scenestream");
    return c;
}

int ss_listen_port(ss_ctx *c) { return c->vhost && c->context ? lws_get_vhost_listen_port(c->vhost) : -1; }

int ss_service(ss_ctx *c) { return lws_service(c->context, 0); }

void ss_wake(ss_ctx *c) { lws_cancel_service(c->context); }

void ss_destroy(ss_ctx *c) {
    if (!c) return;
    if (c->context) {
        lws_sul_cancel(&c->sul);
        lws_context_destroy(c->context);
    }
    free(c->scratch);
    free(c);
}

void ss_schedule(ss_ctx *c, int64_t us) { lws_sul_schedule(c->context, 0, &c->sul, ss_sul_cb, (lws_usec_t)us); }

void ss_request_write(ss_wsi *wsi) { lws_callback_on_writable(wsi); }

int ss_write(ss_ctx *c, ss_wsi *wsi, const uint8_t *data, size_t len, int binary) {
    if (c->scratch_len < LWS_PRE + len) {
        size_t want = LWS_PRE + len + 4096;
        uint8_t *n = realloc(c->scratch, want);
        if (!n) return -1;
        c->scratch = n;
        c->scratch_len = want;
    }
    if (len) memcpy(c->scratch + LWS_PRE, data, len);
    return lws_write(wsi, c->scratch + LWS_PRE, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
}

void ss_close_reason(ss_wsi *wsi, int code, const char *reason) {
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason, reason ? strlen(reason) : 0);
}

int ss_http_respond(ss_ctx *c, ss_wsi *wsi, unsigned status, const char *content_type, const char *extra_headers,
                    const uint8_t *body, size_t len) {
    (void)c;
    struct ss_pss *pss = (struct ss_pss *)lws_wsi_user(wsi);
    if (!pss) return -1;
    ss_free_answer(pss);
    size_t cl = strlen(content_type), el = extra_headers ? strlen(extra_headers) : 0;
    pss->head = malloc(cl + el + 2);
    pss->body = malloc(LWS_PRE + len + 1);
    if (!pss->head || !pss->body) {
        ss_free_answer(pss);
        return -1;
    }
    memcpy(pss->head, content_type, cl + 1);
    if (el) memcpy(pss->head + cl + 1, extra_headers, el);
    pss->head[cl + 1 + el] = 0;
    if (len) memcpy(pss->body + LWS_PRE, body, len);
    pss->body_len = len;
    pss->status = status;
    pss->answered = 1;
    lws_callback_on_writable(wsi);
    return 0;
}

int ss_connect(ss_ctx *c, uint64_t conn, const char *host, int port, const char *path, int tls, int tls_insecure) {
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = c->context;
    i.address = host;
    i.port = port;
    i.path = path;
    i.host = host;
    i.origin = host;
    i.protocol = c->subprotocol;
    i.local_protocol_name = c->subprotocol;
    i.opaque_user_data = (void *)(uintptr_t)conn;
    if (tls) {
        i.ssl_connection = LCCSCF_USE_SSL;
        if (tls_insecure)
            i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_INSECURE |
                                LCCSCF_ALLOW_EXPIRED;
    }
    return lws_client_connect_via_info(&i) ? 0 : -1;
}

size_t ss_pending(ss_wsi *wsi) { return lws_partial_buffered(wsi) ? 1 : 0; }

#include <sys/syscall.h>
#include <unistd.h>

static _Thread_local const void *ss_current_loop = NULL;
void ss_mark_thread(const void *loop) { ss_current_loop = loop; }
const void *ss_thread_mark(void) { return ss_current_loop; }

int ss_idle_current_thread(void) {
#if defined(SCHED_IDLE)
    struct sched_param p;
    memset(&p, 0, sizeof p);
    return sched_setscheduler(0, SCHED_IDLE, &p);
#else
    return -1;
#endif
}

int ss_nice_current_thread(int nice) {
#ifdef SYS_gettid
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
#else
    (void)nice;
    return -1;
#endif
}
