/*
 * test_log.c: the log callback, tested from C through include/muxraft.h.
 *
 * A node's own callback (muxraft_config.log) receives its log lines: the
 * truncation of a torn WAL tail when the node reopens its data directory,
 * and the refusal of a peer of another cluster, on both sides; a node of
 * the same cluster is logged as connected. Lines under the node's level
 * never arrive. The process-wide callback (muxraft_set_log_callback)
 * receives the lines of nodes without their own, here the count of
 * elections a node started, and may call muxraft back from the log thread.
 *
 * The last line printed is "N passed, M failed"; the exit status is 0 only
 * when M is 0. C99; also compiles as C++.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep, pthread, dirent under -std=c99 */
#endif
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_util.h"
#include "muxraft.h"

static int n_passed, n_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            n_passed++;                                                          \
        } else {                                                                 \
            n_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_OK(call)                                                           \
    do {                                                                         \
        muxraft_status s_ = (call);                                              \
        if (s_ != MUXRAFT_OK)                                                    \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,  \
                    muxraft_status_str(s_), muxraft_last_error());               \
        CHECK(s_ == MUXRAFT_OK);                                                 \
    } while (0)

/* ---- what a host keeps of its log lines ---------------------------------- */

enum { MAX_LINES = 2048 };

typedef struct {
    muxraft_log_level level;
    uint64_t node_id;
    bool has_group;
    uint64_t group_id;
    char target[96];
    char message[400];
} line;

typedef struct {
    pthread_mutex_t mu;
    line lines[MAX_LINES];
    size_t n;
    pthread_t caller; /* the thread of the last call */
    /* The callback calls muxraft_node_stats on it (may be NULL). */
    muxraft_node *call_back;
    int call_back_ok, call_back_failed;
} sink;

static void sink_init(sink *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void on_log(void *userdata, muxraft_log_level level, uint64_t node_id, bool has_group,
                   uint64_t group_id, const char *target, const char *message)
{
    sink *s = (sink *)userdata;
    pthread_mutex_lock(&s->mu);
    if (s->n < MAX_LINES) {
        line *l = &s->lines[s->n++];
        l->level = level;
        l->node_id = node_id;
        l->has_group = has_group;
        l->group_id = group_id;
        snprintf(l->target, sizeof l->target, "%s", target);
        snprintf(l->message, sizeof l->message, "%s", message);
    }
    s->caller = pthread_self();
    muxraft_node *back = s->call_back;
    pthread_mutex_unlock(&s->mu);
    if (back) {
        /* Allowed: the log thread holds no muxraft lock. */
        muxraft_stats st;
        muxraft_stats_init(&st);
        if (muxraft_node_stats(back, &st) == MUXRAFT_OK)
            __atomic_fetch_add(&s->call_back_ok, 1, __ATOMIC_RELAXED);
        else
            __atomic_fetch_add(&s->call_back_failed, 1, __ATOMIC_RELAXED);
    }
}

/* The first line from `node_id` at `level` whose message holds every one of
 * the NULL-terminated needles, or NULL. */
static const line *find(sink *s, muxraft_log_level level, uint64_t node_id, const char *needle,
                        const char *needle2)
{
    const line *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n && !found; i++) {
        const line *l = &s->lines[i];
        if (l->level == level && l->node_id == node_id && strstr(l->message, needle) &&
            (!needle2 || strstr(l->message, needle2)))
            found = l;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void dump(sink *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        fprintf(stderr, "  [%d node %llu] %s: %s\n", (int)s->lines[i].level,
                (unsigned long long)s->lines[i].node_id, s->lines[i].target,
                s->lines[i].message);
    pthread_mutex_unlock(&s->mu);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait up to 10 s for a line (from another thread). */
static const line *wait_for(sink *s, muxraft_log_level level, uint64_t node_id,
                            const char *needle, const char *needle2)
{
    for (int i = 0; i < 1000; i++) {
        const line *l = find(s, level, node_id, needle, needle2);
        if (l)
            return l;
        sleep_ms(10);
    }
    return NULL;
}

static bool lead_alone(muxraft_node *node, uint64_t g)
{
    for (int t = 0; t < 200; t++) {
        muxraft_group_info info;
        muxraft_group_info_init(&info);
        if (muxraft_group_status(node, g, &info) == MUXRAFT_OK && info.role == MUXRAFT_LEADER)
            return true;
        if (muxraft_tick(node) != MUXRAFT_OK)
            return false;
    }
    return false;
}

/* ---- a torn WAL tail ------------------------------------------------------ */

/* Append `n` garbage bytes to the last WAL segment of `dir` (the file names
 * sort by sequence). */
static bool tear_last_segment(const char *dir, size_t n)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    char last[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".wal") == 0 && strcmp(e->d_name, last) > 0)
            snprintf(last, sizeof last, "%s", e->d_name);
    }
    closedir(d);
    if (last[0] == '\0')
        return false;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, last);
    FILE *f = fopen(path, "ab");
    if (!f)
        return false;
    for (size_t i = 0; i < n; i++)
        fputc(0xA5 ^ (int)(i * 7), f);
    return fclose(f) == 0;
}

