/*
 * json.h: strict decoding of JSON request bodies with jansson. A body must be one JSON object
 * with no duplicate keys, no NUL in strings and nothing after it; a field table names every
 * allowed member with its type, so unknown members are rejected. Errors come back as problems
 * with the contract's codes.
 */
#ifndef COFRE_JSON_H
#define COFRE_JSON_H

#include "cofre/problem.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cofre_json_type {
    COFRE_JSON_STRING,
    COFRE_JSON_INTEGER,
    COFRE_JSON_BOOL,
    COFRE_JSON_OBJECT,
    COFRE_JSON_ARRAY,
    COFRE_JSON_AMOUNT, /* integer 1..2^63-1; anything else is invalid_amount */
} cofre_json_type_t;

typedef struct cofre_json_field {
    const char *name;
    cofre_json_type_t type;
    bool required;
} cofre_json_field_t;

/*
 * Parses body into a new object (the caller owns it: json_decref). A body that is not valid
 * JSON, not an object, or has a duplicate key is invalid_request; an integer too large for
 * int64 is invalid_amount (the only integers in request bodies are amounts). Returns NULL
 * and fills err on failure.
 */
json_t *cofre_json_parse_object(const char *body, size_t len, cofre_problem_t *err);

/*
 * Checks that obj has only the members in fields, each of its type, and every required one.
 * Returns true, or false with err filled (the first violation, naming the member; prefix, if
 * not NULL, is prepended to names, e.g. "transfers[3].").
 */
bool cofre_json_check(const json_t *obj, const cofre_json_field_t *fields, size_t nfields,
                      const char *prefix, cofre_problem_t *err);

/* Member accessors after cofre_json_check: NULL / 0 / false when absent. */
const char *cofre_json_str(const json_t *obj, const char *name);
int64_t cofre_json_int(const json_t *obj, const char *name);
bool cofre_json_bool(const json_t *obj, const char *name, bool def);

#endif
