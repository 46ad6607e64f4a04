/*
 * adapter_policy.c: response code classes and backoff with jitter (see adapter_policy.h).
 */
#include "legacy/adapter_policy.h"

#include "cofre/common.h"

#include <string.h>

static const char *const transient_codes[] = {"19", "68", "91", "96"};

cofre_adapter_rc_class_t cofre_adapter_policy_classify(const char *code)
{
    if (code == NULL || strlen(code) != 2)
        return COFRE_ADAPTER_RC_PERMANENT;
    if (strcmp(code, "00") == 0)
        return COFRE_ADAPTER_RC_APPROVED;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(transient_codes); i++) {
        if (strcmp(code, transient_codes[i]) == 0)
            return COFRE_ADAPTER_RC_TRANSIENT;
    }
    return COFRE_ADAPTER_RC_PERMANENT;
}

bool cofre_adapter_policy_needs_sign_on(const char *code)
{
    return code != NULL && strcmp(code, "91") == 0;
}

uint64_t cofre_adapter_policy_backoff_ms(const cofre_adapter_backoff_t *b, unsigned attempt,
                                         uint64_t rand)
{
    COFRE_ASSERT(b->min_ms >= 1 && b->min_ms <= b->max_ms);
    uint64_t d = b->min_ms;
    for (unsigned i = 0; i < attempt && d < b->max_ms; i++)
        d *= 2;
    d = COFRE_MIN(d, b->max_ms);
    uint64_t half = d / 2;
    return d - half + rand % (half + 1);
}
