/*
 * uuid.h: UUIDs as cofre uses them for ids: generated as version 7 (time-ordered, so new rows
 * land at the end of indexes), accepted in any version, always written in lowercase canonical
 * form (8-4-4-4-12).
 */
#ifndef COFRE_UUID_H
#define COFRE_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define COFRE_UUID_LEN 36

/* Writes a new UUIDv7 (COFRE_UUID_LEN + 1 bytes). */
void cofre_uuid_v7(char out[COFRE_UUID_LEN + 1]);

/*
 * Validates s (len bytes) as a canonical UUID, any case, and writes its lowercase form.
 * Returns false (out untouched) when it is not one.
 */
bool cofre_uuid_parse(const char *s, size_t len, char out[COFRE_UUID_LEN + 1]);

#endif
