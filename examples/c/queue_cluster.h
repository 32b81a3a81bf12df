/*
 * queue_cluster.h: run a cluster of queue_node processes on loopback and
 * follow what they report (used by demo.c, tests/c/crash_test.c,
 * benches/c/soak.c, benches/c/throughput.c, benches/c/idle.c and
 * benches/c/failover.c).
 *
 * Each process is started with fork/exec, its stdout on a pipe; qc_poll()
 * reads the pipes and parses every STAT line (see queue_node.c for the
 * format) into the process's `last` report. Processes are started with
 * PR_SET_PDEATHSIG (Linux), so they die with the program even when it is
 * killed; qc_cleanup() kills and reaps every one still running.
 */
#ifndef MUXRAFT_QUEUE_CLUSTER_H
#define MUXRAFT_QUEUE_CLUSTER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QC_MAX_NODES 5
#define QC_MAX_HIST 400   /* latency buckets kept from one STAT line (all) */
#define QC_HISTORY 128    /* reports remembered per process */
#define QC_MAX_INCARNATIONS 256
#define QC_MAX_ID 15      /* term_bumps are kept for node ids 0..QC_MAX_ID */

/* One STAT line. */
typedef struct qc_stat {
    uint64_t t_ms, id, pid, groups, leading, leaderless;
    uint64_t hb_msgs, hb_batches, group_hb_batched, hb_bytes, sent, bytes;
    uint64_t proposing, proposed, commits, failed, inflight;
    uint64_t p50_us, p99_us, applied, elections, leader_changes, final;
    uint64_t snapshots, restores, installed, wal_segments, wal_bytes, snapshot_bytes;
    uint64_t log_bytes, rss_kb, index_sum, skipped, state;
    uint64_t busy; /* proposals muxraft refused with MUXRAFT_BUSY */
    uint64_t shed; /* proposals the process's schedule called for, not made */
    uint64_t rate; /* proposals per second the process offers now */
    /* Quiescence: groups awake and quiet now, peers heard now; the moves of
     * the groups' terms by their last known leader (index: node id, 0 for
     * none known). */
    uint64_t awake, quiesced, peers_heard;
    uint64_t term_bumps[QC_MAX_ID + 1];
    /* Replacing a member (queue_node --control) and leadership transfers. */
    uint64_t repl_added, repl_promoted, replaced, balance_transfers, transfers;
    size_t n_hist;
    uint64_t hist_us[QC_MAX_HIST], hist_count[QC_MAX_HIST];
    uint64_t received_ns; /* when the line arrived (qc_now_ns clock) */
} qc_stat;

typedef struct qc_proc {
    uint64_t id;
    int port;
    char dir[1024];        /* its data directory */
    pid_t pid;             /* 0: not running */
    bool expected;         /* false once we stop or kill it on purpose */
    int fd;                /* its stdout, -1 when closed */
    char buf[16384];
    size_t len;
    int exit_status;       /* from waitpid, once it ended */
    uint64_t reports;      /* STAT lines from this incarnation */
    qc_stat last;          /* the latest of them (valid if reports > 0) */
    /* A few fields of the latest reports, oldest first, for looking back. */
    uint64_t hist_ns[QC_HISTORY], hist_applied[QC_HISTORY], hist_index_sum[QC_HISTORY];
    size_t hist_n;
    /* Every pid this node ever ran as, in order. */
    pid_t incarnations[QC_MAX_INCARNATIONS];
    size_t n_incarnations;
    /* Start it with --join 1 (a new node that joins every group). */
    bool join;
    /* Removed from the cluster for good (replaced): lv_verify checks its
     * logs but does not expect its final state to match the others'. */
    bool retired;
} qc_proc;

