/*
 * cli.h: cofre-auth's administrative commands, run against the registry and the keys
 * directory while the service runs or not:
 *
 *   client add --name N --scopes "S" [--owner O]        prints the secret, once
 *   client ensure --name N --scopes "S" [--owner O] --secret-file F
 *                                                        idempotent: creates the client or
 *                                                        repairs F so it holds a valid secret
 *   client list | client disable N | client rotate-secret N
 *   keys rotate [--now] | keys list
 *
 * Output for people and scripts goes to stdout, logs to stderr. Exit status: 0 done, 1 the
 * command failed, 2 the command line is wrong.
 */
#ifndef COFRE_AUTH_CLI_H
#define COFRE_AUTH_CLI_H

#include "auth/secret.h"

typedef struct cofre_authcli_config {
    const char *db_url;
    const char *keys_dir;
    cofre_secret_params_t argon2;
    unsigned key_lead_s;  /* a rotated key starts signing this much later */
    unsigned token_ttl_s; /* for key states */
} cofre_authcli_config_t;

/* Runs argv[0] ("client" or "keys") with its arguments. Returns the exit status. */
int cofre_authcli_run(const cofre_authcli_config_t *cfg, int argc, char **argv);

#endif
