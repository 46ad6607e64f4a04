/*
 * oauth.h: the request side of the OAuth 2.0 endpoints, without I/O: form bodies
 * (application/x-www-form-urlencoded), client authentication by client_secret_basic or
 * client_secret_post (RFC 6749 §2.3.1), and the error codes of RFC 6749 §5.2 with their
 * JSON. Everything here reads untrusted input and is fuzzed (tests/fuzz/fuzz_jwt.c).
 */
#ifndef COFRE_AUTH_OAUTH_H
#define COFRE_AUTH_OAUTH_H

#include "auth/secret.h"
#include "cofre/http.h"
#include "cofre/jbuf.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum cofre_oauth_error {
    COFRE_OAUTH_OK = 0,
    COFRE_OAUTH_INVALID_REQUEST,
    COFRE_OAUTH_INVALID_CLIENT,
    COFRE_OAUTH_INVALID_GRANT,
    COFRE_OAUTH_UNAUTHORIZED_CLIENT,
    COFRE_OAUTH_UNSUPPORTED_GRANT_TYPE,
    COFRE_OAUTH_INVALID_SCOPE,
    COFRE_OAUTH_ERROR_COUNT_,
} cofre_oauth_error_t;

/* The RFC 6749 name ("invalid_client") and HTTP status (401 for invalid_client, else 400). */
const char *cofre_oauth_error_name(cofre_oauth_error_t e);
int cofre_oauth_error_status(cofre_oauth_error_t e);

/* Appends {"error": name, "error_description": description} to b. */
void cofre_oauth_error_json(cofre_oauth_error_t e, const char *description, cofre_jbuf_t *b);

/* The parameters the endpoints read; others are ignored (RFC 6749 §3.2). */
typedef enum cofre_oauth_param {
    COFRE_OAUTH_P_GRANT_TYPE,
    COFRE_OAUTH_P_SCOPE,
    COFRE_OAUTH_P_CLIENT_ID,
    COFRE_OAUTH_P_CLIENT_SECRET,
    COFRE_OAUTH_P_TOKEN,
    COFRE_OAUTH_P_TOKEN_TYPE_HINT,
    COFRE_OAUTH_P_COUNT_,
} cofre_oauth_param_t;

typedef struct cofre_oauth_form {
    const char *values[COFRE_OAUTH_P_COUNT_]; /* decoded, NUL-terminated; NULL when absent */
    size_t lens[COFRE_OAUTH_P_COUNT_];
    char *buf; /* owns the values */
    size_t buf_size;
} cofre_oauth_form_t;

#define COFRE_OAUTH_PARAMS_MAX 64 /* name=value pairs in one body */

/*
 * Parses a form body of len bytes. Returns true, or false with *why set to a constant
 * description: a bad percent escape, a value decoding to a NUL, a known parameter given
 * twice, more than COFRE_OAUTH_PARAMS_MAX pairs. Release the form either way.
 */
bool cofre_oauth_form_parse(const char *body, size_t len, cofre_oauth_form_t *out,
                            const char **why);
void cofre_oauth_form_release(cofre_oauth_form_t *f);

typedef enum cofre_oauth_method {
    COFRE_OAUTH_NONE,
    COFRE_OAUTH_BASIC,
    COFRE_OAUTH_POST,
} cofre_oauth_method_t;

typedef struct cofre_oauth_client_auth {
    cofre_oauth_method_t method;
    char client_id[COFRE_CLIENT_ID_MAX + 1];
    char secret[COFRE_SECRET_INPUT_MAX + 1];
    size_t secret_len;
} cofre_oauth_client_auth_t;

/*
 * Finds the client's credentials: the Authorization header's value (authorization, alen
 * bytes; NULL when absent) or client_id and client_secret in the form. Returns OK with out
 * filled; INVALID_REQUEST when both methods are used; INVALID_CLIENT when none is, when the
 * header is not Basic or is malformed, or when the id or secret is too long (*why says which).
 * The caller wipes out->secret after use.
 */
cofre_oauth_error_t cofre_oauth_client_auth(const char *authorization, size_t alen,
                                            const cofre_oauth_form_t *form,
                                            cofre_oauth_client_auth_t *out, const char **why);

#endif
