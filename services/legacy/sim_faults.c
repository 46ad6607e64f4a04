/*
 * sim_faults.c: control commands and fault decisions of cofre-legacy-sim (see sim_faults.h).
 *
 *   latency <ms>                       every request waits <ms> before it is processed
 *   drop|close|cut|garbage|badframe <count> [on=<mti>]
 *   decline <code> <count>             fresh 0200s are declined with <code>
 *   down <seconds> | up | disconnect | clear | seed <n> | status | ping | help | quit
 *   <count> = a number (the next n answers), "all", or "p=<probability>"
 */
#include "legacy/sim_faults.h"

#include "cofre/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS_MAX 4

static const char *const action_names[COFRE_SIM_ACTIONS] = {
    "respond", "drop", "close", "cut", "garbage", "badframe", "decline",
};

const char *cofre_sim_action_name(cofre_sim_action_t a)
{
    return a < COFRE_SIM_ACTIONS ? action_names[a] : "unknown";
}

void cofre_sim_faults_init(cofre_sim_faults_t *f, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    if (seed == 0)
        cofre_random_bytes(&seed, sizeof(seed));
    f->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: fast, reproducible from a seed; not for secrets. */
static uint64_t next_random(cofre_sim_faults_t *f)
{
    uint64_t x = f->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    f->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

void cofre_sim_faults_random(cofre_sim_faults_t *f, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(next_random(f) >> 56);
}

static bool chance(cofre_sim_faults_t *f, double p)
{
    return (double)(next_random(f) >> 11) * 0x1.0p-53 < p;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > max)
        return false;
    *out = v;
    return true;
}

/* "<n>", "all" or "p=<probability>" into fault. */
static bool parse_count(const char *s, cofre_sim_fault_t *fault)
{
    uint64_t n;
    fault->probability = 0;
    fault->remaining = -1;
    if (s == NULL)
        return false;
    if (strcmp(s, "all") == 0)
        return true;
    if (strncmp(s, "p=", 2) == 0) {
        char *end;
        errno = 0;
        double p = strtod(s + 2, &end);
        fault->probability = p;
        return s[2] != '\0' && *end == '\0' && errno == 0 && p > 0 && p <= 1;
    }
    if (!parse_u64(s, COFRE_SIM_COUNT_MAX, &n) || n == 0)
        return false;
    fault->remaining = (int64_t)n;
    return true;
}

static bool is_request_mti(const char *s)
{
    return strcmp(s, "0200") == 0 || strcmp(s, "0400") == 0 || strcmp(s, "0800") == 0;
}

static bool is_code(const char *s)
{
    if (s == NULL || strlen(s) != 2)
        return false;
    for (int i = 0; i < 2; i++) {
        bool ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z');
        if (!ok)
            return false;
    }
    return strcmp(s, "00") != 0;
}

static cofre_sim_command_t reply_with(char *reply, size_t cap, const char *text)
{
    snprintf(reply, cap, "%s", text);
    return COFRE_SIM_CMD_DONE;
}

static cofre_sim_command_t add_fault(cofre_sim_faults_t *f, cofre_sim_action_t action, char **tok,
                                     int ntok, char *reply, size_t cap)
{
    cofre_sim_fault_t fault;
    memset(&fault, 0, sizeof(fault));
    fault.action = action;
    int next = 1;
    if (action == COFRE_SIM_DECLINE) {
        if (!is_code(tok[next]))
            return reply_with(reply, cap, "error decline needs a 2-character code other than 00");
        memcpy(fault.code, tok[next++], 3);
        memcpy(fault.mti, "0200", 5);
    }
    if (!parse_count(next < ntok ? tok[next] : NULL, &fault))
        return reply_with(reply, cap, "error count must be 1-1000000, all, or p=<0..1>");
    next++;
    if (next < ntok && action != COFRE_SIM_DECLINE) {
        if (strncmp(tok[next], "on=", 3) != 0 || !is_request_mti(tok[next] + 3))
            return reply_with(reply, cap, "error filter must be on=0200, on=0400 or on=0800");
        memcpy(fault.mti, tok[next] + 3, 5);
        next++;
    }
    if (next < ntok)
        return reply_with(reply, cap, "error too many arguments");
    if (f->n == COFRE_SIM_FAULTS_MAX)
        return reply_with(reply, cap, "error too many faults (clear first)");
    f->list[f->n++] = fault;
    return reply_with(reply, cap, "ok");
}

static cofre_sim_command_t set_number(const char *what, char **tok, int ntok, uint64_t max,
                                      uint64_t *out, char *reply, size_t cap)
{
    if (ntok != 2 || !parse_u64(tok[1], max, out)) {
        snprintf(reply, cap, "error %s needs one number, 0-%llu", what, (unsigned long long)max);
        return COFRE_SIM_CMD_DONE;
    }
    return reply_with(reply, cap, "ok");
}

static int tokenize(char *line, char **tok)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t\r", &save); t != NULL;
         t = strtok_r(NULL, " \t\r", &save)) {
        if (n == TOKENS_MAX)
            return -1;
        tok[n++] = t;
    }
    return n;
}

static cofre_sim_command_t simple_command(const char *cmd, int ntok, char *reply, size_t cap)
{
    static const struct {
        const char *name;
        cofre_sim_command_t what;
    } simple[] = {{"up", COFRE_SIM_CMD_UP},
                  {"disconnect", COFRE_SIM_CMD_DISCONNECT},
                  {"status", COFRE_SIM_CMD_STATUS},
                  {"quit", COFRE_SIM_CMD_QUIT}};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(simple); i++) {
        if (strcmp(cmd, simple[i].name) == 0)
            return ntok == 1 ? simple[i].what
                             : reply_with(reply, cap, "error this command takes no argument");
    }
    if (strcmp(cmd, "ping") == 0)
        return reply_with(reply, cap, "pong");
    if (strcmp(cmd, "help") == 0)
        return reply_with(reply, cap,
                          "ok commands: latency <ms>; drop|close|cut|garbage|badframe <count> "
                          "[on=<mti>]; decline <code> <count>; down <s>; up; disconnect; clear; "
                          "seed <n>; status; ping; quit. count: <n>, all or p=<probability>");
    return reply_with(reply, cap, "error unknown command (try help)");
}