typedef struct qc_cluster {
    const char *exe; /* path of queue_node */
    size_t n;
    qc_proc procs[QC_MAX_NODES];
    /* Passed to every process. */
    unsigned groups, rate, report_ms, cluster_id;
    bool batch;
    /* --snapshot-every (0: not passed), --snapshot-pad, --snapshot-trailing
     * (0: not passed), and --app-logs 0
     * when no_app_logs. */
    unsigned snapshot_every, snapshot_pad, snapshot_trailing, snapshot_bytes;
    unsigned wal_segment_mib; /* 0: not passed */
    bool no_app_logs;
    /* Load: --payload-bytes (0: not passed), --open-loop 1 when open_loop,
     * --rate-file (NULL: not passed), --max-inflight and
     * --max-pending-per-group (negative: not passed; qc_init sets -1). */
    unsigned payload_bytes;
    bool open_loop;
    const char *rate_file;
    long long max_inflight, max_pending_per_group;
    /* --quiesce (negative: not passed, queue_node's default 1; qc_init sets
     * -1) and --roles-ms (0: not passed, queue_node's default 100). */
    int quiesce;
    unsigned roles_ms;
    /* TLS between the nodes (NULL: plain TCP): node <id> gets
     * --tls-cert DIR/node<id>.crt --tls-key DIR/node<id>.key --tls-ca
     * DIR/ca.crt (tests/certs has them for nodes 1 to 3). */
    const char *tls_dir;
    /* --control PATH for every node (NULL: not passed; see queue_node.c). */
    const char *control_file;
    /* Called for every STAT line, after `last` was updated. */
    void (*on_stat)(void *userdata, qc_proc *p, const qc_stat *s);
    void *userdata;
} qc_cluster;

/* Set by the SIGINT/SIGTERM/SIGHUP handler qc_install_signals() installs. */
extern volatile sig_atomic_t qc_interrupted;

uint64_t qc_now_ns(void);
double qc_seconds_since(uint64_t t_ns);

/* SIGINT, SIGTERM and SIGHUP set qc_interrupted; SIGPIPE is ignored. */
void qc_install_signals(void);

/* Fill `dir` with a new directory under $TMPDIR (or /tmp). */
bool qc_make_temp_dir(char *dir, size_t size, const char *prefix);

/* Remove a directory tree (like rm -rf). */
void qc_remove_tree(const char *path);

/* Set up `c` with n nodes (ids 1..n) on free loopback ports, their data
 * directories under `base` (base/n1, ...). Nothing is started. */
bool qc_init(qc_cluster *c, const char *exe, size_t n, const char *base);

/* Set up one more node (id c->n + 1, a free loopback port, its data
 * directory next to the others'), not started; the nodes started before
 * it do not know it (queue_node --control tells them). Returns its index,
 * or -1. */
int qc_add_node(qc_cluster *c);

/* Start (or restart) node i (0-based) from its data directory. */
bool qc_start(qc_cluster *c, size_t i);

/* Send a signal to node i if it runs. SIGKILL and SIGTERM mark it as
 * expected to end. */
void qc_signal(qc_cluster *c, size_t i, int sig);

/* SIGKILL node i and reap it. */
void qc_kill(qc_cluster *c, size_t i);

/* Read whatever the processes printed, waiting at most timeout_ms for the
 * first byte. Reaps processes whose stdout closed. */
void qc_poll(qc_cluster *c, int timeout_ms);

/* Is node i running? */
bool qc_running(const qc_cluster *c, size_t i);

/* Node i ended although nobody stopped it? (Its exit status is kept.) */
bool qc_died(const qc_cluster *c, size_t i);

/* utime + stime of a process in clock ticks (sysconf(_SC_CLK_TCK) a
 * second), from /proc/<pid>/stat; 0 if unknown. */
uint64_t qc_cpu_ticks(pid_t pid);

/* A process's resident memory (VmRSS of /proc/<pid>/status) in kB; 0 if
 * unknown. */
uint64_t qc_rss_kb(pid_t pid);

/* The applied count node i reported last at or before t_ns (0 if none). */
uint64_t qc_applied_at(const qc_cluster *c, size_t i, uint64_t t_ns);

/* The index_sum node i reported last at or before t_ns (0 if none). */
uint64_t qc_index_sum_at(const qc_cluster *c, size_t i, uint64_t t_ns);

/* SIGTERM every running node and wait (up to timeout_ms) for them to exit;
 * SIGKILL the ones left. Returns true if every one exited with status 0. */
bool qc_stop_all(qc_cluster *c, int timeout_ms);

/* SIGKILL and reap every node still running. Safe to call more than once. */
void qc_cleanup(qc_cluster *c);

/* ---- Helpers the programs running a cluster share ---------------------- */

/* The exit path of a program: qc_cleanup(c) (unless c is NULL), then remove
 * the tree `dir` (unless keep_dir) and clear `dir`, so that a second call
 * does nothing. */
void qc_teardown(qc_cluster *c, char *dir, bool keep_dir);

/* qc_make_temp_dir(dir, size, prefix), then qc_init(c, exe, n, dir). */
bool qc_init_temp(qc_cluster *c, const char *exe, size_t n, char *dir, size_t size,
                  const char *prefix);

