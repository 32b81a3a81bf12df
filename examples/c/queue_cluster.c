/*
 * queue_cluster.c: run a cluster of queue_node processes on loopback and
 * follow what they report. See queue_cluster.h.
 */
#define _GNU_SOURCE /* pipe2, mkdtemp, nftw, prctl, sigaction */
#include "queue_cluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

volatile sig_atomic_t qc_interrupted = 0;

uint64_t qc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double qc_seconds_since(uint64_t t_ns)
{
    return (double)(qc_now_ns() - t_ns) / 1e9;
}

static void on_interrupt(int sig)
{
    (void)sig;
    qc_interrupted = 1;
}

void qc_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool qc_make_temp_dir(char *dir, size_t size, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    snprintf(dir, size, "%s/%s.XXXXXX", tmp, prefix);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "cannot create a directory %s: %s\n", dir, strerror(errno));
        return false;
    }
    return true;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void qc_remove_tree(const char *path)
{
    if (path && *path)
        nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A port below the kernel's ephemeral range, so that no outgoing
 * connection (the nodes dial each other) can take it while its node is
 * down, and that we can bind now. */
static int pick_port(const int *taken, size_t n_taken)
{
    int low = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int a, b;
        if (fscanf(f, "%d %d", &a, &b) == 2 && a > 12000)
            low = a;
        fclose(f);
    }
    for (int attempt = 0; attempt < 1000; attempt++) {
        int port = 10000 + (int)((unsigned)rand() % (unsigned)(low - 10000));
        bool dup = false;
        for (size_t i = 0; i < n_taken; i++)
            dup = dup || taken[i] == port;
        if (dup)
            continue;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return -1;
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        int ok = bind(s, (struct sockaddr *)&a, sizeof a);
        close(s);
        if (ok == 0)
            return port;
    }
    return -1;
}

bool qc_init(qc_cluster *c, const char *exe, size_t n, const char *base)
{
    memset(c, 0, sizeof *c);
    c->exe = exe;
    c->n = n;
    c->groups = 300;
    c->rate = 100;
    c->report_ms = 1000;
    c->cluster_id = 7;
    c->batch = true;
    c->max_inflight = -1;
    c->max_pending_per_group = -1;
    c->quiesce = -1;
    srand((unsigned)(qc_now_ns() ^ (uint64_t)getpid()));
    int ports[QC_MAX_NODES];
    for (size_t i = 0; i < n; i++) {
        qc_proc *p = &c->procs[i];
        p->id = i + 1;
        p->fd = -1;
        p->port = ports[i] = pick_port(ports, i);
        if (p->port < 0) {
            fprintf(stderr, "cannot find a free loopback port\n");
            return false;
        }
        snprintf(p->dir, sizeof p->dir, "%s/n%zu", base, i + 1);
    }
    return true;
}

int qc_add_node(qc_cluster *c)
{
    if (c->n == QC_MAX_NODES || c->n == 0)
        return -1;
    int ports[QC_MAX_NODES];
    for (size_t i = 0; i < c->n; i++)
        ports[i] = c->procs[i].port;
    size_t i = c->n;
    qc_proc *p = &c->procs[i];
    memset(p, 0, sizeof *p);
    p->id = i + 1;
    p->fd = -1;
    p->port = pick_port(ports, i);
    if (p->port < 0)
        return -1;
    /* Next to node 1's: base/n1 -> base/n<id>. */
    const char *d = c->procs[0].dir, *slash = strrchr(d, '/');
    snprintf(p->dir, sizeof p->dir, "%.*s/n%zu", slash ? (int)(slash - d) : 1,
             slash ? d : ".", i + 1);
    c->n++;
    return (int)i;
}

bool qc_start(qc_cluster *c, size_t i)
{
    qc_proc *p = &c->procs[i];
    if (p->pid != 0)
        return false;
    if (p->n_incarnations == QC_MAX_INCARNATIONS) {
        fprintf(stderr, "too many restarts of node %zu\n", i + 1);
        return false;
    }
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }

    /* The argument list. */
    char args[64][128];
    char *argv[72];
    size_t a = 0, k = 0;