cofre_sim_command_t cofre_sim_faults_command(cofre_sim_faults_t *f, const char *line, char *reply,
                                             size_t cap, uint64_t *arg)
{
    char copy[COFRE_SIM_LINE_MAX + 1];
    char *tok[TOKENS_MAX];
    if (strlen(line) > COFRE_SIM_LINE_MAX)
        return reply_with(reply, cap, "error line too long");
    snprintf(copy, sizeof(copy), "%s", line);
    int ntok = tokenize(copy, tok);
    if (ntok < 0)
        return reply_with(reply, cap, "error too many arguments");
    if (ntok == 0)
        return reply_with(reply, cap, "error empty command");
    for (int a = COFRE_SIM_DROP; a < COFRE_SIM_ACTIONS; a++) {
        if (strcmp(tok[0], action_names[a]) == 0)
            return add_fault(f, (cofre_sim_action_t)a, tok, ntok, reply, cap);
    }
    uint64_t v = 0;
    cofre_sim_command_t rc;
    if (strcmp(tok[0], "latency") == 0) {
        rc = set_number("latency", tok, ntok, COFRE_SIM_LATENCY_MAX_MS, &v, reply, cap);
        if (strcmp(reply, "ok") == 0)
            f->latency_ms = (uint32_t)v;
        return rc;
    }
    if (strcmp(tok[0], "seed") == 0) {
        rc = set_number("seed", tok, ntok, UINT64_MAX, &v, reply, cap);
        if (strcmp(reply, "ok") == 0)
            f->rng = v != 0 ? v : 0x9e3779b97f4a7c15ull;
        return rc;
    }
    if (strcmp(tok[0], "down") == 0) {
        if (ntok != 2 || !parse_u64(tok[1], COFRE_SIM_DOWN_MAX_S, &v) || v == 0)
            return reply_with(reply, cap, "error down needs one number of seconds, 1-3600");
        *arg = v;
        return COFRE_SIM_CMD_DOWN;
    }
    if (strcmp(tok[0], "clear") == 0) {
        f->n = 0;
        f->latency_ms = 0;
        return reply_with(reply, cap, ntok == 1 ? "ok" : "error this command takes no argument");
    }
    return simple_command(tok[0], ntok, reply, cap);
}

/* Takes one hit from the first matching fault of the given kind(s). */
static cofre_sim_fault_t *strike(cofre_sim_faults_t *f, const char *req_mti, bool decline)
{
    for (unsigned i = 0; i < f->n; i++) {
        cofre_sim_fault_t *x = &f->list[i];
        if ((x->action == COFRE_SIM_DECLINE) != decline)
            continue;
        if (x->mti[0] != '\0' && strcmp(x->mti, req_mti) != 0)
            continue;
        if (x->probability > 0 ? !chance(f, x->probability) : x->remaining == 0)
            continue;
        if (x->remaining > 0)
            x->remaining--;
        f->applied[x->action]++;
        return x;
    }
    return NULL;
}

/* Removes count-based faults that are used up. */
static void sweep(cofre_sim_faults_t *f)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < f->n; i++) {
        if (f->list[i].remaining != 0)
            f->list[kept++] = f->list[i];
    }
    f->n = kept;
}

cofre_sim_action_t cofre_sim_faults_answer(cofre_sim_faults_t *f, const char *req_mti)
{
    cofre_sim_fault_t *x = strike(f, req_mti, false);
    if (x == NULL)
        return COFRE_SIM_RESPOND;
    cofre_sim_action_t a = x->action;
    sweep(f);
    return a;
}

const char *cofre_sim_faults_decline(void *data)
{
    cofre_sim_faults_t *f = data;
    cofre_sim_fault_t *x = strike(f, "0200", true);
    if (x == NULL)
        return NULL;
    memcpy(f->declined_code, x->code, sizeof(f->declined_code));
    sweep(f);
    return f->declined_code;
}

void cofre_sim_faults_json(const cofre_sim_faults_t *f, cofre_jbuf_t *b)
{
    cofre_jbuf_kuint(b, "latency_ms", f->latency_ms);
    cofre_jbuf_key(b, "faults");
    cofre_jbuf_arr_begin(b);
    for (unsigned i = 0; i < f->n; i++) {
        const cofre_sim_fault_t *x = &f->list[i];
        cofre_jbuf_obj_begin(b);
        cofre_jbuf_kstr(b, "fault", action_names[x->action]);
        if (x->probability > 0)
            cofre_jbuf_kuint(b, "per_million", (uint64_t)(x->probability * 1e6 + 0.5));
        else
            cofre_jbuf_kint(b, "remaining", x->remaining);
        cofre_jbuf_kstr(b, "on", x->mti[0] != '\0' ? x->mti : NULL);
        if (x->action == COFRE_SIM_DECLINE)
            cofre_jbuf_kstr(b, "code", x->code);
        cofre_jbuf_obj_end(b);
    }
    cofre_jbuf_arr_end(b);
    cofre_jbuf_key(b, "injected");
    cofre_jbuf_obj_begin(b);
    for (int a = COFRE_SIM_DROP; a < COFRE_SIM_ACTIONS; a++)
        cofre_jbuf_kuint(b, action_names[a], f->applied[a]);
    cofre_jbuf_obj_end(b);
}
