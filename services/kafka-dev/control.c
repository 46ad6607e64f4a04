/*
 * control.c: the HTTP control interface of cofre-kafka-dev (see control.h).
 */
#include "kafka-dev/control.h"

#include "cofre/common.h"
#include "cofre/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum control_op {
    OP_DESCRIBE,
    OP_DOWN,
    OP_UP,
    OP_RTT,
    OP_ERRORS,
    OP_CLEAR,
    OP_LEADER,
} control_op_t;

typedef struct control_task {
    cofre_task_t task; /* first */
    cofre_control_t *ctl;
    control_op_t op;
    int32_t broker;
    int rtt_ms;
    int16_t api;
    int32_t partition;
    char topic[COFRE_MOCK_TOPIC_MAX + 1];
    size_t nerrors;
    rd_kafka_resp_err_t errors[COFRE_MOCK_ERRORS_MAX];
    int rc;
    cofre_jbuf_t body;
} control_task_t;

static int run_op(control_task_t *t)
{
    cofre_mock_t *m = t->ctl->mock;
    switch (t->op) {
    case OP_DESCRIBE:
        return 0;
    case OP_DOWN:
    case OP_UP:
        return cofre_mock_broker_set_up(m, t->broker, t->op == OP_UP);
    case OP_RTT:
        return cofre_mock_broker_set_rtt(m, t->broker, t->rtt_ms);
    case OP_ERRORS:
        return cofre_mock_push_errors(m, t->api, t->nerrors, t->errors);
    case OP_CLEAR:
        return cofre_mock_clear_errors(m, t->api);
    case OP_LEADER:
        return cofre_mock_set_leader(m, t->topic, t->partition, t->broker);
    }
    return COFRE_EINVAL;
}

static void control_run(cofre_task_t *task, void *thread_data)
{
    (void)thread_data;
    control_task_t *t = (control_task_t *)task;
    t->rc = run_op(t);
    if (t->rc == 0)
        cofre_mock_describe(t->ctl->mock, &t->body);
}

static void control_done(cofre_task_t *task)
{
    control_task_t *t = (control_task_t *)task;
    cofre_req_t *req = task->req;
    if (req != NULL) {
        if (t->rc == 0)
            cofre_req_respond_json(req, 200, t->body.data, t->body.len);
        else if (t->rc == COFRE_ENOENT)
            cofre_req_fail(req, COFRE_P_NOT_FOUND, "no such broker, topic or partition");
        else if (t->rc == COFRE_ERANGE)
            cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "a value is out of range");
        else
            cofre_req_fail(req, COFRE_P_INTERNAL, "the mock cluster refused: %s",
                           cofre_strerror(t->rc));
    }
    cofre_jbuf_release(&t->body);
    free(t);
}

static control_task_t *task_new(cofre_control_t *ctl, control_op_t op)
{
    control_task_t *t = cofre_calloc(1, sizeof(*t));
    t->ctl = ctl;
    t->op = op;
    t->task.run = control_run;
    t->task.done = control_done;
    cofre_jbuf_init(&t->body);
    return t;
}

static void submit(cofre_req_t *req, control_task_t *t)
{
    cofre_req_defer(req, &t->task);
    if (cofre_workers_submit(t->ctl->workers, &t->task) == 0)
        return;
    cofre_req_undefer(req);
    cofre_jbuf_release(&t->body);
    free(t);
    cofre_req_fail(req, COFRE_P_OVERLOADED, "too many control commands at once");
}

/* The {id} of a broker route; answers 404 and returns false when it is not a broker id. */
static bool path_broker(cofre_req_t *req, int32_t *id)
{
    const char *s = cofre_req_param(req, "id");
    char *end;
    long v = strtol(s, &end, 10);
    if (s[0] < '1' || s[0] > '9' || *end != '\0' || v > COFRE_MOCK_BROKERS_MAX) {
        cofre_req_fail(req, COFRE_P_NOT_FOUND, "no broker \"%s\"", s);
        return false;
    }
    *id = (int32_t)v;
    return true;
}

static void handle_describe(cofre_req_t *req, void *data)
{
    submit(req, task_new(data, OP_DESCRIBE));
}

static void handle_broker(cofre_req_t *req, void *data, control_op_t op)
{
    int32_t id;
    if (!path_broker(req, &id))
        return;
    control_task_t *t = task_new(data, op);
    t->broker = id;
    submit(req, t);
}

static void handle_down(cofre_req_t *req, void *data)
{
    handle_broker(req, data, OP_DOWN);
}

static void handle_up(cofre_req_t *req, void *data)
{
    handle_broker(req, data, OP_UP);
}

/* Parses the request body against fields; answers 400 and returns NULL on failure. */
static json_t *body_object(cofre_req_t *req, const cofre_json_field_t *fields, size_t n)
{
    cofre_problem_t err;
    h2o_iovec_t body = cofre_req_body(req);
    json_t *obj = cofre_json_parse_object(body.base, body.len, &err);
    if (obj != NULL && cofre_json_check(obj, fields, n, NULL, &err))
        return obj;
    json_decref(obj);
    cofre_req_respond_problem(req, &err);
    return NULL;
}

