#include "ss_lws.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define SS_MAX_MOUNTS 16
#define SS_PROTOCOL_HTTP_ID 41000
#define SS_PROTOCOL_WS_ID 41001

#define SS_MAX_POST (4 * 1024 * 1024)

struct ss_pss {
    uint8_t *http_body; /* pending HTTP response body, LWS_PRE headroom included */
    size_t http_len;
    char *post;         /* "path\0body" of a POST being received */
    size_t post_len;
    size_t post_cap;
    int post_too_big;
};

struct ss_ctx {
    struct lws_context *context;
    ss_event_fn fn;
    void *user;
    struct lws_protocols protocols[3];
    struct lws_http_mount mounts[SS_MAX_MOUNTS];
    struct lws_protocol_vhost_options mimes[6];
    lws_retry_bo_t retry;
    lws_sorted_usec_list_t sul;
    uint8_t *scratch;
    size_t scratch_len;
    uint64_t next_conn;
    char *owned[4 * SS_MAX_MOUNTS + 8];
    int owned_count;
    char subprotocol[64];
};

static const char *ss_keep(ss_ctx *c, const char *s) {
    if (!s || c->owned_count >= (int)(sizeof(c->owned) / sizeof(c->owned[0]))) return NULL;
    char *d = strdup(s);
    c->owned[c->owned_count++] = d;
    return d;
}

static void ss_free_http(struct ss_pss *pss) {
    if (pss && pss->http_body) {
        free(pss->http_body);
        pss->http_body = NULL;
        pss->http_len = 0;
    }
}

static void ss_free_post(struct ss_pss *pss) {
    if (pss && pss->post) {
        free(pss->post);
        pss->post = NULL;
        pss->post_len = pss->post_cap = 0;
        pss->post_too_big = 0;
    }
}

