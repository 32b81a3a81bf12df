/* cluster_util.c: see cluster_util.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp, lstat, opendir */
#endif
#include "cluster_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *cu_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "cluster_util: out of memory\n");
        abort();
    }
    return p;
}

static void *cu_xrealloc(void *old, size_t size)
{
    void *p = realloc(old, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "cluster_util: out of memory\n");
        abort();
    }
    return p;
}

/* ---- callbacks ---------------------------------------------------------- */

static void cu_on_send(void *userdata, uint64_t to, const uint8_t *frame,
                       size_t len, bool liveness)
{
    cu_node *n = (cu_node *)userdata;
    if (liveness)
        n->sent_liveness++;
    else
        n->sent_bulk++;
    cu_push(n->cluster, n->id, to, frame, len, liveness);
}

static void cu_on_apply(void *userdata, uint64_t group_id, uint64_t index,
                        const uint8_t *data, size_t len)
{
    cu_node *n = (cu_node *)userdata;
    if (group_id <= CU_MAX_GROUPS) {
        cu_log *log = &n->applied[group_id];
        if (log->n == log->cap) {
            log->cap = log->cap ? 2 * log->cap : 8;
            log->v = (cu_entry *)cu_xrealloc(log->v, log->cap * sizeof *log->v);
        }
        cu_entry *e = &log->v[log->n++];
        e->index = index;
        e->len = len;
        e->data = (uint8_t *)cu_xmalloc(len);
        if (len)
            memcpy(e->data, data, len);
    }
    if (n->cluster->on_apply)
        n->cluster->on_apply(n, group_id, index, data, len);
}

static void cu_on_role_changed(void *userdata, uint64_t group_id,
                               muxraft_role role, uint64_t term,
                               uint64_t leader_id)
{
    cu_node *n = (cu_node *)userdata;
    if (n->role_changes == n->cap_roles) {
        n->cap_roles = n->cap_roles ? 2 * n->cap_roles : 8;
        n->roles = (cu_role *)cu_xrealloc(n->roles, n->cap_roles * sizeof *n->roles);
    }
    cu_role *r = &n->roles[n->role_changes++];
    r->group_id = group_id;
    r->role = role;
    r->term = term;
    r->leader_id = leader_id;
    if (role == MUXRAFT_CANDIDATE)
        n->campaigns++;
}

static void cu_on_proposal_done(void *userdata, uint64_t group_id,
                                uint64_t proposal_id, muxraft_status status,
                                uint64_t index)
{
    cu_node *n = (cu_node *)userdata;
    if (n->n_done == n->cap_done) {
        n->cap_done = n->cap_done ? 2 * n->cap_done : 16;
        n->done = (cu_done *)cu_xrealloc(n->done, n->cap_done * sizeof *n->done);
    }
    cu_done *d = &n->done[n->n_done++];
    d->group_id = group_id;
    d->proposal_id = proposal_id;
    d->status = status;
    d->index = index;
    if (n->cluster->on_done) {
        cu_done copy = *d; /* the hook may propose, which may grow n->done */
        n->cluster->on_done(n, &copy);
    }
}

static void cu_on_restore(void *userdata, uint64_t group_id, uint64_t index,
                          uint64_t term, const uint8_t *data, size_t len)
{
    cu_node *n = (cu_node *)userdata;
    if (n->n_restores == n->cap_restores) {
        n->cap_restores = n->cap_restores ? 2 * n->cap_restores : 4;
        n->restores = (cu_restore *)cu_xrealloc(n->restores,
                                                n->cap_restores * sizeof *n->restores);
    }
    cu_restore *r = &n->restores[n->n_restores++];
    r->group_id = group_id;
    r->index = index;
    r->term = term;
    r->len = len;
    r->data = (uint8_t *)cu_xmalloc(len);
    if (len)
        memcpy(r->data, data, len);
    r->applied_before = group_id <= CU_MAX_GROUPS ? n->applied[group_id].n : 0;
    if (n->cluster->on_restore) {
        cu_restore copy = *r; /* the hook may cause another restore */
        n->cluster->on_restore(n, &copy);
    }
}