#define ARG(...) (snprintf(args[k], sizeof args[k], __VA_ARGS__), argv[a++] = args[k++])
    argv[a++] = (char *)c->exe;
    ARG("--id");
    ARG("%" PRIu64, p->id);
    ARG("--listen");
    ARG("127.0.0.1:%d", p->port);
    for (size_t j = 0; j < c->n; j++) {
        if (j == i)
            continue;
        ARG("--peer");
        ARG("%" PRIu64 "=127.0.0.1:%d", c->procs[j].id, c->procs[j].port);
    }
    ARG("--data-dir");
    argv[a++] = p->dir;
    ARG("--groups");
    ARG("%u", c->groups);
    ARG("--replicas");
    ARG("3");
    ARG("--cluster-id");
    ARG("%u", c->cluster_id);
    ARG("--batch");
    ARG("%d", c->batch ? 1 : 0);
    ARG("--rate");
    ARG("%u", c->rate);
    ARG("--report-ms");
    ARG("%u", c->report_ms);
    if (c->snapshot_every > 0) {
        ARG("--snapshot-every");
        ARG("%u", c->snapshot_every);
        ARG("--snapshot-pad");
        ARG("%u", c->snapshot_pad);
    }
    if (c->snapshot_bytes > 0) {
        ARG("--snapshot-bytes");
        ARG("%u", c->snapshot_bytes);
    }
    if (c->wal_segment_mib > 0) {
        ARG("--wal-segment-mib");
        ARG("%u", c->wal_segment_mib);
    }
    if (c->snapshot_trailing > 0) {
        ARG("--snapshot-trailing");
        ARG("%u", c->snapshot_trailing);
    }
    if (c->no_app_logs) {
        ARG("--app-logs");
        ARG("0");
    }
    if (c->payload_bytes > 0) {
        ARG("--payload-bytes");
        ARG("%u", c->payload_bytes);
    }
    if (c->open_loop) {
        ARG("--open-loop");
        ARG("1");
    }
    if (c->rate_file) {
        ARG("--rate-file");
        argv[a++] = (char *)c->rate_file;
    }
    if (c->max_inflight >= 0) {
        ARG("--max-inflight");
        ARG("%lld", c->max_inflight);
    }
    if (c->max_pending_per_group >= 0) {
        ARG("--max-pending-per-group");
        ARG("%lld", c->max_pending_per_group);
    }
    if (c->quiesce >= 0) {
        ARG("--quiesce");
        ARG("%d", c->quiesce ? 1 : 0);
    }
    if (c->roles_ms > 0) {
        ARG("--roles-ms");
        ARG("%u", c->roles_ms);
    }
    if (p->join) {
        ARG("--join");
        ARG("1");
    }
    if (c->control_file) {
        ARG("--control");
        argv[a++] = (char *)c->control_file;
    }
    if (c->tls_dir) {
        ARG("--tls-cert");
        ARG("%s/node%" PRIu64 ".crt", c->tls_dir, p->id);
        ARG("--tls-key");
        ARG("%s/node%" PRIu64 ".key", c->tls_dir, p->id);
        ARG("--tls-ca");
        ARG("%s/ca.crt", c->tls_dir);
    }
    argv[a] = NULL;
#undef ARG

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "pipe: %s\n", strerror(errno));
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* die with the parent */
#endif
        if (getppid() != parent)
            _exit(127);
        dup2(fds[1], STDOUT_FILENO); /* dup2 clears O_CLOEXEC on the copy */
        signal(SIGPIPE, SIG_DFL);
        execv(c->exe, argv);
        fprintf(stderr, "cannot run %s: %s\n", c->exe, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    p->fd = fds[0];
    p->pid = pid;
    p->expected = true;
    p->len = 0;
    p->reports = 0;
    p->hist_n = 0;
    p->exit_status = 0;
    p->incarnations[p->n_incarnations++] = pid;
    return true;
}

bool qc_running(const qc_cluster *c, size_t i)
{
    return c->procs[i].pid != 0;
}

