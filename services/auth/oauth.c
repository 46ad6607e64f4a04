/*
 * oauth.c: form bodies, client authentication and RFC 6749 errors.
 */
#include "auth/oauth.h"

#include "cofre/common.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const error_names[COFRE_OAUTH_ERROR_COUNT_] = {
    [COFRE_OAUTH_OK] = "ok",
    [COFRE_OAUTH_INVALID_REQUEST] = "invalid_request",
    [COFRE_OAUTH_INVALID_CLIENT] = "invalid_client",
    [COFRE_OAUTH_INVALID_GRANT] = "invalid_grant",
    [COFRE_OAUTH_UNAUTHORIZED_CLIENT] = "unauthorized_client",
    [COFRE_OAUTH_UNSUPPORTED_GRANT_TYPE] = "unsupported_grant_type",
    [COFRE_OAUTH_INVALID_SCOPE] = "invalid_scope",
};

static const char *const param_names[COFRE_OAUTH_P_COUNT_] = {
    [COFRE_OAUTH_P_GRANT_TYPE] = "grant_type", [COFRE_OAUTH_P_SCOPE] = "scope",
    [COFRE_OAUTH_P_CLIENT_ID] = "client_id",   [COFRE_OAUTH_P_CLIENT_SECRET] = "client_secret",
    [COFRE_OAUTH_P_TOKEN] = "token",           [COFRE_OAUTH_P_TOKEN_TYPE_HINT] = "token_type_hint",
};

const char *cofre_oauth_error_name(cofre_oauth_error_t e)
{
    COFRE_ASSERT(e >= 0 && e < COFRE_OAUTH_ERROR_COUNT_);
    return error_names[e];
}

int cofre_oauth_error_status(cofre_oauth_error_t e)
{
    return e == COFRE_OAUTH_INVALID_CLIENT ? 401 : e == COFRE_OAUTH_OK ? 200 : 400;
}

void cofre_oauth_error_json(cofre_oauth_error_t e, const char *description, cofre_jbuf_t *b)
{
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "error", cofre_oauth_error_name(e));
    if (description != NULL)
        cofre_jbuf_kstr(b, "error_description", description);
    cofre_jbuf_obj_end(b);
}

/* ---- forms ------------------------------------------------------------------------------ */

static int param_index(const char *name, size_t len)
{
    for (int i = 0; i < COFRE_OAUTH_P_COUNT_; i++)
        if (strlen(param_names[i]) == len && memcmp(param_names[i], name, len) == 0)
            return i;
    return -1;
}

/* Stores one name=value pair; false with *why on a bad one. */
static bool store_pair(cofre_oauth_form_t *f, const char *pair, size_t len, size_t *used,
                       const char **why)
{
    const char *eq = memchr(pair, '=', len);
    size_t nlen = eq != NULL ? (size_t)(eq - pair) : len;
    char name[32];
    long n = cofre_url_decode(pair, nlen, name, sizeof(name), true);
    int idx = n < 0 ? -1 : param_index(name, (size_t)n);
    if (idx < 0)
        return true; /* unknown (or too long to be known): ignored */
    if (f->values[idx] != NULL) {
        *why = "a parameter is given more than once";
        return false;
    }
    const char *val = eq != NULL ? eq + 1 : pair + len;
    size_t vlen = (size_t)(pair + len - val);
    char *out = f->buf + *used;
    n = cofre_url_decode(val, vlen, out, vlen + 1, true);
    if (n < 0) {
        *why = "a parameter is not validly form-encoded";
        return false;
    }
    f->values[idx] = out;
    f->lens[idx] = (size_t)n;
    *used += (size_t)n + 1;
    return true;
}

bool cofre_oauth_form_parse(const char *body, size_t len, cofre_oauth_form_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    out->buf_size = len + COFRE_OAUTH_P_COUNT_ + 1; /* decoding never grows a value */
    out->buf = cofre_calloc(1, out->buf_size);
    size_t used = 0;
    size_t pairs = 0;
    const char *p = body;
    const char *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp != NULL ? amp : end;
        if (pair_end > p) {
            if (++pairs > COFRE_OAUTH_PARAMS_MAX) {
                *why = "too many parameters";
                return false;
            }
            if (!store_pair(out, p, (size_t)(pair_end - p), &used, why))
                return false;
        }
        p = pair_end + 1;
    }
    return true;
}

void cofre_oauth_form_release(cofre_oauth_form_t *f)
{
    if (f->buf != NULL) {
        sodium_memzero(f->buf, f->buf_size); /* it may hold a secret */
        free(f->buf);
    }
    memset(f, 0, sizeof(*f));
}