static void cu_on_snapshot_needed(void *userdata, uint64_t group_id,
                                  uint64_t applied, uint64_t entries, uint64_t bytes)
{
    cu_node *n = (cu_node *)userdata;
    if (n->n_hints == n->cap_hints) {
        n->cap_hints = n->cap_hints ? 2 * n->cap_hints : 4;
        n->hints = (cu_hint *)cu_xrealloc(n->hints, n->cap_hints * sizeof *n->hints);
    }
    cu_hint *h = &n->hints[n->n_hints++];
    h->group_id = group_id;
    h->applied = applied;
    h->entries = entries;
    h->bytes = bytes;
}

static void cu_on_read_done(void *userdata, uint64_t group_id, uint64_t read_id,
                            muxraft_status status, uint64_t index)
{
    cu_node *n = (cu_node *)userdata;
    if (n->n_reads == n->cap_reads) {
        n->cap_reads = n->cap_reads ? 2 * n->cap_reads : 8;
        n->reads = (cu_read *)cu_xrealloc(n->reads, n->cap_reads * sizeof *n->reads);
    }
    cu_read *r = &n->reads[n->n_reads++];
    r->group_id = group_id;
    r->read_id = read_id;
    r->status = status;
    r->index = index;
    r->applied_n = 0;
    r->last_applied = 0;
    if (group_id <= CU_MAX_GROUPS) {
        const cu_log *log = &n->applied[group_id];
        r->applied_n = log->n;
        r->last_applied = log->n ? log->v[log->n - 1].index : 0;
    }
}

static void cu_on_members_changed(void *userdata, uint64_t group_id, uint64_t index,
                                  const muxraft_member *members, size_t count)
{
    cu_node *n = (cu_node *)userdata;
    if (n->n_memberships == n->cap_memberships) {
        n->cap_memberships = n->cap_memberships ? 2 * n->cap_memberships : 4;
        n->memberships = (cu_members *)cu_xrealloc(
            n->memberships, n->cap_memberships * sizeof *n->memberships);
    }
    cu_members *m = &n->memberships[n->n_memberships++];
    memset(m, 0, sizeof *m);
    m->group_id = group_id;
    m->index = index;
    m->count = count;
    m->restores_before = n->n_restores;
    for (size_t i = 0; i < count && i < CU_MAX_MEMBERS; i++)
        m->members[i] = members[i];
}

/* ---- cluster ------------------------------------------------------------ */

/* Create node `n`'s muxraft node from n->config, with the recording
 * callbacks. */
static bool cu_node_new(cu_node *n)
{
    muxraft_callbacks cb;
    muxraft_callbacks_init(&cb);
    cb.userdata = n;
    cb.send = cu_on_send;
    cb.apply = cu_on_apply;
    cb.role_changed = cu_on_role_changed;
    cb.proposal_done = cu_on_proposal_done;
    cb.restore = cu_on_restore;
    cb.snapshot_needed = cu_on_snapshot_needed;
    cb.read_done = cu_on_read_done;
    cb.members_changed = cu_on_members_changed;
    if (n->dir[0])
        n->config.data_dir = n->dir;
    muxraft_status s;
    if (n->config_size != 0 && n->config_size < sizeof n->config) {
        /* Exactly config_size bytes, as an older program's struct. */
        uint8_t *older = (uint8_t *)cu_xmalloc(n->config_size);
        const uint32_t size = (uint32_t)n->config_size;
        memcpy(older, &n->config, n->config_size);
        memcpy(older, &size, sizeof size);
        s = muxraft_node_new((const muxraft_config *)(void *)older, &cb, &n->handle);
        free(older);
    } else {
        s = muxraft_node_new(&n->config, &cb, &n->handle);
    }
    if (s != MUXRAFT_OK) {
        fprintf(stderr, "cluster_util: muxraft_node_new(%llu): %s: %s\n",
                (unsigned long long)n->id, muxraft_status_str((int)s),
                muxraft_last_error());
        n->handle = NULL;
        return false;
    }
    return true;
}