bool qc_died(const qc_cluster *c, size_t i)
{
    const qc_proc *p = &c->procs[i];
    return p->pid == 0 && p->expected && p->n_incarnations > 0;
}

void qc_signal(qc_cluster *c, size_t i, int sig)
{
    qc_proc *p = &c->procs[i];
    if (p->pid == 0)
        return;
    if (sig == SIGKILL || sig == SIGTERM)
        p->expected = false;
    kill(p->pid, sig);
}

static void reap(qc_proc *p)
{
    if (p->pid == 0)
        return;
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    p->exit_status = status;
    p->pid = 0;
}

void qc_kill(qc_cluster *c, size_t i)
{
    qc_proc *p = &c->procs[i];
    qc_signal(c, i, SIGKILL);
    reap(p);
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
}

static uint64_t field_u64(const char *v)
{
    return (uint64_t)strtoull(v, NULL, 10);
}

static bool parse_stat(char *line, qc_stat *s)
{
    if (strncmp(line, "STAT ", 5) != 0)
        return false;
    memset(s, 0, sizeof *s);
    char *save = NULL;
    for (char *tok = strtok_r(line + 5, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
#define F(name)                        \
    if (strcmp(k, #name) == 0) {       \
        s->name = field_u64(v);        \
        continue;                      \
    }
        F(t_ms) F(id) F(pid) F(groups) F(leading) F(leaderless)
        F(hb_msgs) F(hb_batches) F(group_hb_batched) F(hb_bytes) F(sent) F(bytes)
        F(proposing) F(proposed) F(commits) F(failed) F(inflight)
        F(p50_us) F(p99_us) F(applied) F(elections) F(leader_changes) F(final)
        F(snapshots) F(restores) F(installed) F(wal_segments) F(wal_bytes)
        F(snapshot_bytes) F(log_bytes) F(rss_kb) F(index_sum) F(skipped)
        F(busy) F(shed) F(rate) F(awake) F(quiesced) F(peers_heard)
        F(repl_added) F(repl_promoted) F(replaced) F(balance_transfers) F(transfers)
#undef F
        if (strcmp(k, "state") == 0) {
            s->state = (uint64_t)strtoull(v, NULL, 16);
            continue;
        }
        if (strcmp(k, "term_bumps") == 0) { /* ID:N,... */
            const char *q = v;
            while (*q) {
                char *end;
                uint64_t id = strtoull(q, &end, 10);
                if (*end != ':')
                    break;
                uint64_t n = strtoull(end + 1, &end, 10);
                if (id <= QC_MAX_ID)
                    s->term_bumps[id] = n;
                if (*end != ',')
                    break;
                q = end + 1;
            }
            continue;
        }
        if (strcmp(k, "hist") == 0) {
            const char *q = v;
            while (*q && *q != '-' && s->n_hist < QC_MAX_HIST) {
                char *end;
                uint64_t us = strtoull(q, &end, 10);
                if (*end != ':')
                    break;
                uint64_t count = strtoull(end + 1, &end, 10);
                s->hist_us[s->n_hist] = us;
                s->hist_count[s->n_hist] = count;
                s->n_hist++;
                if (*end != ',')
                    break;
                q = end + 1;
            }
        }
    }
    return true;
}

static void on_line(qc_cluster *c, qc_proc *p, char *line)
{
    qc_stat s;
    if (!parse_stat(line, &s))
        return;
    s.received_ns = qc_now_ns();
    p->last = s;
    p->reports++;
    if (p->hist_n == QC_HISTORY) {
        memmove(p->hist_ns, p->hist_ns + 1, (QC_HISTORY - 1) * sizeof p->hist_ns[0]);
        memmove(p->hist_applied, p->hist_applied + 1,
                (QC_HISTORY - 1) * sizeof p->hist_applied[0]);
        memmove(p->hist_index_sum, p->hist_index_sum + 1,
                (QC_HISTORY - 1) * sizeof p->hist_index_sum[0]);
        p->hist_n--;
    }
    p->hist_ns[p->hist_n] = s.received_ns;
    p->hist_applied[p->hist_n] = s.applied;
    p->hist_index_sum[p->hist_n] = s.index_sum;
    p->hist_n++;
    if (c->on_stat)
        c->on_stat(c->userdata, p, &p->last);
}

static void read_from(qc_cluster *c, qc_proc *p)
{
    if (p->len == sizeof p->buf)
        p->len = 0; /* a line longer than the buffer: drop it */
    ssize_t n = read(p->fd, p->buf + p->len, sizeof p->buf - p->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) { /* the process closed its stdout: it ended */
        close(p->fd);
        p->fd = -1;
        reap(p);
        return;
    }
    p->len += (size_t)n;
    size_t start = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->buf[i] == '\n') {
            p->buf[i] = '\0';
            on_line(c, p, p->buf + start);
            start = i + 1;
        }
    }
    memmove(p->buf, p->buf + start, p->len - start);
    p->len -= start;
}

