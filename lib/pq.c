/*
 * pq.c: loads libpq on first use and fills the function table of pq.h.
 */
#define COFRE_PQ_NO_REMAP
#include "cofre/pq.h"

#include "cofre/common.h"
#include "cofre/log.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#define LIBPQ_SONAME "libpq.so.5"

cofre_pq_api_t cofre_pq;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result;

/* Copies a symbol's address into a function pointer (POSIX guarantees they fit). */
static bool resolve(void *lib, const char *name, void *fn, size_t size)
{
    void *sym = dlsym(lib, name);
    if (sym == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "libpq lacks a function cofre needs",
                  COFRE_LF_STR("function", name));
        return false;
    }
    COFRE_ASSERT(size == sizeof(sym));
    memcpy(fn, &sym, size);
    return true;
}

static void load(void)
{
    void *lib = dlopen(LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot load libpq (PostgreSQL's client library)",
                  COFRE_LF_STR("library", LIBPQ_SONAME), COFRE_LF_STR("error", dlerror()));
        load_result = COFRE_EUNAVAIL;
        return;
    }
    bool ok = true;
#define COFRE_PQ_RESOLVE(name)                                                                     \
    ok = ok && resolve(lib, #name, &cofre_pq.name, sizeof(cofre_pq.name));
    COFRE_PQ_FUNCTIONS(COFRE_PQ_RESOLVE)
#undef COFRE_PQ_RESOLVE
    load_result = ok ? 0 : COFRE_EUNAVAIL;
}

int cofre_pq_load(void)
{
    pthread_once(&load_once, load);
    return load_result;
}