static bool cu_init_dirs(cu_cluster *c, size_t n_nodes, uint64_t cluster_id,
                         const muxraft_config *base, const char *dir)
{
    memset(c, 0, sizeof *c);
    if (n_nodes == 0 || n_nodes > CU_MAX_NODES)
        return false;
    c->n_nodes = n_nodes;
    for (size_t i = 0; i < n_nodes; i++) {
        cu_node *n = &c->nodes[i];
        n->cluster = c;
        n->id = i + 1;
        if (base)
            n->config = *base;
        else
            muxraft_config_init(&n->config);
        n->config.node_id = n->id;
        n->config.cluster_id = cluster_id;
        if (dir)
            snprintf(n->dir, sizeof n->dir, "%s/node-%zu", dir, i + 1);
    }
    for (size_t i = 0; i < n_nodes; i++) {
        if (!cu_node_new(&c->nodes[i])) {
            cu_free(c);
            return false;
        }
    }
    return true;
}

bool cu_init(cu_cluster *c, size_t n_nodes, uint64_t cluster_id,
             const muxraft_config *base)
{
    return cu_init_dirs(c, n_nodes, cluster_id, base, NULL);
}

bool cu_init_durable(cu_cluster *c, size_t n_nodes, uint64_t cluster_id,
                     const muxraft_config *base, const char *dir)
{
    return cu_init_dirs(c, n_nodes, cluster_id, base, dir);
}

bool cu_restart(cu_cluster *c, uint64_t id, bool wipe)
{
    cu_node *n = cu_node_by_id(c, id);
    if (n == NULL)
        return false;
    muxraft_node_free(n->handle);
    n->handle = NULL;
    if (wipe && n->dir[0])
        cu_remove_dir(n->dir);
    return cu_node_new(n);
}

void cu_isolate(cu_cluster *c, uint64_t id) { c->isolated = id; }

void cu_free(cu_cluster *c)
{
    /* Nodes first: freeing a node may still report to callbacks (it must
     * not, but if it did the logs would still be there). */
    for (size_t i = 0; i < c->n_nodes; i++) {
        muxraft_node_free(c->nodes[i].handle);
        c->nodes[i].handle = NULL;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        cu_node *n = &c->nodes[i];
        for (size_t g = 0; g <= CU_MAX_GROUPS; g++) {
            for (size_t k = 0; k < n->applied[g].n; k++)
                free(n->applied[g].v[k].data);
            free(n->applied[g].v);
        }
        free(n->done);
        for (size_t k = 0; k < n->n_restores; k++)
            free(n->restores[k].data);
        free(n->restores);
        free(n->hints);
        free(n->reads);
        free(n->roles);
        free(n->memberships);
    }
    cu_frame *f;
    while ((f = cu_pop(c)) != NULL)
        cu_frame_free(f);
    memset(c, 0, sizeof *c);
}

bool cu_create_group(cu_cluster *c, uint64_t group_id)
{
    uint64_t members[CU_MAX_NODES];
    for (size_t i = 0; i < c->n_nodes; i++)
        members[i] = c->nodes[i].id;
    for (size_t i = 0; i < c->n_nodes; i++) {
        muxraft_status s = muxraft_group_create(c->nodes[i].handle, group_id, 1,
                                                members, c->n_nodes);
        if (s != MUXRAFT_OK) {
            fprintf(stderr, "cluster_util: group_create(%llu) on node %zu: %s: %s\n",
                    (unsigned long long)group_id, i + 1, muxraft_status_str((int)s),
                    muxraft_last_error());
            return false;
        }
    }
    return true;
}

bool cu_remove_group(cu_cluster *c, uint64_t group_id)
{
    for (size_t i = 0; i < c->n_nodes; i++) {
        muxraft_status s = muxraft_group_remove(c->nodes[i].handle, group_id);
        if (s != MUXRAFT_OK) {
            fprintf(stderr, "cluster_util: group_remove(%llu) on node %zu: %s: %s\n",
                    (unsigned long long)group_id, i + 1, muxraft_status_str((int)s),
                    muxraft_last_error());
            return false;
        }
    }
    return true;
}