void qc_poll(qc_cluster *c, int timeout_ms)
{
    struct pollfd pfd[QC_MAX_NODES];
    qc_proc *who[QC_MAX_NODES];
    nfds_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->procs[i].fd >= 0) {
            pfd[n].fd = c->procs[i].fd;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            who[n++] = &c->procs[i];
        }
    }
    if (n == 0) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    if (poll(pfd, n, timeout_ms) <= 0)
        return;
    for (nfds_t k = 0; k < n; k++)
        if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
            read_from(c, who[k]);
}

/* utime + stime from a /proc stat file (of a process or a thread). */
static uint64_t stat_ticks(const char *path)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return 0;
    /* After ")": state (field 3) ... utime (14), stime (15). */
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return 0;
    return (uint64_t)(utime + stime);
}

uint64_t qc_cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    return stat_ticks(path);
}

uint64_t qc_threads_cpu_ticks(pid_t pid, const char *prefix)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char file[128], comm[64] = "";
        snprintf(file, sizeof file, "%s/%.20s/comm", path, e->d_name);
        FILE *f = fopen(file, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) == NULL)
            comm[0] = '\0';
        fclose(f);
        if (strncmp(comm, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(file, sizeof file, "%s/%.20s/stat", path, e->d_name);
        total += stat_ticks(file);
    }
    closedir(d);
    return total;
}

double qc_cpu_pct(double ticks, double seconds)
{
    return 100.0 * ticks / (double)sysconf(_SC_CLK_TCK) / seconds;
}

uint64_t qc_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb;
}

uint64_t qc_applied_at(const qc_cluster *c, size_t i, uint64_t t_ns)
{
    const qc_proc *p = &c->procs[i];
    uint64_t v = 0;
    for (size_t k = 0; k < p->hist_n && p->hist_ns[k] <= t_ns; k++)
        v = p->hist_applied[k];
    return v;
}

uint64_t qc_index_sum_at(const qc_cluster *c, size_t i, uint64_t t_ns)
{
    const qc_proc *p = &c->procs[i];
    uint64_t v = 0;
    for (size_t k = 0; k < p->hist_n && p->hist_ns[k] <= t_ns; k++)
        v = p->hist_index_sum[k];
    return v;
}

bool qc_stop_all(qc_cluster *c, int timeout_ms)
{
    bool was_running[QC_MAX_NODES];
    for (size_t i = 0; i < c->n; i++) {
        was_running[i] = c->procs[i].pid != 0;
        qc_signal(c, i, SIGTERM);
    }
    uint64_t start = qc_now_ns();
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < c->n; i++)
            any = any || c->procs[i].fd >= 0;
        if (!any || qc_seconds_since(start) * 1000 > timeout_ms)
            break;
        qc_poll(c, 50);
    }
    bool clean = true;
    for (size_t i = 0; i < c->n; i++) {
        qc_proc *p = &c->procs[i];
        if (p->pid != 0) { /* still running (or its stdout still open) */
            fprintf(stderr, "node %" PRIu64 " did not stop within %d ms; killing it\n",
                    p->id, timeout_ms);
            qc_kill(c, i);
            clean = false;
        } else if (was_running[i] &&
                   !(WIFEXITED(p->exit_status) && WEXITSTATUS(p->exit_status) == 0)) {
            fprintf(stderr, "node %" PRIu64 " ended with status 0x%x\n", p->id,
                    (unsigned)p->exit_status);
            clean = false;
        }
    }
    return clean;
}

