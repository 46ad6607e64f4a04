/*
 * json.c: strict request-body decoding on jansson.
 */
#include "cofre/json.h"

#include "cofre/common.h"

#include <string.h>

json_t *cofre_json_parse_object(const char *body, size_t len, cofre_problem_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            cofre_problem_set(err, COFRE_P_INVALID_AMOUNT, "a number is out of range: %s",
                              jerr.text);
        else
            cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "malformed JSON at line %d: %s",
                              jerr.line, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

static const char *type_name(cofre_json_type_t t)
{
    switch (t) {
    case COFRE_JSON_STRING:
        return "a string";
    case COFRE_JSON_INTEGER:
        return "an integer";
    case COFRE_JSON_BOOL:
        return "a boolean";
    case COFRE_JSON_OBJECT:
        return "an object";
    case COFRE_JSON_ARRAY:
        return "an array";
    case COFRE_JSON_AMOUNT:
        return "an integer from 1 to 9223372036854775807";
    }
    return "?";
}

static bool type_ok(const json_t *v, cofre_json_type_t t)
{
    switch (t) {
    case COFRE_JSON_STRING:
        return json_is_string(v);
    case COFRE_JSON_INTEGER:
        return json_is_integer(v);
    case COFRE_JSON_BOOL:
        return json_is_boolean(v);
    case COFRE_JSON_OBJECT:
        return json_is_object(v);
    case COFRE_JSON_ARRAY:
        return json_is_array(v);
    case COFRE_JSON_AMOUNT:
        return json_is_integer(v) && json_integer_value(v) >= 1;
    }
    return false;
}

static const cofre_json_field_t *find_field(const cofre_json_field_t *fields, size_t n,
                                            const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

bool cofre_json_check(const json_t *obj, const cofre_json_field_t *fields, size_t nfields,
                      const char *prefix, cofre_problem_t *err)
{
    const char *pre = prefix != NULL ? prefix : "";
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        const cofre_json_field_t *f = find_field(fields, nfields, key);
        if (f == NULL) {
            cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "unknown field \"%s%.64s\"", pre, key);
            return false;
        }
        if (!type_ok(value, f->type)) {
            cofre_problem_code_t code =
                f->type == COFRE_JSON_AMOUNT ? COFRE_P_INVALID_AMOUNT : COFRE_P_INVALID_REQUEST;
            cofre_problem_set(err, code, "\"%s%s\" must be %s", pre, key, type_name(f->type));
            return false;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].required && json_object_get(obj, fields[i].name) == NULL) {
            cofre_problem_code_t code = fields[i].type == COFRE_JSON_AMOUNT
                                            ? COFRE_P_INVALID_AMOUNT
                                            : COFRE_P_INVALID_REQUEST;
            cofre_problem_set(err, code, "\"%s%s\" is required", pre, fields[i].name);
            return false;
        }
    }
    return true;
}

const char *cofre_json_str(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

int64_t cofre_json_int(const json_t *obj, const char *name)
{
    return (int64_t)json_integer_value(json_object_get(obj, name));
}

bool cofre_json_bool(const json_t *obj, const char *name, bool def)
{
    const json_t *v = json_object_get(obj, name);
    return v != NULL ? json_is_true(v) : def;
}
