/*
 * scope.c: the scope table of the contract.
 */
#include "cofre/scope.h"

#include "cofre/common.h"
#include "cofre/http.h"

#include <string.h>

static const struct {
    uint32_t bit;
    const char *name;
} scopes[] = {
    {COFRE_SCOPE_ACCOUNTS_READ, "accounts:read"},
    {COFRE_SCOPE_ACCOUNTS_WRITE, "accounts:write"},
    {COFRE_SCOPE_TRANSFERS_READ, "transfers:read"},
    {COFRE_SCOPE_TRANSFERS_WRITE, "transfers:write"},
    {COFRE_SCOPE_AUDIT_READ, "audit:read"},
    {COFRE_SCOPE_LEDGER_ADMIN, "ledger:admin"},
};

const char *cofre_scope_name(uint32_t bit)
{
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(scopes); i++)
        if (scopes[i].bit == bit)
            return scopes[i].name;
    return NULL;
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
static bool scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static uint32_t lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(scopes); i++)
        if (strlen(scopes[i].name) == len && memcmp(scopes[i].name, name, len) == 0)
            return scopes[i].bit;
    return 0;
}

bool cofre_scope_parse(const char *s, size_t len, uint32_t *bits, unsigned *unknown)
{
    *bits = 0;
    if (unknown != NULL)
        *unknown = 0;
    if (len > COFRE_SCOPE_INPUT_MAX)
        return false;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != ' ') {
            if (!scope_char((unsigned char)s[i]))
                return false;
            i++;
        }
        if (i == start)
            return false; /* an empty item */
        uint32_t bit = lookup(s + start, i - start);
        if (bit == 0 && unknown != NULL)
            (*unknown)++;
        *bits |= bit;
        if (i < len) {
            i++; /* the separating space */
            if (i == len)
                return false; /* a trailing space */
        }
    }
    return true;
}

void cofre_scope_format(uint32_t bits, char out[COFRE_SCOPE_LIST_MAX])
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(scopes); i++) {
        if ((bits & scopes[i].bit) == 0)
            continue;
        size_t len = strlen(scopes[i].name);
        COFRE_ASSERT(n + len + 2 <= COFRE_SCOPE_LIST_MAX);
        if (n > 0)
            out[n++] = ' ';
        memcpy(out + n, scopes[i].name, len + 1);
        n += len;
    }
}
