/*
 * scope.h: the contract's OAuth scopes as names and as the COFRE_SCOPE_* bits of http.h. The
 * token issuer writes them into tokens, the token check reads them back, and a route asks for
 * them by bit; this is the one table that maps the two.
 */
#ifndef COFRE_SCOPE_H
#define COFRE_SCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest space-separated list of every scope, plus the NUL. */
#define COFRE_SCOPE_LIST_MAX 96
/* Longest scope string accepted from outside (a token claim, a request). */
#define COFRE_SCOPE_INPUT_MAX 1024

/* The name of one scope bit ("accounts:read"), or NULL when bit is not exactly one scope. */
const char *cofre_scope_name(uint32_t bit);

/*
 * Parses a space-separated scope list (RFC 6749 §3.3) of len bytes into bits. Names that are
 * not scopes of the contract are skipped and counted in *unknown (may be NULL). Returns
 * false on malformed input: empty items (two spaces in a row, a leading or trailing space),
 * characters outside %x21 / %x23-5B / %x5D-7E, or len > COFRE_SCOPE_INPUT_MAX.
 */
bool cofre_scope_parse(const char *s, size_t len, uint32_t *bits, unsigned *unknown);

/* Writes the names of bits, space-separated, in the contract's order, into out. */
void cofre_scope_format(uint32_t bits, char out[COFRE_SCOPE_LIST_MAX]);

#endif
