/*
 * registry.c: picks the registry implementation for a COFRE_DB url (sqlite:PATH, or a
 * postgres:// or postgresql:// URL), and builds auth events in the same CloudEvents shape as
 * cofre-core's outbox rows.
 */
#include "auth/registry.h"

#include "cofre/db.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/pq.h"
#include "cofre/scope.h"
#include "cofre/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_ID_MAX_LEN 64

int cofre_registry_open(const char *url, cofre_registry_t **out)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_registry_sqlite_open(target, out);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_registry_pg_open(target, out);
}

int cofre_registry_migrate(const char *url)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_registry_sqlite_migrate(target);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_registry_pg_migrate(target);
}

void cofre_registry_close(cofre_registry_t *r)
{
    if (r != NULL)
        r->ops->close(r);
}

static void write_actor(cofre_jbuf_t *b, const cofre_actor_t *a)
{
    cofre_jbuf_key(b, "actor");
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "client_id", a->client_id);
    cofre_jbuf_kstr(b, "address", a->address);
    cofre_jbuf_kstr(b, "request_id", a->request_id);
    if (a->command != NULL)
        cofre_jbuf_kstr(b, "command", a->command);
    cofre_jbuf_obj_end(b);
}

void cofre_registry_event(cofre_event_t *ev, const char *type, const char *key,
                          const char *entity_name, const char *entity_json,
                          const cofre_actor_t *actor, const char *traceparent)
{
    memset(ev, 0, sizeof(*ev));
    cofre_uuid_v7(ev->event_id);
    ev->type = type;
    ev->partition_key = key;
    if (traceparent != NULL && traceparent[0] != '\0') {
        snprintf(ev->traceparent, sizeof(ev->traceparent), "%s", traceparent);
    } else {
        cofre_trace_t t;
        cofre_trace_start(&t, NULL, 0);
        cofre_trace_format(&t, ev->traceparent);
    }
    char now[COFRE_TIME_LEN + 1];
    cofre_time_format(cofre_now_wall_us(), now);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "specversion", "1.0");
    cofre_jbuf_kstr(&b, "id", ev->event_id);
    cofre_jbuf_kstr(&b, "source", "/cofre/auth");
    cofre_jbuf_kstr(&b, "type", type);
    cofre_jbuf_kstr(&b, "time", now);
    cofre_jbuf_kstr(&b, "subject", key);
    cofre_jbuf_kstr(&b, "datacontenttype", "application/json");
    cofre_jbuf_kstr(&b, "traceparent", ev->traceparent);
    cofre_jbuf_key(&b, "data");
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_key(&b, entity_name);
    cofre_jbuf_raw(&b, entity_json, strlen(entity_json));
    write_actor(&b, actor);
    cofre_jbuf_obj_end(&b);
    cofre_jbuf_obj_end(&b);
    ev->payload = cofre_jbuf_steal(&b, &ev->payload_len);
}

void cofre_registry_event_release(cofre_event_t *ev)
{
    free(ev->payload);
    ev->payload = NULL;
}

void cofre_registry_client_json(const cofre_client_t *c, cofre_jbuf_t *b)
{
    char scopes[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(c->scopes, scopes);
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "client_id", c->client_id);
    cofre_jbuf_kstr(b, "owner", c->owner);
    cofre_jbuf_kstr(b, "scope", scopes);
    cofre_jbuf_kbool(b, "disabled", c->disabled_at != 0);
    cofre_jbuf_kstr(b, "created_at", c->created_at);
    cofre_jbuf_obj_end(b);
}

static bool chars_valid(const char *s, size_t max, const char *extra)
{
    size_t len = strlen(s);
    if (len < 1 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  strchr(extra, c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

bool cofre_registry_client_id_valid(const char *s)
{
    return chars_valid(s, CLIENT_ID_MAX_LEN, "._-");
}

bool cofre_registry_owner_valid(const char *s)
{
    return chars_valid(s, COFRE_OWNER_MAX, "._:@-");
}