/* ---- client authentication -------------------------------------------------------------- */

static bool set_id(cofre_oauth_client_auth_t *out, const char *id, size_t len)
{
    if (len == 0 || len > COFRE_CLIENT_ID_MAX || memchr(id, '\0', len) != NULL)
        return false;
    memcpy(out->client_id, id, len);
    out->client_id[len] = '\0';
    return true;
}

static bool set_secret(cofre_oauth_client_auth_t *out, const char *s, size_t len)
{
    if (len == 0 || len > COFRE_SECRET_INPUT_MAX)
        return false;
    memcpy(out->secret, s, len);
    out->secret[len] = '\0';
    out->secret_len = len;
    return true;
}

/* RFC 6749 §2.3.1 / RFC 7617: base64(urlencode(id) ":" urlencode(secret)). */
static cofre_oauth_error_t parse_basic(const char *v, size_t len, cofre_oauth_client_auth_t *out,
                                       const char **why)
{
    *why = "the Authorization header is not valid Basic credentials";
    if (len < 6 || strncasecmp(v, "basic ", 6) != 0)
        return COFRE_OAUTH_INVALID_CLIENT;
    v += 6;
    len -= 6;
    while (len > 0 && *v == ' ') {
        v++;
        len--;
    }
    enum { RAW_MAX = 3 * (COFRE_CLIENT_ID_MAX + COFRE_SECRET_INPUT_MAX) + 1 };
    if (len > (RAW_MAX + 2) / 3 * 4)
        return COFRE_OAUTH_INVALID_CLIENT;
    unsigned char raw[RAW_MAX + 1];
    size_t raw_len = 0;
    const char *b64_end = NULL;
    if (sodium_base642bin(raw, RAW_MAX, v, len, NULL, &raw_len, &b64_end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        b64_end != v + len)
        return COFRE_OAUTH_INVALID_CLIENT;
    const unsigned char *colon = memchr(raw, ':', raw_len);
    char id[COFRE_CLIENT_ID_MAX + 1], secret[COFRE_SECRET_INPUT_MAX + 1];
    long id_len = -1, secret_len = -1;
    if (colon != NULL) {
        size_t a = (size_t)(colon - raw);
        id_len = cofre_url_decode((const char *)raw, a, id, sizeof(id), true);
        secret_len = cofre_url_decode((const char *)colon + 1, raw_len - a - 1, secret,
                                      sizeof(secret), true);
    }
    bool ok = id_len > 0 && secret_len > 0 && set_id(out, id, (size_t)id_len) &&
              set_secret(out, secret, (size_t)secret_len);
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(secret, sizeof(secret));
    if (!ok)
        return COFRE_OAUTH_INVALID_CLIENT;
    out->method = COFRE_OAUTH_BASIC;
    return COFRE_OAUTH_OK;
}

cofre_oauth_error_t cofre_oauth_client_auth(const char *authorization, size_t alen,
                                            const cofre_oauth_form_t *form,
                                            cofre_oauth_client_auth_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *id = form->values[COFRE_OAUTH_P_CLIENT_ID];
    const char *secret = form->values[COFRE_OAUTH_P_CLIENT_SECRET];
    if (authorization != NULL) {
        if (secret != NULL) {
            *why = "use one client authentication method, not Basic and client_secret both";
            return COFRE_OAUTH_INVALID_REQUEST;
        }
        cofre_oauth_error_t e = parse_basic(authorization, alen, out, why);
        /* A client_id in the body besides Basic is allowed only if it names the same client. */
        if (e == COFRE_OAUTH_OK && id != NULL && strcmp(id, out->client_id) != 0) {
            *why = "client_id in the body differs from the Basic credentials";
            return COFRE_OAUTH_INVALID_REQUEST;
        }
        return e;
    }
    if (id == NULL || secret == NULL) {
        *why = "client authentication is required (Basic, or client_id and client_secret)";
        return COFRE_OAUTH_INVALID_CLIENT;
    }
    if (!set_id(out, id, form->lens[COFRE_OAUTH_P_CLIENT_ID]) ||
        !set_secret(out, secret, form->lens[COFRE_OAUTH_P_CLIENT_SECRET])) {
        *why = "client_id or client_secret is empty or too long";
        return COFRE_OAUTH_INVALID_CLIENT;
    }
    out->method = COFRE_OAUTH_POST;
    return COFRE_OAUTH_OK;
}