cu_node *cu_node_by_id(cu_cluster *c, uint64_t id)
{
    if (id == 0 || id > c->n_nodes)
        return NULL;
    return &c->nodes[id - 1];
}

/* ---- wire --------------------------------------------------------------- */

void cu_push(cu_cluster *c, uint64_t from, uint64_t to, const uint8_t *bytes,
             size_t len, bool liveness)
{
    cu_frame *f = (cu_frame *)cu_xmalloc(sizeof *f);
    f->next = NULL;
    f->from = from;
    f->to = to;
    f->len = len;
    f->liveness = liveness;
    f->bytes = (uint8_t *)cu_xmalloc(len);
    if (len)
        memcpy(f->bytes, bytes, len);
    if (c->tail)
        c->tail->next = f;
    else
        c->head = f;
    c->tail = f;
    c->queued++;
}

cu_frame *cu_pop(cu_cluster *c)
{
    cu_frame *f = c->head;
    if (f) {
        c->head = f->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->queued--;
        f->next = NULL;
    }
    return f;
}

void cu_frame_free(cu_frame *f)
{
    if (f) {
        free(f->bytes);
        free(f);
    }
}

cu_frame *cu_frame_copy(const cu_frame *f)
{
    cu_frame *g = (cu_frame *)cu_xmalloc(sizeof *g);
    *g = *f;
    g->next = NULL;
    g->bytes = (uint8_t *)cu_xmalloc(f->len);
    if (f->len)
        memcpy(g->bytes, f->bytes, f->len);
    return g;
}

bool cu_drain(cu_cluster *c)
{
    bool ok = true;
    cu_frame *f;
    while ((f = cu_pop(c)) != NULL) {
        cu_node *dst = cu_node_by_id(c, f->to);
        if (c->isolated != 0 && (f->from == c->isolated || f->to == c->isolated)) {
            c->frames_dropped++;
        } else if (dst == NULL) {
            fprintf(stderr, "cluster_util: frame for unknown node %llu\n",
                    (unsigned long long)f->to);
            ok = false;
        } else {
            muxraft_status s = muxraft_step(dst->handle, f->from, f->bytes, f->len);
            if (s != MUXRAFT_OK) {
                fprintf(stderr, "cluster_util: step %llu->%llu: %s: %s\n",
                        (unsigned long long)f->from, (unsigned long long)f->to,
                        muxraft_status_str((int)s), muxraft_last_error());
                c->step_failures++;
                ok = false;
            }
        }
        cu_frame_free(f);
    }
    return ok;
}

bool cu_tick(cu_cluster *c)
{
    bool ok = true;
    for (size_t i = 0; i < c->n_nodes; i++) {
        muxraft_status s = muxraft_tick(c->nodes[i].handle);
        if (s != MUXRAFT_OK) {
            fprintf(stderr, "cluster_util: tick node %zu: %s: %s\n", i + 1,
                    muxraft_status_str((int)s), muxraft_last_error());
            ok = false;
        }
    }
    return cu_drain(c) && ok;
}

/* ---- queries ------------------------------------------------------------ */

uint64_t cu_leader(cu_cluster *c, uint64_t group_id)
{
    uint64_t leader = 0;
    size_t leading = 0;
    muxraft_group_info info[CU_MAX_NODES];
    for (size_t i = 0; i < c->n_nodes; i++) {
        muxraft_group_info_init(&info[i]);
        if (muxraft_group_status(c->nodes[i].handle, group_id, &info[i]) !=
            MUXRAFT_OK)
            return 0;
        if (info[i].role == MUXRAFT_LEADER) {
            leader = c->nodes[i].id;
            leading++;
        }
    }
    if (leading != 1)
        return 0;
    for (size_t i = 0; i < c->n_nodes; i++)
        if (info[i].leader_id != leader)
            return 0;
    return leader;
}

