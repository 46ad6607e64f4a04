/*
 * problem.h: errors as RFC 9457 problem details (application/problem+json) with the contract's
 * stable machine codes. Each code has one HTTP status and one title, here and nowhere else;
 * docs/openapi.yaml lists the same table.
 */
#ifndef COFRE_PROBLEM_H
#define COFRE_PROBLEM_H

#include "cofre/jbuf.h"

#include <stdarg.h>
#include <stddef.h>

typedef enum cofre_problem_code {
    COFRE_P_NONE = 0,
    COFRE_P_INVALID_REQUEST,
    COFRE_P_INVALID_AMOUNT,
    COFRE_P_INVALID_CURRENCY,
    COFRE_P_INVALID_CURSOR,
    COFRE_P_SAME_ACCOUNT,
    COFRE_P_UNAUTHORIZED,
    COFRE_P_FORBIDDEN,
    COFRE_P_NOT_FOUND,
    COFRE_P_ACCOUNT_NOT_FOUND,
    COFRE_P_TRANSFER_NOT_FOUND,
    COFRE_P_METHOD_NOT_ALLOWED,
    COFRE_P_ACCOUNT_EXISTS,
    COFRE_P_TRANSFER_EXISTS,
    COFRE_P_IDEMPOTENCY_IN_FLIGHT,
    COFRE_P_PAYLOAD_TOO_LARGE,
    COFRE_P_UNSUPPORTED_MEDIA_TYPE,
    COFRE_P_INSUFFICIENT_FUNDS,
    COFRE_P_CURRENCY_MISMATCH,
    COFRE_P_IDEMPOTENCY_KEY_REUSED,
    COFRE_P_BALANCE_OVERFLOW,
    COFRE_P_RATE_LIMITED,
    COFRE_P_INTERNAL,
    COFRE_P_OVERLOADED,
    COFRE_P_UNAVAILABLE,
    COFRE_P_COUNT_,
} cofre_problem_code_t;

#define COFRE_PROBLEM_DETAIL_MAX 256

typedef struct cofre_problem {
    cofre_problem_code_t code;
    char detail[COFRE_PROBLEM_DETAIL_MAX];
} cofre_problem_t;

/* The stable code ("insufficient_funds"), its HTTP status and its title. */
const char *cofre_problem_name(cofre_problem_code_t code);
int cofre_problem_status(cofre_problem_code_t code);
const char *cofre_problem_title(cofre_problem_code_t code);

/* Looks a code up by its name. Returns COFRE_P_NONE when unknown. */
cofre_problem_code_t cofre_problem_by_name(const char *name);

/* Sets p to code with a printf-formatted detail (truncated to fit). Returns the code. */
cofre_problem_code_t cofre_problem_set(cofre_problem_t *p, cofre_problem_code_t code,
                                       const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Appends the problem+json object for p to out; request_id (may be NULL) is added as an
 * extension member so a client can quote it to support.
 */
void cofre_problem_render(const cofre_problem_t *p, const char *request_id, cofre_jbuf_t *out);

/* cofre_problem_set with a va_list. */
cofre_problem_code_t cofre_problem_vset(cofre_problem_t *p, cofre_problem_code_t code,
                                        const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Writes the members of the problem object (no braces), for embedding in a larger object.
 * status 0 writes the code's own status; another value overrides it (an atomic batch answers
 * 422 whatever its failing item's code).
 */
void cofre_problem_render_members(const cofre_problem_t *p, int status, cofre_jbuf_t *out);

#endif
