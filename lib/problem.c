/*
 * problem.c: the table of problem codes, and their problem+json rendering.
 */
#include "cofre/problem.h"

#include "cofre/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int status;
    const char *title;
} problem_info_t;

static const problem_info_t problems[COFRE_P_COUNT_] = {
    [COFRE_P_NONE] = {"none", 200, "No problem"},
    [COFRE_P_INVALID_REQUEST] = {"invalid_request", 400, "The request is malformed"},
    [COFRE_P_INVALID_AMOUNT] = {"invalid_amount", 400,
                                "The amount must be an integer from 1 to 2^63-1"},
    [COFRE_P_INVALID_CURRENCY] = {"invalid_currency", 400, "The currency is not an ISO 4217 code"},
    [COFRE_P_INVALID_CURSOR] = {"invalid_cursor", 400, "The cursor is malformed"},
    [COFRE_P_SAME_ACCOUNT] = {"same_account", 400, "The debit and credit accounts must differ"},
    [COFRE_P_UNAUTHORIZED] = {"unauthorized", 401, "A valid access token is required"},
    [COFRE_P_FORBIDDEN] = {"forbidden", 403, "The access token lacks a required scope"},
    [COFRE_P_NOT_FOUND] = {"not_found", 404, "No such resource"},
    [COFRE_P_ACCOUNT_NOT_FOUND] = {"account_not_found", 404, "The account does not exist"},
    [COFRE_P_TRANSFER_NOT_FOUND] = {"transfer_not_found", 404, "The transfer does not exist"},
    [COFRE_P_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405,
                                    "The method is not allowed on this resource"},
    [COFRE_P_ACCOUNT_EXISTS] = {"account_exists", 409, "An account with this id exists"},
    [COFRE_P_TRANSFER_EXISTS] = {"transfer_exists", 409, "A transfer with this id exists"},
    [COFRE_P_IDEMPOTENCY_IN_FLIGHT] = {"idempotency_request_in_flight", 409,
                                       "A request with this idempotency key is still running"},
    [COFRE_P_PAYLOAD_TOO_LARGE] = {"payload_too_large", 413, "The request body is too large"},
    [COFRE_P_UNSUPPORTED_MEDIA_TYPE] = {"unsupported_media_type", 415,
                                        "The request body must be application/json"},
    [COFRE_P_INSUFFICIENT_FUNDS] = {"insufficient_funds", 422,
                                    "The debit account has insufficient funds"},
    [COFRE_P_CURRENCY_MISMATCH] = {"currency_mismatch", 422,
                                   "The currencies of the transfer and accounts differ"},
    [COFRE_P_IDEMPOTENCY_KEY_REUSED] = {"idempotency_key_reused", 422,
                                        "The idempotency key was used with another request"},
    [COFRE_P_BALANCE_OVERFLOW] = {"balance_overflow", 422,
                                  "The transfer would overflow an account's totals"},
    [COFRE_P_RATE_LIMITED] = {"rate_limited", 429, "Too many requests"},
    [COFRE_P_INTERNAL] = {"internal", 500, "Internal error"},
    [COFRE_P_OVERLOADED] = {"overloaded", 503, "The service is overloaded; retry later"},
    [COFRE_P_UNAVAILABLE] = {"unavailable", 503,
                             "A dependency of the service is unavailable; retry later"},
};

static const problem_info_t *info(cofre_problem_code_t code)
{
    COFRE_ASSERT(code >= 0 && code < COFRE_P_COUNT_);
    return &problems[code];
}

const char *cofre_problem_name(cofre_problem_code_t code)
{
    return info(code)->name;
}

int cofre_problem_status(cofre_problem_code_t code)
{
    return info(code)->status;
}

const char *cofre_problem_title(cofre_problem_code_t code)
{
    return info(code)->title;
}

cofre_problem_code_t cofre_problem_by_name(const char *name)
{
    for (int i = 1; i < COFRE_P_COUNT_; i++)
        if (strcmp(problems[i].name, name) == 0)
            return (cofre_problem_code_t)i;
    return COFRE_P_NONE;
}

cofre_problem_code_t cofre_problem_vset(cofre_problem_t *p, cofre_problem_code_t code,
                                        const char *fmt, va_list ap)
{
    p->code = code;
    /* The compiler checks fmt against the arguments through the format attribute; the
     * analyzer reports every va_list parameter as uninitialized (a known false positive). */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(p->detail, sizeof(p->detail), fmt, ap); /* Flawfinder: ignore */
    return code;
}

cofre_problem_code_t cofre_problem_set(cofre_problem_t *p, cofre_problem_code_t code,
                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cofre_problem_vset(p, code, fmt, ap);
    va_end(ap);
    return code;
}

void cofre_problem_render_members(const cofre_problem_t *p, int status, cofre_jbuf_t *out)
{
    const problem_info_t *pi = info(p->code);
    char type[64];
    snprintf(type, sizeof(type), "urn:cofre:problem:%s", pi->name);
    cofre_jbuf_kstr(out, "type", type);
    cofre_jbuf_kstr(out, "title", pi->title);
    cofre_jbuf_kint(out, "status", status != 0 ? status : pi->status);
    cofre_jbuf_kstr(out, "detail", p->detail[0] != '\0' ? p->detail : pi->title);
    cofre_jbuf_kstr(out, "code", pi->name);
}

void cofre_problem_render(const cofre_problem_t *p, const char *request_id, cofre_jbuf_t *out)
{
    cofre_jbuf_obj_begin(out);
    cofre_problem_render_members(p, 0, out);
    if (request_id != NULL)
        cofre_jbuf_kstr(out, "request_id", request_id);
    cofre_jbuf_obj_end(out);
}