uint64_t cu_wait_leader(cu_cluster *c, uint64_t group_id, int max_ticks)
{
    for (int t = 0; t <= max_ticks; t++) {
        uint64_t leader = cu_leader(c, group_id);
        if (leader)
            return leader;
        if (!cu_tick(c))
            return 0;
    }
    return 0;
}

bool cu_wait_applied(cu_cluster *c, uint64_t group_id, size_t n, int max_ticks)
{
    if (group_id > CU_MAX_GROUPS)
        return false;
    for (int t = 0; t <= max_ticks; t++) {
        bool all = true;
        for (size_t i = 0; i < c->n_nodes; i++)
            if (c->nodes[i].applied[group_id].n < n)
                all = false;
        if (all)
            return true;
        if (!cu_tick(c))
            return false;
    }
    return false;
}

bool cu_logs_agree(const cu_cluster *c, uint64_t group_id)
{
    if (group_id > CU_MAX_GROUPS || c->n_nodes == 0)
        return false;
    const cu_log *ref = &c->nodes[0].applied[group_id];
    for (size_t k = 1; k < ref->n; k++)
        if (ref->v[k].index <= ref->v[k - 1].index)
            return false;
    for (size_t i = 1; i < c->n_nodes; i++) {
        const cu_log *log = &c->nodes[i].applied[group_id];
        if (log->n != ref->n)
            return false;
        for (size_t k = 0; k < log->n; k++) {
            const cu_entry *a = &ref->v[k], *b = &log->v[k];
            if (a->index != b->index || a->len != b->len ||
                (a->len && memcmp(a->data, b->data, a->len) != 0))
                return false;
        }
    }
    return true;
}

bool cu_entry_is(const cu_cluster *c, uint64_t id, uint64_t group_id, size_t k,
                 const char *s)
{
    if (id < 1 || id > c->n_nodes || group_id > CU_MAX_GROUPS)
        return false;
    const cu_log *log = &c->nodes[id - 1].applied[group_id];
    if (k >= log->n)
        return false;
    size_t len = strlen(s);
    return log->v[k].len == len && (len == 0 || memcmp(log->v[k].data, s, len) == 0);
}

bool cu_applied_after_restore(const cu_node *n, const cu_restore *r)
{
    if (r->group_id > CU_MAX_GROUPS)
        return false;
    const cu_log *log = &n->applied[r->group_id];
    for (size_t k = r->applied_before; k < log->n; k++)
        if (log->v[k].index <= r->index)
            return false;
    return true;
}

const cu_done *cu_find_done(const cu_node *n, uint64_t proposal_id,
                            size_t *count)
{
    const cu_done *found = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n->n_done; i++) {
        if (n->done[i].proposal_id == proposal_id) {
            if (found == NULL)
                found = &n->done[i];
            k++;
        }
    }
    if (count)
        *count = k;
    return found;
}

const cu_members *cu_last_members(const cu_node *n, uint64_t group_id)
{
    for (size_t i = n->n_memberships; i > 0; i--)
        if (n->memberships[i - 1].group_id == group_id)
            return &n->memberships[i - 1];
    return NULL;
}

bool cu_has_member(const cu_members *m, uint64_t id, muxraft_member_role role)
{
    for (size_t i = 0; m != NULL && i < m->count && i < CU_MAX_MEMBERS; i++)
        if (m->members[i].node_id == id)
            return m->members[i].role == role;
    return false;
}

const cu_read *cu_find_read(const cu_node *n, uint64_t read_id, size_t *count)
{
    const cu_read *found = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        if (n->reads[i].read_id == read_id) {
            if (found == NULL)
                found = &n->reads[i];
            k++;
        }
    }
    if (count)
        *count = k;
    return found;
}

/* ---- directories ---------------------------------------------------------- */

bool cu_temp_dir(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (snprintf(out, size, "%s/muxraft-c-test-XXXXXX", tmp) >= (int)size)
        return false;
    return mkdtemp(out) != NULL;
}

void cu_remove_dir(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            char child[1024];
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) <
                    (int)sizeof child)
                    cu_remove_dir(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}
