/*
 * pq.h: libpq, loaded when first needed. A service configured for SQLite never maps libpq, nor
 * what it pulls in (Kerberos, LDAP, GnuTLS, p11-kit: about 3 MiB of resident memory per
 * process). Code that includes this header (through pg.h) calls libpq's functions by their
 * usual names; they go through a table that cofre_pq_load() fills from libpq.so.5.
 */
#ifndef COFRE_PQ_H
#define COFRE_PQ_H

#include <libpq-fe.h>

/* Every libpq function cofre calls (clang-format cannot keep such a list stable). */
// clang-format off
#define COFRE_PQ_FUNCTIONS(X) \
    X(PQclear) \
    X(PQcmdTuples) \
    X(PQconnectPoll) \
    X(PQconnectStartParams) \
    X(PQconninfoFree) \
    X(PQconninfoParse) \
    X(PQconsumeInput) \
    X(PQenterPipelineMode) \
    X(PQerrorMessage) \
    X(PQfinish) \
    X(PQflush) \
    X(PQfreemem) \
    X(PQgetResult) \
    X(PQgetisnull) \
    X(PQgetlength) \
    X(PQgetvalue) \
    X(PQisBusy) \
    X(PQntuples) \
    X(PQpipelineSync) \
    X(PQresStatus) \
    X(PQresultErrorField) \
    X(PQresultStatus) \
    X(PQsendPrepare) \
    X(PQsendQuery) \
    X(PQsendQueryParams) \
    X(PQsendQueryPrepared) \
    X(PQsetNoticeReceiver) \
    X(PQsetnonblocking) \
    X(PQsocket) \
    X(PQstatus) \
    X(PQtransactionStatus)
// clang-format on

#define COFRE_PQ_FIELD(name) __typeof__(name) *name;
typedef struct cofre_pq_api {
    COFRE_PQ_FUNCTIONS(COFRE_PQ_FIELD)
} cofre_pq_api_t;
#undef COFRE_PQ_FIELD

extern cofre_pq_api_t cofre_pq;

/*
 * Loads libpq.so.5 and fills the table, once (thread-safe). Returns 0, or COFRE_EUNAVAIL
 * (logged once) when the library or one of its functions is missing.
 */
int cofre_pq_load(void);

#ifndef COFRE_PQ_NO_REMAP
#define COFRE_PQ_REMAP(name) cofre_pq.name
#define PQclear              COFRE_PQ_REMAP(PQclear)
#define PQcmdTuples          COFRE_PQ_REMAP(PQcmdTuples)
#define PQconnectPoll        COFRE_PQ_REMAP(PQconnectPoll)
#define PQconnectStartParams COFRE_PQ_REMAP(PQconnectStartParams)
#define PQconninfoFree       COFRE_PQ_REMAP(PQconninfoFree)
#define PQconninfoParse      COFRE_PQ_REMAP(PQconninfoParse)
#define PQconsumeInput       COFRE_PQ_REMAP(PQconsumeInput)
#define PQenterPipelineMode  COFRE_PQ_REMAP(PQenterPipelineMode)
#define PQerrorMessage       COFRE_PQ_REMAP(PQerrorMessage)
#define PQfinish             COFRE_PQ_REMAP(PQfinish)
#define PQflush              COFRE_PQ_REMAP(PQflush)
#define PQfreemem            COFRE_PQ_REMAP(PQfreemem)
#define PQgetResult          COFRE_PQ_REMAP(PQgetResult)
#define PQgetisnull          COFRE_PQ_REMAP(PQgetisnull)
#define PQgetlength          COFRE_PQ_REMAP(PQgetlength)
#define PQgetvalue           COFRE_PQ_REMAP(PQgetvalue)
#define PQisBusy             COFRE_PQ_REMAP(PQisBusy)
#define PQntuples            COFRE_PQ_REMAP(PQntuples)
#define PQpipelineSync       COFRE_PQ_REMAP(PQpipelineSync)
#define PQresStatus          COFRE_PQ_REMAP(PQresStatus)
#define PQresultErrorField   COFRE_PQ_REMAP(PQresultErrorField)
#define PQresultStatus       COFRE_PQ_REMAP(PQresultStatus)
#define PQsendPrepare        COFRE_PQ_REMAP(PQsendPrepare)
#define PQsendQuery          COFRE_PQ_REMAP(PQsendQuery)
#define PQsendQueryParams    COFRE_PQ_REMAP(PQsendQueryParams)
#define PQsendQueryPrepared  COFRE_PQ_REMAP(PQsendQueryPrepared)
#define PQsetNoticeReceiver  COFRE_PQ_REMAP(PQsetNoticeReceiver)
#define PQsetnonblocking     COFRE_PQ_REMAP(PQsetnonblocking)
#define PQsocket             COFRE_PQ_REMAP(PQsocket)
#define PQstatus             COFRE_PQ_REMAP(PQstatus)
#define PQtransactionStatus  COFRE_PQ_REMAP(PQtransactionStatus)
#endif

#endif
