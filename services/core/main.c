/*
 * cofre-core: the ledger service. main() reads configuration, wires the modules and runs the
 * HTTP server until SIGTERM.
 */
#include "cofre/common.h"
#include "cofre/http.h"
#include "cofre/log.h"
#include "cofre/service.h"

#include <stdio.h>
#include <stdlib.h>

static const char usage[] = "Usage: cofre-core [--help | --version]\n";

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-core", usage, "127.0.0.1:8081", "sqlite:var/core.db", argc,
                       argv, false);
    cofre_config_finish(&svc.config);
    cofre_http_server_t *server = cofre_http_server_new(&svc.http);
    if (cofre_http_server_listen(server) != 0)
        return 1;
    int rc = cofre_http_server_run(server);
    cofre_http_server_free(server);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped");
    return rc == 0 ? 0 : 1;
}