/* qc_start every node, in order; false at the first that does not start. */
bool qc_start_all(qc_cluster *c);

/* Did a node end although nobody stopped it? Prints "WHO: node N died
 * (status 0x..)" to stderr for the first one found. */
bool qc_any_died(const qc_cluster *c, const char *who);

/* qc_poll(c, timeout_ms); false if a node then died on its own (as
 * qc_any_died says) or qc_interrupted is set. */
bool qc_poll_alive(qc_cluster *c, int timeout_ms, const char *who);

/* qc_poll_alive(c, poll_ms, who) for `seconds`; false as soon as that is. */
bool qc_run_for(qc_cluster *c, double seconds, int poll_ms, const char *who);

/* Every running node reported after since_ns that it hosts its c->groups
 * groups and knows a leader for each, and between them they lead all. */
bool qc_all_led(const qc_cluster *c, uint64_t since_ns);

/* Every node's latest report has all c->groups groups quiet, none awake. */
bool qc_all_quiet(const qc_cluster *c);

/* The sum over the nodes of a uint64_t field of their latest reports (the
 * field's offsetof in qc_stat); QC_SUM(c, commits) names the field. */
uint64_t qc_sum_field(const qc_cluster *c, size_t offset);
#define QC_SUM(c, field) qc_sum_field((c), offsetof(qc_stat, field))

/* CPU ticks (as qc_cpu_ticks) of the threads of a process whose names
 * begin with `prefix` (e.g. "muxraft": muxraft's own threads), from
 * /proc/<pid>/task/<tid>/{comm,stat}; 0 if unknown. */
uint64_t qc_threads_cpu_ticks(pid_t pid, const char *prefix);

/* CPU ticks over `seconds` as a percentage of one core. */
double qc_cpu_pct(double ticks, double seconds);

/* ---- Command-line flags ------------------------------------------------- */

/* What a flag of a qc_parse_args() table does. */
typedef enum qc_arg_kind {
    QC_ARG_SWITCH,   /* takes no value: *(bool *)value = true */
    QC_ARG_STRING,   /* *(const char **)value = the next argument */
    QC_ARG_UNSIGNED, /* *(unsigned *)value = strtoul(next argument) */
    QC_ARG_DOUBLE,   /* *(double *)value = atof(next argument) */
    QC_ARG_MODES,    /* ((bool *)value)[m] = whether the next argument holds names[m] */
    QC_ARG_CALL,     /* call(value, next argument) */
    QC_ARG_ACTION,   /* takes no value: call(value, NULL) */
} qc_arg_kind;

typedef struct qc_arg {
    const char *flag; /* "--groups" */
    qc_arg_kind kind;
    void *value;
    const char *const *names; /* QC_ARG_MODES: the mode names, n_names of them */
    size_t n_names;
    void (*call)(void *value, const char *arg); /* QC_ARG_CALL, QC_ARG_ACTION */
} qc_arg;

/* Table entries; the pointer's type is checked. */
#define QC_TYPED_(type, p) ((void *)(1 ? (p) : (type *)0))
#define QC_SWITCH(flag, p) {(flag), QC_ARG_SWITCH, QC_TYPED_(bool, p), NULL, 0, NULL}
#define QC_STRING(flag, p) {(flag), QC_ARG_STRING, QC_TYPED_(const char *, p), NULL, 0, NULL}
#define QC_UNSIGNED(flag, p) {(flag), QC_ARG_UNSIGNED, QC_TYPED_(unsigned, p), NULL, 0, NULL}
#define QC_DOUBLE(flag, p) {(flag), QC_ARG_DOUBLE, QC_TYPED_(double, p), NULL, 0, NULL}
#define QC_MODES(flag, p, names, n) {(flag), QC_ARG_MODES, QC_TYPED_(bool, p), (names), (n), NULL}
#define QC_CALL(flag, p, fn) {(flag), QC_ARG_CALL, (p), NULL, 0, (fn)}
#define QC_ACTION(flag, p, fn) {(flag), QC_ARG_ACTION, (p), NULL, 0, (fn)}

/* Apply argv[1..argc-1], in order, as the n flags of `args` say (a flag
 * given twice: the last wins). False on a flag not in the table or one
 * missing its value (the caller prints its usage). */
bool qc_parse_args(int argc, char **argv, const qc_arg *args, size_t n);

#endif