static void handle_rtt(cofre_req_t *req, void *data)
{
    static const cofre_json_field_t fields[] = {{"rtt_ms", COFRE_JSON_INTEGER, true}};
    int32_t id;
    if (!path_broker(req, &id))
        return;
    json_t *obj = body_object(req, fields, COFRE_ARRAY_SIZE(fields));
    if (obj == NULL)
        return;
    int64_t rtt = cofre_json_int(obj, "rtt_ms");
    json_decref(obj);
    if (rtt < 0 || rtt > COFRE_MOCK_RTT_MAX_MS) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "rtt_ms must be 0..%d", COFRE_MOCK_RTT_MAX_MS);
        return;
    }
    control_task_t *t = task_new(data, OP_RTT);
    t->broker = id;
    t->rtt_ms = (int)rtt;
    submit(req, t);
}

/* Reads the "errors" array into t; answers 400 and returns false when malformed. */
static bool read_errors(cofre_req_t *req, const json_t *list, control_task_t *t)
{
    size_t n = json_array_size(list);
    if (n < 1 || n > COFRE_MOCK_ERRORS_MAX) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "errors must hold 1..%d names",
                       COFRE_MOCK_ERRORS_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(list, i));
        if (name == NULL || cofre_mock_error_parse(name, &t->errors[i]) != 0) {
            cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "errors[%zu] is not a Kafka error name",
                           i);
            return false;
        }
    }
    t->nerrors = n;
    return true;
}

static void handle_errors(cofre_req_t *req, void *data)
{
    static const cofre_json_field_t fields[] = {
        {"api", COFRE_JSON_STRING, true},
        {"errors", COFRE_JSON_ARRAY, true},
    };
    json_t *obj = body_object(req, fields, COFRE_ARRAY_SIZE(fields));
    if (obj == NULL)
        return;
    control_task_t *t = task_new(data, OP_ERRORS);
    bool ok = cofre_mock_api_parse(cofre_json_str(obj, "api"), &t->api) == 0;
    if (!ok)
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "api is not a Kafka API name or key");
    ok = ok && read_errors(req, json_object_get(obj, "errors"), t);
    json_decref(obj);
    if (!ok) {
        cofre_jbuf_release(&t->body);
        free(t);
        return;
    }
    submit(req, t);
}

static void handle_clear(cofre_req_t *req, void *data)
{
    control_task_t *t = task_new(data, OP_CLEAR);
    if (cofre_mock_api_parse(cofre_req_param(req, "api"), &t->api) != 0) {
        cofre_jbuf_release(&t->body);
        free(t);
        cofre_req_fail(req, COFRE_P_NOT_FOUND, "not a Kafka API name or key");
        return;
    }
    submit(req, t);
}

static void handle_leader(cofre_req_t *req, void *data)
{
    static const cofre_json_field_t fields[] = {
        {"topic", COFRE_JSON_STRING, true},
        {"partition", COFRE_JSON_INTEGER, true},
        {"broker", COFRE_JSON_INTEGER, true},
    };
    json_t *obj = body_object(req, fields, COFRE_ARRAY_SIZE(fields));
    if (obj == NULL)
        return;
    const char *topic = cofre_json_str(obj, "topic");
    int64_t partition = cofre_json_int(obj, "partition");
    int64_t broker = cofre_json_int(obj, "broker");
    if (cofre_mock_parse_topics(topic, NULL) != 1 || partition < 0 ||
        partition >= COFRE_MOCK_PARTITIONS_MAX || broker < 1 || broker > COFRE_MOCK_BROKERS_MAX) {
        json_decref(obj);
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "topic, partition or broker out of range");
        return;
    }
    control_task_t *t = task_new(data, OP_LEADER);
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->partition = (int32_t)partition;
    t->broker = (int32_t)broker;
    json_decref(obj);
    submit(req, t);
}

void cofre_control_register(cofre_control_t *ctl, cofre_http_server_t *s)
{
    const unsigned json = COFRE_ROUTE_JSON_BODY;
    cofre_http_route(s, "GET", "/cluster", 0, 0, handle_describe, ctl);
    cofre_http_route(s, "POST", "/brokers/{id}/down", 0, 0, handle_down, ctl);
    cofre_http_route(s, "POST", "/brokers/{id}/up", 0, 0, handle_up, ctl);
    cofre_http_route(s, "POST", "/brokers/{id}/rtt", json, 0, handle_rtt, ctl);
    cofre_http_route(s, "POST", "/errors", json, 0, handle_errors, ctl);
    cofre_http_route(s, "DELETE", "/errors/{api}", 0, 0, handle_clear, ctl);
    cofre_http_route(s, "POST", "/partitions/leader", json, 0, handle_leader, ctl);
}