static muxraft_node *open_logged(const char *dir, sink *s, muxraft_log_level level)
{
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = 1;
    c.data_dir = dir;
    c.log = on_log;
    c.log_userdata = s;
    c.log_level = (uint32_t)level;
    muxraft_node *node = NULL;
    CHECK_OK(muxraft_node_new(&c, NULL, &node));
    return node;
}

static void test_torn_wal_tail(void)
{
    char dir[256];
    CHECK(cu_temp_dir(dir, sizeof dir));
    static sink s;
    sink_init(&s);

    muxraft_node *node = open_logged(dir, &s, MUXRAFT_LOG_INFO);
    if (!node)
        return;
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(node, 5, 1, self, 1));
    CHECK(lead_alone(node, 5));
    for (int k = 0; k < 3; k++)
        CHECK_OK(muxraft_propose(node, 5, (const uint8_t *)"entry", 5, NULL));
    muxraft_node_free(node);
    /* A fresh directory: nothing was torn. */
    CHECK(find(&s, MUXRAFT_LOG_WARN, 1, "torn tail", NULL) == NULL);

    /* Garbage after the last commit, as a crash in the middle of a write
     * leaves it: the node reopens, cuts it off and says so. */
    CHECK(tear_last_segment(dir, 13));
    s.n = 0;
    node = open_logged(dir, &s, MUXRAFT_LOG_INFO);
    muxraft_group_info info;
    muxraft_group_info_init(&info);
    CHECK_OK(muxraft_group_status(node, 5, &info));
    CHECK(info.last_index >= 4);
    /* Every line of the node is delivered when muxraft_node_free returns. */
    muxraft_node_free(node);
    const line *l = find(&s, MUXRAFT_LOG_WARN, 1, "truncating a torn tail", "bytes=13");
    CHECK(l != NULL);
    if (l) {
        CHECK(strncmp(l->target, "muxraft::", 9) == 0);
        CHECK(!l->has_group);
        CHECK(!pthread_equal(s.caller, pthread_self())); /* the log thread */
    }
    CHECK(find(&s, MUXRAFT_LOG_INFO, 1, "storage recovered", NULL) != NULL);
    /* Nothing under INFO at INFO. */
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++)
        CHECK(s.lines[i].level >= MUXRAFT_LOG_ERROR && s.lines[i].level <= MUXRAFT_LOG_INFO);
    pthread_mutex_unlock(&s.mu);
    if (!l)
        dump(&s);

    /* Torn again, opened at ERROR: the warning is not delivered. */
    CHECK(tear_last_segment(dir, 7));
    s.n = 0;
    node = open_logged(dir, &s, MUXRAFT_LOG_ERROR);
    muxraft_node_free(node);
    CHECK(s.n == 0);
    cu_remove_dir(dir);
}

/* ---- peers ------------------------------------------------------------------ */

/* A started node logging to `s`; with TLS when `cert` is not NULL
 * ("tests/certs/<cert>.crt" and ".key", the cluster CA). */
static muxraft_node *start_logged_tls(uint64_t id, uint64_t cluster, sink *s, uint16_t *port,
                                      const char *cert)
{
    char crt[64], key[64];
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = id;
    c.cluster_id = cluster;
    c.log = on_log;
    c.log_userdata = s;
    if (cert) {
        snprintf(crt, sizeof crt, "tests/certs/%s.crt", cert);
        snprintf(key, sizeof key, "tests/certs/%s.key", cert);
        c.tls_cert_pem = crt;
        c.tls_key_pem = key;
        c.tls_ca_pem = "tests/certs/ca.crt";
    }
    muxraft_node *node = NULL;
    CHECK_OK(muxraft_node_new(&c, NULL, &node));
    if (!node)
        return NULL;
    CHECK_OK(muxraft_node_start(node, "127.0.0.1:0"));
    CHECK_OK(muxraft_node_listen_port(node, port));
    return node;
}

static muxraft_node *start_logged(uint64_t id, uint64_t cluster, sink *s, uint16_t *port)
{
    return start_logged_tls(id, cluster, s, port, NULL);
}

static void add_peer(muxraft_node *node, uint64_t id, uint16_t port)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    CHECK_OK(muxraft_node_add_peer(node, id, addr));
}