void qc_cleanup(qc_cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        qc_kill(c, i);
}

void qc_teardown(qc_cluster *c, char *dir, bool keep_dir)
{
    if (c)
        qc_cleanup(c);
    if (dir[0] && !keep_dir)
        qc_remove_tree(dir);
    dir[0] = '\0';
}

bool qc_init_temp(qc_cluster *c, const char *exe, size_t n, char *dir, size_t size,
                  const char *prefix)
{
    return qc_make_temp_dir(dir, size, prefix) && qc_init(c, exe, n, dir);
}

bool qc_start_all(qc_cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (!qc_start(c, i))
            return false;
    return true;
}

bool qc_any_died(const qc_cluster *c, const char *who)
{
    for (size_t i = 0; i < c->n; i++)
        if (qc_died(c, i)) {
            fprintf(stderr, "%s: node %zu died (status 0x%x)\n", who, i + 1,
                    (unsigned)c->procs[i].exit_status);
            return true;
        }
    return false;
}

bool qc_poll_alive(qc_cluster *c, int timeout_ms, const char *who)
{
    qc_poll(c, timeout_ms);
    return !(qc_any_died(c, who) || qc_interrupted);
}

bool qc_run_for(qc_cluster *c, double seconds, int poll_ms, const char *who)
{
    uint64_t t0 = qc_now_ns();
    while (qc_seconds_since(t0) < seconds)
        if (!qc_poll_alive(c, poll_ms, who))
            return false;
    return true;
}

bool qc_all_led(const qc_cluster *c, uint64_t since_ns)
{
    uint64_t leading = 0;
    for (size_t i = 0; i < c->n; i++) {
        const qc_proc *p = &c->procs[i];
        if (!qc_running(c, i))
            continue;
        if (p->reports == 0 || p->last.received_ns <= since_ns || p->last.groups != c->groups ||
            p->last.leaderless != 0)
            return false;
        leading += p->last.leading;
    }
    return leading == c->groups;
}

bool qc_all_quiet(const qc_cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const qc_stat *s = &c->procs[i].last;
        if (s->quiesced != c->groups || s->awake != 0)
            return false;
    }
    return true;
}

uint64_t qc_sum_field(const qc_cluster *c, size_t offset)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += *(const uint64_t *)((const char *)&c->procs[i].last + offset);
    return n;
}

static const qc_arg *find_arg(const qc_arg *args, size_t n, const char *flag)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(args[k].flag, flag) == 0)
            return &args[k];
    return NULL;
}

bool qc_parse_args(int argc, char **argv, const qc_arg *args, size_t n)
{
    for (int i = 1; i < argc; i++) {
        const qc_arg *a = find_arg(args, n, argv[i]);
        if (a == NULL)
            return false;
        if (a->kind == QC_ARG_SWITCH) {
            *(bool *)a->value = true;
            continue;
        }
        if (a->kind == QC_ARG_ACTION) {
            a->call(a->value, NULL);
            continue;
        }
        if (i + 1 >= argc)
            return false;
        const char *v = argv[++i];
        switch (a->kind) {
        case QC_ARG_STRING:
            *(const char **)a->value = v;
            break;
        case QC_ARG_UNSIGNED:
            *(unsigned *)a->value = (unsigned)strtoul(v, NULL, 10);
            break;
        case QC_ARG_DOUBLE:
            *(double *)a->value = atof(v);
            break;
        case QC_ARG_MODES:
            for (size_t m = 0; m < a->n_names; m++)
                ((bool *)a->value)[m] = strstr(v, a->names[m]) != NULL;
            break;
        case QC_ARG_CALL:
            a->call(a->value, v);
            break;
        case QC_ARG_SWITCH:
        case QC_ARG_ACTION:
            break;
        }
    }
    return true;
}
