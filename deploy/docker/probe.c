/*
 * cofre-probe: the container HEALTHCHECK of cofre's images. The runtime image has no shell,
 * curl or wget, so this small program asks the service in the same container for
 * one path (default /healthz) over HTTP/1.0 on loopback and exits 0 on a 200, 1 otherwise.
 *
 * The port comes from COFRE_LISTEN (host:port, the service's own setting), so the probe
 * follows the service wherever it listens; the host is always loopback. Every step has a
 * limit: a 2 s connect/read timeout and a 4 KiB answer.
 *
 * Usage: cofre-probe [PATH]
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define PROBE_TIMEOUT_S  2
#define PROBE_ANSWER_MAX 4096
#define PROBE_PATH_MAX   256

/* Reads the port of COFRE_LISTEN ("host:port" or "[v6]:port"); 0 when absent or invalid. */
static unsigned probe_port(void)
{
    const char *listen_addr = getenv("COFRE_LISTEN");
    if (listen_addr == NULL)
        return 0;
    const char *colon = strrchr(listen_addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return 0;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return 0;
    return (unsigned)port;
}

/* Connects to 127.0.0.1:port with send and receive timeouts; returns the fd or -1. */
static int probe_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = PROBE_TIMEOUT_S, .tv_usec = 0};
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends the request and reads the status line; returns the HTTP status or -1. */
static int probe_status(int fd, const char *path)
{
    char buf[PROBE_ANSWER_MAX];
    int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -1;
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    size_t used = 0;
    while (used < sizeof(buf) - 1) {
        ssize_t got = recv(fd, buf + used, sizeof(buf) - 1 - used, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        used += (size_t)got;
        if (memchr(buf, '\n', used) != NULL)
            break;
    }
    buf[used] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/%*d.%*d %3d", &status) != 1)
        return -1;
    return status;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/healthz";
    if (path[0] != '/' || strlen(path) > PROBE_PATH_MAX || strpbrk(path, " \r\n") != NULL) {
        fprintf(stderr, "cofre-probe: PATH must start with / and hold no spaces\n");
        return 2;
    }
    unsigned port = probe_port();
    if (port == 0) {
        fprintf(stderr, "cofre-probe: COFRE_LISTEN must be host:port\n");
        return 2;
    }
    int fd = probe_connect(port);
    if (fd < 0) {
        fprintf(stderr, "cofre-probe: cannot connect to 127.0.0.1:%u\n", port);
        return 1;
    }
    int status = probe_status(fd, path);
    close(fd);
    if (status != 200) {
        fprintf(stderr, "cofre-probe: %s answered %d\n", path, status);
        return 1;
    }
    return 0;
}