static int ss_post_append(struct ss_pss *pss, const void *data, size_t len) {
    if (pss->post_len + len > SS_MAX_POST) {
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

static int ss_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lws_context *lc = lws_get_context(wsi);
    ss_ctx *c = lc ? (ss_ctx *)lws_context_user(lc) : NULL;
    struct ss_pss *pss = (struct ss_pss *)user;
    uint64_t conn = (uint64_t)(uintptr_t)lws_get_opaque_user_data(wsi);
    if (!c) return lws_callback_http_dummy(wsi, reason, user, in, len);

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char proto[256] = "", origin[256] = "", buf[520];
        lws_hdr_copy(wsi, proto, sizeof proto, WSI_TOKEN_PROTOCOL);
        lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
        int n = snprintf(buf, sizeof buf, "%s\n%s", proto, origin);
        if (n < 0) return 1;
        return c->fn(c->user, SS_EV_FILTER, 0, wsi, (const uint8_t *)buf, (size_t)n, 0);
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
        char uri[1200];
        int is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        int n = lws_hdr_copy(wsi, uri, 1024, is_post ? WSI_TOKEN_POST_URI : WSI_TOKEN_GET_URI);
        if (n <= 0) return lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL) ? -1 : -1;
        char args[160];
        int m = lws_hdr_copy(wsi, args, sizeof args, WSI_TOKEN_HTTP_URI_ARGS);
        if (m > 0 && n + 1 + m < (int)sizeof uri) {
            uri[n++] = '?';
            memcpy(uri + n, args, (size_t)m);
            n += m;
            uri[n] = 0;
        }
        if (is_post && pss) {
            /* A POST: collect the body first (SS_EV_HTTP with flags 1 comes at body completion). */
            ss_free_post(pss);
            if (ss_post_append(pss, uri, (size_t)n + 1) < 0) return -1;
            char auth[512] = "";
            int an = lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
            if (ss_post_append(pss, auth, (size_t)(an > 0 ? an : 0) + 1) < 0) return -1;
            char cl[32] = "";
            if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atol(cl) == 0) {
                int r = c->fn(c->user, SS_EV_HTTP, 0, wsi, (const uint8_t *)pss->post, pss->post_len, 1);
                ss_free_post(pss);
                return r;
            }
            return 0;
        }
        return c->fn(c->user, SS_EV_HTTP, 0, wsi, (const uint8_t *)uri, (size_t)n, 0);
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (pss && pss->post && len) {
            if (ss_post_append(pss, in, len) < 0) return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        if (!pss || !pss->post) break;
        int r = c->fn(c->user, SS_EV_HTTP, 0, wsi, (const uint8_t *)pss->post, pss->post_len, pss->post_too_big ? 3 : 1);
        ss_free_post(pss);
        return r;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!pss || !pss->http_body) break;
        int w = lws_write(wsi, pss->http_body + LWS_PRE, pss->http_len, LWS_WRITE_HTTP_FINAL);
        ss_free_http(pss);
        if (w < 0) return -1;
        if (lws_http_transaction_completed(wsi)) return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        ss_free_http(pss);
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

    static const char *mime_ext[] = {".gltf", ".glb", ".js", ".mjs", ".json", ".wasm"};
    static const char *mime_type[] = {"model/gltf+json", "model/gltf-binary", "text/javascript", "text/javascript",
                                      "application/json", "application/wasm"};
    for (int i = 0; i < 6; i++) {
        c->mimes[i].name = mime_ext[i];
        c->mimes[i].value = mime_type[i];
        c->mimes[i].next = i < 5 ? &c->mimes[i + 1] : NULL;
    }

    int m = 0;
    for (int i = 0; cfg->file_mount_points && cfg->file_mount_points[i] && m < SS_MAX_MOUNTS; i++, m++) {
        struct lws_http_mount *mt = &c->mounts[m];
        mt->mountpoint = ss_keep(c, cfg->file_mount_points[i]);
        mt->mountpoint_len = (unsigned char)strlen(cfg->file_mount_points[i]);
        mt->origin = ss_keep(c, cfg->file_mount_dirs[i]);
        mt->def = "index.html";
        mt->origin_protocol = LWSMPRO_FILE;
        mt->extra_mimetypes = &c->mimes[0];
        mt->cache_max_age = 0;
    }
    for (int i = 0; cfg->callback_mounts && cfg->callback_mounts[i] && m < SS_MAX_MOUNTS; i++, m++) {
        struct lws_http_mount *mt = &c->mounts[m];
        mt->mountpoint = ss_keep(c, cfg->callback_mounts[i]);
        mt->mountpoint_len = (unsigned char)strlen(cfg->callback_mounts[i]);
        mt->origin = "http";
        mt->protocol = "http";
        mt->origin_protocol = LWSMPRO_CALLBACK;
    }
    for (int i = 0; i + 1 < m; i++) c->mounts[i].mount_next = &c->mounts[i + 1];

    c->retry.secs_since_valid_ping = (uint16_t)(cfg->ping_seconds > 0 ? cfg->ping_seconds : 20);
    c->retry.secs_since_valid_hangup = (uint16_t)(cfg->hangup_seconds > 0 ? cfg->hangup_seconds : 40);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = cfg->port < 0 ? CONTEXT_PORT_NO_LISTEN : cfg->port;
    info.iface = cfg->iface;
    info.protocols = c->protocols;
    info.mounts = m > 0 ? &c->mounts[0] : NULL;
    info.user = c;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "scenestream";
    info.retry_and_idle_policy = &c->retry;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (cfg->tls_cert && cfg->tls_key) {
        info.ssl_cert_filepath = ss_keep(c, cfg->tls_cert);
        info.ssl_private_key_filepath = ss_keep(c, cfg->tls_key);
    }
    lws_set_log_level(cfg->log_level, NULL);
    ss_raise_fd_limit();
    c->context = lws_create_context(&info);
    if (!c->context) {
        ss_destroy(c);
        return NULL;
    }
    return c;
}

int ss_service(ss_ctx *c) { return lws_service(c->context, 0); }

void ss_wake(ss_ctx *c) { lws_cancel_service(c->context); }

void ss_destroy(ss_ctx *c) {
    if (!c) return;
    if (c->context) {
        lws_sul_cancel(&c->sul);
        lws_context_destroy(c->context);
    }
    for (int i = 0; i < c->owned_count; i++) free(c->owned[i]);
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
    uint8_t hb[LWS_PRE + 2048];
    uint8_t *start = hb + LWS_PRE, *p = start, *end = hb + sizeof hb - 1;
    if (lws_add_http_common_headers(wsi, status, content_type, (lws_filepos_t)len, &p, end)) return 1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"no-store", 8, &p, end))
        return 1;
    if (extra_headers && *extra_headers) {
        /* "name: value" pairs separated by '\n' */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", extra_headers);
        char *save = NULL;
        for (char *line = strtok_r(tmp, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *colon = strchr(line, ':');
            if (!colon) continue;
            char name[128];
            size_t nl = (size_t)(colon - line) + 1;
            if (nl >= sizeof name) continue;
            memcpy(name, line, nl);
            name[nl] = 0;
            const char *v = colon + 1;
            while (*v == ' ') v++;
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v, (int)strlen(v), &p, end))
                return 1;
        }
    }
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return 1;
    if (len == 0 || !pss) return lws_http_transaction_completed(wsi) ? -1 : 0;
    ss_free_http(pss);
    pss->http_body = malloc(LWS_PRE + len);
    if (!pss->http_body) return -1;
    memcpy(pss->http_body + LWS_PRE, body, len);
    pss->http_len = len;
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