static void test_refused_and_connected_peers(void)
{
    static sink s;
    sink_init(&s);
    uint16_t p1 = 0, p2 = 0, p3 = 0;
    /* Node 1 dials node 2 (the lower id dials), which is of another
     * cluster, and node 3, which is of its own. */
    muxraft_node *n1 = start_logged(1, 77, &s, &p1);
    muxraft_node *n2 = start_logged(2, 78, &s, &p2);
    muxraft_node *n3 = start_logged(3, 77, &s, &p3);
    if (!n1 || !n2 || !n3)
        return;
    add_peer(n1, 2, p2);
    add_peer(n2, 1, p1);
    add_peer(n1, 3, p3);
    add_peer(n3, 1, p1);

    /* The refused side and the refusing side both say why. */
    CHECK(wait_for(&s, MUXRAFT_LOG_WARN, 2, "connection refused", "another cluster") != NULL);
    CHECK(wait_for(&s, MUXRAFT_LOG_WARN, 1, "handshake with the peer refused",
                   "another cluster") != NULL);
    CHECK(wait_for(&s, MUXRAFT_LOG_INFO, 1, "peer connected", "peer=3") != NULL);
    CHECK(wait_for(&s, MUXRAFT_LOG_INFO, 3, "peer connected", "peer=1") != NULL);
    /* Node 3 stops: node 1 loses the connection. */
    CHECK_OK(muxraft_node_stop(n3));
    CHECK(wait_for(&s, MUXRAFT_LOG_INFO, 1, "peer connection lost", "peer=3") != NULL);
    /* The dialer retries for ever; the refusal is logged once per reason. */
    sleep_ms(300);
    CHECK_OK(muxraft_node_stop(n1));
    CHECK_OK(muxraft_node_stop(n2));
    size_t refusals = 0;
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++)
        refusals += s.lines[i].node_id == 1 &&
                    strstr(s.lines[i].message, "handshake with the peer refused") != NULL;
    pthread_mutex_unlock(&s.mu);
    CHECK(refusals == 1);
    if (n_failed)
        dump(&s);
    muxraft_node_free(n1);
    muxraft_node_free(n2);
    muxraft_node_free(n3);
}

/* Node 1 (TLS, the cluster CA's certificate) dials node 2, whose
 * certificate another CA signed: node 1 refuses it, node 2 is told so by
 * an alert, and both say why at WARN. */
static void test_tls_refusal(void)
{
    static sink s;
    sink_init(&s);
    uint16_t p1 = 0, p2 = 0;
    muxraft_node *n1 = start_logged_tls(1, 77, &s, &p1, "node1");
    muxraft_node *n2 = start_logged_tls(2, 77, &s, &p2, "other");
    if (!n1 || !n2)
        return;
    add_peer(n1, 2, p2);
    add_peer(n2, 1, p1);
    CHECK(wait_for(&s, MUXRAFT_LOG_WARN, 1, "dial failed: TLS", "certificate") != NULL);
    CHECK(wait_for(&s, MUXRAFT_LOG_WARN, 2, "connection refused: TLS", "alert") != NULL);
    if (n_failed)
        dump(&s);
    muxraft_node_free(n1);
    muxraft_node_free(n2);
}

/* ---- the process-wide callback -------------------------------------------- */

static void test_process_callback(void)
{
    static sink s;
    sink_init(&s);
    CHECK(muxraft_set_log_callback(on_log, &s, 6) == MUXRAFT_INVALID_ARGUMENT);
    CHECK_OK(muxraft_set_log_callback(on_log, &s, MUXRAFT_LOG_INFO));
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = 9; /* no callback of its own */
    muxraft_node *node = NULL;
    CHECK_OK(muxraft_node_new(&c, NULL, &node));
    if (!node)
        return;
    /* The callback calls muxraft_node_stats on this very node. */
    pthread_mutex_lock(&s.mu);
    s.call_back = node;
    pthread_mutex_unlock(&s.mu);
    const uint64_t self[] = {9};
    CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
    CHECK(lead_alone(node, 1));
    /* The node counts its elections per second: one line once a second
     * passed. */
    sleep_ms(1100);
    CHECK_OK(muxraft_tick(node));
    /* Cleared: when it returns, every line was delivered. */
    CHECK_OK(muxraft_set_log_callback(NULL, NULL, MUXRAFT_LOG_OFF));
    const line *l = find(&s, MUXRAFT_LOG_INFO, 9, "1 election started in the last", NULL);
    CHECK(l != NULL);
    if (!l)
        dump(&s);
    CHECK(s.call_back_ok > 0 && s.call_back_failed == 0);
    size_t before = s.n;
    CHECK(lead_alone(node, 1));
    sleep_ms(50);
    muxraft_node_free(node);
    CHECK(s.n == before); /* no callback any more */
}

int main(void)
{
    test_torn_wal_tail();
    test_refused_and_connected_peers();
    test_tls_refusal();
    test_process_callback();
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
