/*
 * sim_faults.h: the fault injection of cofre-legacy-sim, driven by text commands on its
 * control port (one command per line, one reply line each). It keeps the active faults and
 * decides, for each answer the host is about to send, whether it goes out normally or is
 * dropped, replaced by garbage, cut in the middle, or followed by a disconnect; and whether a
 * fresh 0200 is declined by injection. Commands that act on sockets (down, up, disconnect,
 * status) are returned to the server (sim_server.c), which owns them. The command language is
 * documented in docs/legacy-iso8583.md.
 */
#ifndef COFRE_LEGACY_SIM_FAULTS_H
#define COFRE_LEGACY_SIM_FAULTS_H

#include "cofre/jbuf.h"

#include <stddef.h>
#include <stdint.h>

#define COFRE_SIM_FAULTS_MAX     16
#define COFRE_SIM_COUNT_MAX      1000000
#define COFRE_SIM_LATENCY_MAX_MS 600000
#define COFRE_SIM_DOWN_MAX_S     3600
#define COFRE_SIM_LINE_MAX       256

/* What happens to an answer. */
typedef enum cofre_sim_action {
    COFRE_SIM_RESPOND = 0, /* sent normally */
    COFRE_SIM_DROP,        /* not sent; the connection stays */
    COFRE_SIM_CLOSE,       /* not sent; the connection is closed */
    COFRE_SIM_CUT,         /* the first half of its frame is sent, then the connection closes */
    COFRE_SIM_GARBAGE,     /* COFRE_SIM_GARBAGE_LEN random bytes, unframed, instead */
    COFRE_SIM_BADFRAME,    /* a frame with a valid length prefix and a random body, instead */
    COFRE_SIM_DECLINE,     /* (not an answer fault) a fresh 0200 is declined with a code */
    COFRE_SIM_ACTIONS
} cofre_sim_action_t;

#define COFRE_SIM_GARBAGE_LEN   64
#define COFRE_SIM_BADFRAME_BODY 40

typedef struct cofre_sim_fault {
    cofre_sim_action_t action;
    int64_t remaining;  /* answers still to hit; -1: every one (all, or a probability) */
    double probability; /* 0: count-based; else each matching answer with this chance */
    char mti[5];        /* only answers to requests of this MTI; "" any */
    char code[3];       /* COFRE_SIM_DECLINE: the response code */
} cofre_sim_fault_t;

typedef struct cofre_sim_faults {
    cofre_sim_fault_t list[COFRE_SIM_FAULTS_MAX];
    unsigned n;
    uint32_t latency_ms; /* every request waits this long before it is processed */
    uint64_t rng;
    uint64_t applied[COFRE_SIM_ACTIONS]; /* how many times each fault struck */
    char declined_code[3];               /* the code last handed out by _decline */
} cofre_sim_faults_t;

/* Commands the server carries out itself. */
typedef enum cofre_sim_command {
    COFRE_SIM_CMD_DONE = 0,   /* handled here; reply holds the answer */
    COFRE_SIM_CMD_DOWN,       /* go down for *arg seconds */
    COFRE_SIM_CMD_UP,         /* come back now */
    COFRE_SIM_CMD_DISCONNECT, /* close every client connection */
    COFRE_SIM_CMD_STATUS,     /* reply with the status line */
    COFRE_SIM_CMD_QUIT,       /* close this control connection */
} cofre_sim_command_t;

/* No faults, no latency; seed (0: a random one) drives probabilities and garbage. */
void cofre_sim_faults_init(cofre_sim_faults_t *f, uint64_t seed);

/*
 * Parses and applies one command line (without its newline). Writes the reply line (without
 * newline) into reply (cap bytes) for COFRE_SIM_CMD_DONE and for errors ("error <why>");
 * returns what the server must do.
 */
cofre_sim_command_t cofre_sim_faults_command(cofre_sim_faults_t *f, const char *line, char *reply,
                                             size_t cap, uint64_t *arg);

/* What to do with the answer to a request of MTI req_mti; consumes one hit of the fault. */
cofre_sim_action_t cofre_sim_faults_answer(cofre_sim_faults_t *f, const char *req_mti);

/*
 * The injected decline code for a fresh 0200, or NULL. data is the cofre_sim_faults_t (the
 * signature of sim_host.h's cofre_sim_decline_fn).
 */
const char *cofre_sim_faults_decline(void *data);

/* Fills buf with n pseudo-random bytes from the fault generator. */
void cofre_sim_faults_random(cofre_sim_faults_t *f, uint8_t *buf, size_t n);

/* Appends "latency_ms", "faults" (the active list) and "injected" (counts) as object members. */
void cofre_sim_faults_json(const cofre_sim_faults_t *f, cofre_jbuf_t *b);

/* The command's name of an action ("drop", "close", ...). */
const char *cofre_sim_action_name(cofre_sim_action_t a);

#endif
