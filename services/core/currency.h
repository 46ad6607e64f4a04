/*
 * currency.h: the ISO 4217 alphabetic codes the ledger accepts (active codes, without the
 * testing and "no currency" codes XTS and XXX).
 */
#ifndef COFRE_CORE_CURRENCY_H
#define COFRE_CORE_CURRENCY_H

#include <stdbool.h>
#include <stddef.h>

/* True when s (len bytes) is an accepted code, exactly three uppercase letters. */
bool cofre_currency_valid(const char *s, size_t len);

#endif
