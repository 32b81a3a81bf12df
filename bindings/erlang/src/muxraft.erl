%% @doc Erlang binding of muxraft, a multi-raft library with heartbeat
%% multiplexing (one heartbeat message per peer per interval for all groups).
%%
%% A node is started by a process, its <em>owner</em>, which receives every
%% event of the node as a message:
%% <pre>
%%   {muxraft, Node, {applied, GroupId, Index, Data}}
%%   {muxraft, Node, {restore, GroupId, Index, Data}}
%%   {muxraft, Node, {snapshot_needed, GroupId, Applied, Entries, Bytes}}
%%   {muxraft, Node, {role, GroupId, leader | follower | candidate, Term, LeaderId}}
%%   {muxraft, Node, {proposal, ProposalId, ok, Index}}
%%   {muxraft, Node, {proposal, ProposalId, {error, Reason}}}
%%   {muxraft, Node, {read, ReadId, ok, Index}}
%%   {muxraft, Node, {read, ReadId, {error, Reason}}}
%%   {muxraft, Node, {members_changed, GroupId, Index, Members}}
%%   {muxraft, Node, {send, ToNodeId, Frame, Liveness}} (host-driven mode only)
%% </pre>
%% `applied' messages of a group arrive in log order. `restore' tells the
%% owner to set its state machine of the group to `Data', the state after
%% applying `Index': a snapshot its leader sent (this replica fell behind
%% the leader's log), or, with a `data_dir', the latest one on disk (sent
%% by {@link start_node/1} before it returns). It arrives before any
%% `applied' message of a later index of the group; `applied' then resumes
%% after `Index'. `snapshot_needed' says once that a group's log since its
%% last snapshot passed `snapshot_threshold_entries' or
%% `snapshot_threshold_bytes': take one with {@link snapshot/4} (`Applied'
%% is the last index applied). Every proposal accepted
%% by {@link propose/3} gets exactly one `proposal' message, and every read
%% taken by {@link read_index/2} exactly one `read' message: `ok' once the
%% `applied' messages up to `Index' have been sent (serve the read from the
%% state machine then). `members_changed' says that a membership of the
%% group was applied on this replica at `Index' (a change made with
%% {@link add_member/4} or {@link remove_member/3}, or an automatic
%% promotion, committed; or a snapshot installed there carried it):
%% `Members' (see the type `member()', `match_index' 0) is the whole
%% membership from then on, voters first, in log order with the `applied'
%% messages; without this node among them, its replica was removed and no
%% longer takes part: {@link remove_group/2} it once its state is no longer
%% needed. `Liveness' is
%% `true' for heartbeat batches and their answers: a transport should send
%% those ahead of other frames, never queued behind megabytes of entries.
%% Group ids are any integer from 0 to 2^64-1; node ids are non-zero.
%%
%% Two modes:
%% <ul>
%% <li><b>Embedded</b> (`listen' given): muxraft runs the node on its own
%%   threads (timer, TCP transport to `peers', write-ahead log in
%%   `data_dir'). The node runs until {@link stop_node/1} or until its owner
%%   exits, like a port; then it is freed when no term refers to it.</li>
%% <li><b>Host-driven</b> (no `listen'): the host calls {@link tick/1} every
%%   `tick_ms' and {@link step/3} with every frame a peer sent, and carries
%%   the `{send, To, Frame, Liveness}' messages to the peers itself (e.g.
%%   over Erlang distribution). Callbacks run inside those calls. For events
%%   to arrive in order, make every call that drives the node (tick, step,
%%   propose, read_index, transfer_leader, create_group, rejoin_group,
%%   join_group, remove_group, add_member, remove_member, snapshot) from one
%%   process, normally the owner.</li>
%% </ul>
%%
%% Errors: a call with arguments of the wrong type raises `badarg'; a call
%% the library refuses returns `{error, Reason}' with `Reason' one of
%% `invalid_argument | not_found | already_exists | not_leader | too_large |
%% malformed | io | shutdown | busy | panic | unknown' (the name of the C
%% status, as `muxraft_status_str' gives it, without `MUXRAFT_' and in lower
%% case); {@link last_error/0} gives the library's explanation of the
%% calling process's last such error.
-module(muxraft).

-export([start_node/1, stop_node/1,
         create_group/4, rejoin_group/4, join_group/3, remove_group/2,
         add_member/4, remove_member/3, members/2,
         propose/3, read_index/2, transfer_leader/3, snapshot/4,
         group_status/2, key_metrics/2, stats/1,
         node_peers/1, metrics/1, metrics_text/1,
         tick/1, step/3,
         set_log_level/1,
         last_error/0, version/0]).

-export_type([node_handle/0, node_id/0, group_id/0, proposal_id/0,
              read_id/0, peer/0, member/0, member_role/0, reason/0, role/0,
              event/0]).

-on_load(load_nif/0).

-type node_handle() :: reference().
%% The node: a NIF resource. It compares equal to the `Node' in every event
%% message of that node.
-type node_id() :: pos_integer().
-type group_id() :: non_neg_integer().
%% Any integer from 0 to 2^64-1.
-type incarnation() :: non_neg_integer().
%% Names one creation of a group id: the same on every member, different
%% from every earlier creation of the same id (see `muxraft_group_create').
-type proposal_id() :: pos_integer().
-type read_id() :: pos_integer().
-type peer() :: #{node_id := node_id(), heard := boolean(),
                  epoch := pos_integer()}.
%% A node hosting replicas of this node's groups: `heard' if a frame from it
%% arrived within the last election timeout; `epoch' is its liveness epoch
%% here (1 at first, one more each time it is lost or seen to restart).
-type role() :: leader | follower | candidate.
-type member_role() :: voter | nonvoter | promotable.
%% A voter counts toward elections and commit; a non-voter receives the
%% log and never votes; a promotable member is a non-voter its leader makes
%% a voter once it has caught up.
-type member() :: #{node_id := node_id(), role := member_role(),
                    match_index := non_neg_integer()}.
%% A member of a group: the node hosting its replica, its role, and, in
%% {@link members/2} on the group's leader, the highest index known to
%% match the leader's log there (0 elsewhere and in `members_changed').
-type reason() :: invalid_argument | not_found | already_exists | not_leader
                | too_large | malformed | io | shutdown | busy | panic | unknown.
-type event() :: {applied, group_id(), Index :: pos_integer(), Data :: binary()}
               | {restore, group_id(), Index :: pos_integer(), Data :: binary()}
               | {snapshot_needed, group_id(), Applied :: non_neg_integer(),
                  Entries :: non_neg_integer(), Bytes :: non_neg_integer()}
               | {role, group_id(), role(), Term :: non_neg_integer(),
                  Leader :: non_neg_integer()}
               | {proposal, proposal_id(), ok, Index :: pos_integer()}
               | {proposal, proposal_id(), {error, reason()}}
               | {read, read_id(), ok, Index :: non_neg_integer()}
               | {read, read_id(), {error, reason()}}
               | {members_changed, group_id(), Index :: pos_integer(), [member()]}
               | {send, To :: node_id(), Frame :: binary(), Liveness :: boolean()}.

-define(LAST_ERROR, '$muxraft_last_error').

%% ---------------------------------------------------------------------------
%% API

%% @doc Create a node and, with `listen', start it (embedded mode).
%%
%% Keys: `node_id' (required, non-zero, unique in the cluster),
%% `cluster_id' (default 0: frames of another cluster are refused),
%% `listen' ("host:port"; absent: host-driven mode), `peers'
%% (`#{NodeId => "host:port"}' of the other nodes, embedded mode),
%% `data_dir' (durable write-ahead log; absent: in memory), and the tuning
%% keys `tick_ms' (50), `heartbeat_ticks' (2), `election_ticks' (10),
%% `batch_heartbeats' (true), `max_proposal_bytes' (1 MiB, at most 4 MiB),
%% and for snapshots `snapshot_threshold_entries' (10000; 0: never by
%% count) and `snapshot_threshold_bytes' (8 MiB; 0: never by size), when
%% `snapshot_needed' is sent; `snapshot_trailing_entries' (1024), the log
%% kept behind a snapshot; `snapshot_chunk_bytes' (1 MiB, at most 4 MiB)
%% and `snapshot_timeout_ms' (30000), how snapshots travel to followers;
%% `max_snapshot_bytes' (1 GiB); `wal_segment_bytes' (16 MiB, at least
%% 64 KiB); and for backpressure (0: no limit) `max_pending_proposals_per_group'
%% (4096) and `max_pending_proposals' (4096), the proposals made on this
%% node and not yet decided, in a group and over all groups, and
%% `max_unsynced_bytes_per_group' (16 MiB) and `max_unsynced_bytes'
%% (256 MiB), the payload bytes not yet durable here: at a limit
%% {@link propose/3} answers `{error, busy}' at once; and `quiesce' (true;
%% only with `batch_heartbeats', ignored without): a group with nothing to
%% do goes quiet on every replica (no ticks, no heartbeat rows) until a
%% proposal, a message or the loss of its leader's node wakes it, while the
%% per-pair heartbeat batch, sent every interval even when empty, tells
%% each node its peers are alive ({@link stats/1} shows `groups_awake',
%% `groups_quiesced', the wakeups and the peers); `false' keeps every group
%% awake; and for reads (0: no limit) `max_pending_reads_per_group' (4096)
%% and `max_pending_reads' (65536), the reads taken and not yet reported,
%% in a group and over all groups: at a limit {@link read_index/2} answers
%% `{error, busy}' at once; and `metrics_per_group_max' (0: never), the
%% most groups the node may host for {@link metrics_text/1} to render
%% per-group series; and `cluster_secret' (embedded mode; a binary of 16 to
%% 1024 bytes shared by every node of the cluster; absent: none): every
%% connection between two nodes then proves, both ways, that the peer has
%% the same secret (HMAC-SHA256 over fresh nonces; the secret never
%% travels), and a peer with another secret, or none, is refused and
%% counted in `peers_refused_auth' of {@link stats/1}; set it on every node
%% or none (a host-driven node ignores it: the host's transport owns the
%% links); and `tls_cert_pem', `tls_key_pem', `tls_ca_pem' (embedded mode;
%% file names of PEM files: this node's certificate chain, its private key
%% and the cluster CA; all three or none): every connection is then mutual
%% TLS 1.3 against the CA (the dialer checks the IP it dialed against the
%% peer certificate's IP SANs), and a peer that fails it is refused and
%% counted in `peers_refused_tls' of {@link stats/1}; a missing file, bad
%% PEM or a key of another certificate give `{error, invalid_argument}'
%% (see {@link last_error/0}); `balance_leaders' (`auto', the default: on in
%% embedded mode, off in host-driven mode; `on'; `off'): the leader balancer,
%% which hands leaderships beyond this node's share of the groups to nodes
%% below theirs by leadership transfers, a few at a time
%% (`balance_max_transfers' in flight, default 8), counted in
%% `balance_transfers' of {@link stats/1}; and `broadcast_commit' (false):
%% how followers learn that an entry is committed, `false' by the leader's
%% next append or heartbeat (for proposals made one at a time, half the
%% messages of `true', but followers apply up to one heartbeat interval
%% after the leader), `true' at once, by an empty append where there is
%% nothing else to send; either way the leader commits, and reports the
%% proposal, as promptly, and the commit of a membership change is always
%% told at once. Strings may be given as strings or binaries. Unknown keys
%% raise `badarg'.
%%
%% The calling process becomes the owner and receives the node's events.
-spec start_node(#{node_id := node_id(),
                   cluster_id => non_neg_integer(),
                   listen => string() | binary(),
                   peers => #{node_id() => string() | binary()},
                   data_dir => file:filename_all(),
                   tick_ms => pos_integer(),
                   heartbeat_ticks => pos_integer(),
                   election_ticks => pos_integer(),
                   batch_heartbeats => boolean(),
                   max_proposal_bytes => pos_integer(),
                   snapshot_threshold_entries => non_neg_integer(),
                   snapshot_threshold_bytes => non_neg_integer(),
                   snapshot_trailing_entries => non_neg_integer(),
                   snapshot_chunk_bytes => pos_integer(),
                   snapshot_timeout_ms => pos_integer(),
                   max_snapshot_bytes => non_neg_integer(),
                   wal_segment_bytes => pos_integer(),
                   max_pending_proposals_per_group => non_neg_integer(),
                   max_pending_proposals => non_neg_integer(),
                   max_unsynced_bytes_per_group => non_neg_integer(),
                   max_unsynced_bytes => non_neg_integer(),
                   quiesce => boolean(),
                   max_pending_reads_per_group => non_neg_integer(),
                   max_pending_reads => non_neg_integer(),
                   metrics_per_group_max => non_neg_integer(),
                   cluster_secret => binary(),
                   tls_cert_pem => file:filename_all(),
                   tls_key_pem => file:filename_all(),
                   tls_ca_pem => file:filename_all(),
                   balance_leaders => auto | on | off,
                   balance_max_transfers => non_neg_integer(),
                   broadcast_commit => boolean()}) ->
          {ok, node_handle()} | {error, reason()}.
start_node(Opts) when is_map(Opts) ->
    Known = [node_id, cluster_id, listen, peers, data_dir, tick_ms,
             heartbeat_ticks, election_ticks, batch_heartbeats,
             max_proposal_bytes, snapshot_threshold_entries,
             snapshot_threshold_bytes, snapshot_trailing_entries,
             snapshot_chunk_bytes, snapshot_timeout_ms, max_snapshot_bytes,
             wal_segment_bytes, max_pending_proposals_per_group,
             max_pending_proposals, max_unsynced_bytes_per_group,
             max_unsynced_bytes, quiesce, max_pending_reads_per_group,
             max_pending_reads, metrics_per_group_max, cluster_secret,
             tls_cert_pem, tls_key_pem, tls_ca_pem, balance_leaders,
             balance_max_transfers, broadcast_commit],
    [] =:= maps:keys(maps:without(Known, Opts)) orelse error(badarg, [Opts]),
    NodeId = case Opts of
                 #{node_id := Id} when is_integer(Id), Id > 0 -> Id;
                 _ -> error(badarg, [Opts])
             end,
    ClusterId = case maps:get(cluster_id, Opts, 0) of
                    C when is_integer(C), C >= 0 -> C;
                    _ -> error(badarg, [Opts])
                end,
    Listen = opt_string(listen, Opts),
    DataDir = case maps:find(data_dir, Opts) of
                  error -> undefined;
                  {ok, D} -> filename_bin(D, Opts)
              end,
    Peers = case maps:get(peers, Opts, #{}) of
                P when is_map(P) ->
                    [{Id, to_bin(A, Opts)} || {Id, A} <- lists:sort(maps:to_list(P))];
                _ -> error(badarg, [Opts])
            end,
    lists:all(fun({Id, _}) -> is_integer(Id) andalso Id > 0 end, Peers)
        orelse error(badarg, [Opts]),
    Secret = case maps:find(cluster_secret, Opts) of
                 error -> undefined;
                 {ok, S} when is_binary(S), byte_size(S) > 0 -> S;
                 _ -> error(badarg, [Opts])
             end,
    [TlsCert, TlsKey, TlsCa] =
        [case maps:find(K, Opts) of
             error -> undefined;
             {ok, F} -> filename_bin(F, Opts)
         end || K <- [tls_cert_pem, tls_key_pem, tls_ca_pem]],
    Batch = opt_bool(batch_heartbeats, Opts),
    Quiesce = opt_bool(quiesce, Opts),
    BroadcastCommit = opt_bool(broadcast_commit, Opts),
    %% MUXRAFT_BALANCE_AUTO, _ON, _OFF.
    Balance = case maps:get(balance_leaders, Opts, auto) of
                  auto -> 0;
                  on -> 1;
                  off -> 2;
                  _ -> error(badarg, [Opts])
              end,
    result(start_node_nif(NodeId, ClusterId, Listen, Peers, DataDir,
                          opt_int(tick_ms, Opts),
                          opt_int(heartbeat_ticks, Opts),
                          opt_int(election_ticks, Opts),
                          Batch,
                          opt_int(max_proposal_bytes, Opts),
                          {opt_u64(snapshot_threshold_entries, Opts),
                           opt_u64(snapshot_threshold_bytes, Opts),
                           opt_u64(snapshot_trailing_entries, Opts),
                           opt_int(snapshot_chunk_bytes, Opts),
                           opt_int(snapshot_timeout_ms, Opts),
                           opt_u64(max_snapshot_bytes, Opts),
                           opt_u64(wal_segment_bytes, Opts)},
                          {opt_u64(max_pending_proposals_per_group, Opts),
                           opt_u64(max_pending_proposals, Opts),
                           opt_u64(max_unsynced_bytes_per_group, Opts),
                           opt_u64(max_unsynced_bytes, Opts)},
                          Quiesce,
                          {opt_u64(max_pending_reads_per_group, Opts),
                           opt_u64(max_pending_reads, Opts),
                           opt_u64(metrics_per_group_max, Opts)},
                          {Secret, TlsCert, TlsKey, TlsCa, Balance,
                           opt_int(balance_max_transfers, Opts),
                           BroadcastCommit}));
start_node(Opts) ->
    error(badarg, [Opts]).

%% @doc Stop the node. Embedded mode: the pass in progress finishes, every
%% proposal still waiting is reported to the owner as
%% `{proposal, Id, {error, shutdown}}' (and every read not yet reported as
%% `{read, Id, {error, shutdown}}'), then muxraft's threads and
%% connections end; when this returns no message of the node is on its way
%% any more. Host-driven mode: waits for the calls in progress, then runs the
%% node's last pass in the calling process, which reports every proposal
%% still waiting the same way.
%% Every later call returns `{error, shutdown}', except
%% {@link group_status/2}, {@link members/2} and {@link stats/1}, which
%% report the final state.
%% Idempotent. The node's memory is freed when no term refers to it; a
%% stopped node writes nothing and has let its `data_dir' go, so a new node
%% may open it at once (while a node runs, `start_node/1' on its `data_dir'
%% answers `{error, busy}').
-spec stop_node(node_handle()) -> ok.
stop_node(Node) ->
    stop_node_nif(Node).

%% @doc Create this node's replica of group `GroupId', whose replicas live on
%% `Members' (1 to 7 distinct node ids, this node among them). Create it on
%% every member node with the same members and the same `Incarnation', a
%% value that differs from every earlier creation of `GroupId' (e.g.
%% `erlang:system_time(nanosecond)' when the queue is declared, stored with
%% its metadata): messages of another incarnation are dropped, so a deleted
%% queue's messages never reach a new queue with the same id. With a
%% `data_dir' the group is durable when this returns.
-spec create_group(node_handle(), group_id(), incarnation(), [node_id()]) ->
          ok | {error, reason()}.
create_group(Node, GroupId, Incarnation, Members) ->
    result(create_group_nif(Node, GroupId, Incarnation, Members)).

%% @doc Create this node's replica of a group that exists on the other
%% members, after this node lost what it held of it: its `data_dir' was
%% deleted or replaced, so {@link start_node/1} recovered nothing of a
%% group the broker's metadata says this node is a member of (use
%% {@link create_group/4} only for a group new on every member). The
%% replica starts empty; its leader sends it a snapshot (a `restore'
%% message) and the entries after it. It never votes nor campaigns, and
%% counts toward no quorum, for as long as it lives: its group tolerates
%% one failure less until a membership change replaces it.
%% `{error, already_exists}' if the group was recovered.
-spec rejoin_group(node_handle(), group_id(), incarnation(), [node_id()]) ->
          ok | {error, reason()}.
rejoin_group(Node, GroupId, Incarnation, Members) ->
    result(rejoin_group_nif(Node, GroupId, Incarnation, Members)).

%% @doc Create this node's replica of an existing group that it is being
%% added to (with {@link add_member/4} on the group's leader, just before or
%% after): empty, with no members of its own, it never campaigns and waits
%% for the leader to send it the log or a snapshot (a `restore' message);
%% then a `members_changed' message gives the membership it learned.
%% `Incarnation' is the group's, as its members were created with: messages
%% of any other are dropped. With a `data_dir' the replica is durable when
%% this returns. `{error, already_exists}' if the node hosts the group.
-spec join_group(node_handle(), group_id(), incarnation()) -> ok | {error, reason()}.
join_group(Node, GroupId, Incarnation) ->
    result(join_group_nif(Node, GroupId, Incarnation)).

%% @doc Propose, on the group's leader, adding the replica on node
%% `MemberNodeId' (created there with {@link join_group/3}) with `Role', or
%% giving a member that role (`voter' promotes a non-voter). Returns at
%% once: the change is done when a `members_changed' message lists it (on
%% every replica, this one included). A voter counts toward commit as soon
%% as the change is in the leader's log, so add a replica that has to catch
%% up as `promotable': it receives the log (or a snapshot) and its leader
%% makes it a voter once it has caught up. In embedded mode its node must
%% be one of this node's `peers'. One change at a time per group:
%% `{error, busy}' while one is in flight, or while this leader has not
%% committed an entry of its term (retry once `members_changed' reported
%% it, or shortly); `{error, not_leader}' on any other node (or while
%% handing leadership over); `invalid_argument' for member 0, a member
%% that already has that role or a full group; `not_found'; `shutdown'.
%% A `Role' other than the three atoms raises `badarg'.
-spec add_member(node_handle(), group_id(), node_id(), member_role()) ->
          ok | {error, reason()}.
add_member(Node, GroupId, MemberNodeId, Role) ->
    C = case Role of
            voter -> 0;
            nonvoter -> 1;
            promotable -> 2;
            _ -> error(badarg, [Node, GroupId, MemberNodeId, Role])
        end,
    result(add_member_nif(Node, GroupId, MemberNodeId, C)).

%% @doc Propose, on the group's leader, removing the replica on node
%% `MemberNodeId', which may be this node itself: it leads until the
%% removal commits, then hands leadership to the most caught-up voter and
%% steps down (`role' messages name the new leader). Returns at once; done
%% when a `members_changed' message lists the group without it. The
%% removed replica stops taking part once it learns of its removal (its own
%% `members_changed' message); remove it there with {@link remove_group/2}
%% then. Answers as {@link add_member/4}; `{error, invalid_argument}' also
%% for a node that is no member and for the last voter.
-spec remove_member(node_handle(), group_id(), node_id()) -> ok | {error, reason()}.
remove_member(Node, GroupId, MemberNodeId) ->
    result(remove_member_nif(Node, GroupId, MemberNodeId)).

%% @doc The members of a group as this replica sees them (the latest
%% membership in its log, committed or not), voters first; `match_index'
%% only on the leader. `[]' for a replica that joined and has not heard
%% from its leader yet. `{error, not_found}' for a group not hosted here.
%% Answers after {@link stop_node/1} too.
-spec members(node_handle(), group_id()) -> {ok, [member()]} | {error, reason()}.
members(Node, GroupId) ->
    case members_nif(Node, GroupId) of
        L when is_list(L) -> {ok, L};
        Error -> result(Error)
    end.

%% @doc Remove this node's replica of a group. Proposals still waiting are
%% reported as `{proposal, Id, {error, unknown}}' (they may still commit on
%% the other replicas), reads not yet reported as
%% `{read, Id, {error, not_found}}'.
-spec remove_group(node_handle(), group_id()) -> ok | {error, reason()}.
remove_group(Node, GroupId) ->
    result(remove_group_nif(Node, GroupId)).

%% @doc Propose `Data' to a group this node leads. `{ok, ProposalId}': the
%% owner will receive exactly one `{proposal, ProposalId, ...}' message:
%% `ok' with the index once committed (durable on a majority);
%% `{error, not_leader}': failed for certain (another entry took its place,
%% it is never applied); `{error, unknown | shutdown}': the outcome is
%% unknown (leadership lost, group removed, node stopped: it may still have
%% committed on the other replicas). Otherwise `{error,
%% not_leader}' (see {@link group_status/2} for the leader), `busy'
%% (backpressure: nothing proposed, the group or the node is at a limit of
%% {@link start_node/1}, `max_pending_proposals*' or `max_unsynced_bytes*';
%% retry once earlier proposals are decided), `not_found', `too_large' (over
%% `max_proposal_bytes') or `shutdown'.
-spec propose(node_handle(), group_id(), iodata()) ->
          {ok, proposal_id()} | {error, reason()}.
propose(Node, GroupId, Data) ->
    result(propose_nif(Node, GroupId, Data)).

%% @doc Take a linearizable read of a group this node leads, without
%% writing to the log (Raft's read index). `{ok, ReadId}': the owner will
%% receive exactly one `{read, ReadId, ...}' message: `ok' with an index
%% once a quorum confirmed, after the read was taken, that this node still
%% leads, and every `applied' message up to that index was sent before it:
%% serve the read from the state machine then (it reflects every proposal
%% acknowledged before the read was taken); `{error, not_leader}': the node
%% lost the leadership first (take the read again at the new leader);
%% `{error, not_found}': the group was removed; `{error, shutdown}': the
%% node stopped. Otherwise `{error, not_leader}' (see {@link group_status/2}
%% for the leader), `busy' (the group or the node has
%% `max_pending_reads_per_group' or `max_pending_reads' reads not yet
%% reported; nothing taken), `not_found' or `shutdown'. With batched
%% heartbeats the reads of one interval are confirmed by that interval's
%% heartbeat batches.
-spec read_index(node_handle(), group_id()) -> {ok, read_id()} | {error, reason()}.
read_index(Node, GroupId) ->
    result(read_index_nif(Node, GroupId)).

%% @doc Hand leadership of a group this node leads to its replica on node
%% `ToNodeId' (Raft's leadership transfer: the leader catches the target
%% up, then tells it to campaign at once), e.g. to move leaders back onto a
%% node after a restart piled them up on the others. Returns at once: the
%% new leader arrives as `{role, GroupId, _, Term, ToNodeId}' messages on
%% every replica, usually within a few round trips; a transfer the target
%% has not completed within an election timeout is abandoned and this node
%% leads on. Meanwhile {@link propose/3} here answers `{error, not_leader}'
%% (propose at the target). A transfer to this node itself does nothing; a
%% new one replaces one under way. `{error, not_leader}' if this node does
%% not lead the group, `busy' if it is not replicating to the target now
%% (unreachable, being probed or receiving a snapshot: retry later),
%% `invalid_argument' if `ToNodeId' is not a voter of the group,
%% `not_found' or `shutdown'.
-spec transfer_leader(node_handle(), group_id(), ToNodeId :: node_id()) ->
          ok | {error, reason()}.
transfer_leader(Node, GroupId, ToNodeId) ->
    result(transfer_leader_nif(Node, GroupId, ToNodeId)).

%% @doc Tell the node that the owner's state machine of `GroupId', after
%% applying `Index', is `Data' (iodata, copied): a snapshot. `Index' must
%% be one applied (an `applied' message received) and after the group's
%% current snapshot. Returns once the snapshot is durable (with a
%% `data_dir', a file written and synced) and the log compacted up to
%% `Index' minus `snapshot_trailing_entries'; followers behind that point
%% get `Data' in a `restore' message. `{error, invalid_argument}' for an
%% index not applied or not after the current snapshot, `not_found',
%% `too_large' (over `max_snapshot_bytes'), `io' or `shutdown'.
-spec snapshot(node_handle(), group_id(), Index :: non_neg_integer(), iodata()) ->
          ok | {error, reason()}.
snapshot(Node, GroupId, Index, Data) ->
    result(snapshot_nif(Node, GroupId, Index, Data)).

%% @doc This node's view of a group. `leader' is 0 when no leader is known;
%% `commit', `applied' and `last_index' are log indexes; `incarnation' is
%% the one the group was created with; `snapshot_index' is the latest
%% snapshot's (0: none) and `first_index' the first index the log still
%% holds; `log_bytes_memory' and `snapshot_bytes_memory' are the bytes of
%% payload the log and the latest snapshot hold in memory,
%% `log_bytes_disk' and `snapshot_bytes_disk' those on disk (with a
%% `data_dir'); `pending_proposals' and `unsynced_bytes' (on the leader)
%% are the proposals made on this node and not yet decided and the payload
%% bytes not yet durable here; at the group's limits of
%% {@link start_node/1} {@link propose/3} answers `{error, busy}'.
-spec group_status(node_handle(), group_id()) ->
          {ok, #{role := role(), term := non_neg_integer(),
                 leader := non_neg_integer(), commit := non_neg_integer(),
                 applied := non_neg_integer(), last_index := non_neg_integer(),
                 incarnation := incarnation(),
                 snapshot_index := non_neg_integer(),
                 first_index := non_neg_integer(),
                 log_bytes_memory := non_neg_integer(),
                 snapshot_bytes_memory := non_neg_integer(),
                 log_bytes_disk := non_neg_integer(),
                 snapshot_bytes_disk := non_neg_integer(),
                 pending_proposals := non_neg_integer(),
                 unsynced_bytes := non_neg_integer()}}
          | {error, reason()}.
group_status(Node, GroupId) ->
    result(group_status_nif(Node, GroupId)).

%% @doc A group's key metrics, the fields of the C `muxraft_key_metrics':
%% `role', `term', `leader' (0: none known), `commit', `applied',
%% `last_index', `snapshot_index', `log_bytes' (payload bytes of the log in
%% memory), `voters' and `membership_index' (the membership as this replica
%% sees it, and the index of the entry that set it), `quiesced' and
%% `incarnation', as of the group's last pass. Unlike
%% {@link group_status/2} it never waits for the node: it reads atomics the
%% node publishes, without its lock, so it is a plain NIF (no dirty
%% scheduler) that answers at once however busy the node is, also after
%% {@link stop_node/1}. The fields may be from adjacent moments (the
%% commit of one pass beside the applied index of the next).
%% `{error, not_found}' for a group not hosted here.
-spec key_metrics(node_handle(), group_id()) ->
          {ok, #{role := role(), term := non_neg_integer(),
                 leader := non_neg_integer(), commit := non_neg_integer(),
                 applied := non_neg_integer(), last_index := non_neg_integer(),
                 snapshot_index := non_neg_integer(),
                 log_bytes := non_neg_integer(), voters := non_neg_integer(),
                 membership_index := non_neg_integer(), quiesced := boolean(),
                 incarnation := incarnation()}}
          | {error, reason()}.
key_metrics(Node, GroupId) ->
    result(key_metrics_nif(Node, GroupId)).

%% @doc The node's counters since it was created, the fields of the C
%% `muxraft_stats' (see muxraft.h for each):
%% `messages_sent', `bytes_sent', `messages_received', `bytes_received',
%% `heartbeat_batches_sent', `group_heartbeats_batched',
%% `heartbeat_batch_responses_sent', `heartbeats_sent',
%% `heartbeat_messages_sent' (every liveness frame), `heartbeat_bytes_sent',
%% `elections_started', `leader_changes', `frames_rejected',
%% `messages_dropped', `proposals', `proposals_committed',
%% `proposals_failed' (`not_leader' outcomes), `proposals_unknown'
%% (`unknown' and `shutdown' outcomes), `entries_applied', `groups' (hosted
%% now), `incarnation_mismatches' and `batches_dropped_incarnation'
%% (messages of another incarnation of a group dropped), and the embedded
%% transport's `connections_established', `reconnects',
%% `handshakes_refused', `dial_failures', `transport_frames_dropped' and
%% `bytes_queued' (a gauge), which are 0 on a host-driven node; for
%% snapshots `snapshots_taken' (by {@link snapshot/4}),
%% `snapshots_installed' (from a leader), `snapshot_transfers_started' and
%% `snapshot_transfers_failed' (as a leader), `snapshot_crc_failures'; and
%% with a `data_dir', `wal_segments' and `wal_bytes' (now),
%% `wal_segments_deleted', `wal_bytes_rewritten', `snapshot_files' and
%% `snapshot_file_bytes' (now); for backpressure `proposals_refused_busy'
%% (`{error, busy}' from {@link propose/3}) and the gauges
%% `pending_proposals' (proposals in flight over all groups) and
%% `unsynced_bytes' (payload bytes not yet durable here); for quiescence
%% (see `quiesce' in {@link start_node/1}) the gauges `groups_awake'
%% (ticked, sending heartbeat rows) and `groups_quiesced' (quiet), and
%% `quiesced_total' (times a group here went quiet) and the times a quiet
%% group woke, by cause: `wakeups_host' (a call here: a proposal, a
%% campaign), `wakeups_leader_message' (a message from its leader),
%% `wakeups_follower_message' (from another replica), `wakeups_peer_lost'
%% (its leader's node lost or restarted) and `wakeups_peer_returned' (a
%% node with one of its replicas returned); and for node-level liveness
%% `peers' (the nodes hosting replicas of groups hosted here) and
%% `peers_heard' (those heard within an election timeout), gauges, and
%% `peers_lost', `peers_returned' and `peers_restarted' (see
%% {@link node_peers/1}); and for reads ({@link read_index/2}) `reads'
%% (taken), `reads_served' (`ok' outcomes), `reads_failed' (any other),
%% `reads_refused_busy' (`{error, busy}' from `read_index/2'), the gauge
%% `pending_reads' (taken, not yet reported), `read_rounds_sent' (heartbeat
%% rows carrying a read round) and `read_rounds_answered'; `compact_rows_sent'
%% (heartbeat rows sent as the group id alone) and `compact_rows_refused'
%% (compact rows received that this node could not use); and for leader
%% balance the gauge `groups_led' (groups this node leads now) and
%% `transfers_started' (by {@link transfer_leader/3}, and by the leader
%% balancer: `balance_transfers', see `balance_leaders' in
%% {@link start_node/1}); and
%% `peers_refused_auth', handshakes refused for the cluster secret (see
%% `cluster_secret' in {@link start_node/1}), by this node or its peer;
%% `peers_refused_tls', handshakes refused for TLS (see `tls_cert_pem' in
%% {@link start_node/1}), by this node or its peer.
-spec stats(node_handle()) -> #{atom() => non_neg_integer()}.
stats(Node) ->
    case stats_nif(Node) of
        M when is_map(M) -> M;
        Error -> error(result(Error), [Node])
    end.

%% @doc This node's peers, the nodes hosting replicas of its groups, in
%% node id order, each with whether this node hears it (a frame from it
%% within the last election timeout) and its liveness epoch (see
%% the type `peer()').
-spec node_peers(node_handle()) -> [peer()].
node_peers(Node) ->
    case node_peers_nif(Node) of
        L when is_list(L) -> L;
        Error -> error(result(Error), [Node])
    end.

%% @doc The node's counters and gauges in the Prometheus text exposition
%% format (0.0.4), as a broker's `/metrics' handler serves them: names
%% prefixed `muxraft_', counters ending in `_total', a `node' label on every
%% sample; about 15 KB whatever the number of groups, unless
%% `metrics_per_group_max' (see {@link start_node/1}) turns per-group series
%% on. Answers after {@link stop_node/1} too.
-spec metrics_text(node_handle()) -> binary().
metrics_text(Node) ->
    case metrics_text_nif(Node) of
        B when is_binary(B) -> B;
        Error -> error(result(Error), [Node])
    end.

%% @doc The node-level samples of {@link metrics_text/1} (those labelled
%% with the node alone) as a map from the metric's name, as Prometheus
%% names it, to its value: `#{muxraft_groups => 3,
%% muxraft_proposals_total => 10, ...}'. The series with more labels (by
%% kind of frame, wakeup cause, peer, group) are in the text only.
-spec metrics(node_handle()) -> #{atom() => non_neg_integer()}.
metrics(Node) ->
    Text = metrics_text(Node),
    Label = iolist_to_binary(["{node=\"", integer_to_binary(node_id_of(Text)), "\"} "]),
    maps:from_list(
      [{binary_to_atom(Name, utf8), binary_to_integer(Value)}
       || Line <- binary:split(Text, <<"\n">>, [global, trim_all]),
          binary:first(Line) =/= $#,
          [Name, Value] <- [binary:split(Line, Label)]]).

%% The node id the text's samples carry (every sample has the label).
node_id_of(Text) ->
    {match, [Id]} = re:run(Text, <<"\\{node=\"([0-9]+)\"">>,
                           [{capture, all_but_first, binary}]),
    binary_to_integer(Id).

%% @doc Host-driven mode: advance the node's clock by one tick (call it every
%% `tick_ms'). Elections and heartbeats happen here; the resulting
%% `{send, To, Frame, Liveness}' and other messages are sent before it returns.
%% `{error, invalid_argument}' for a started (embedded) node.
-spec tick(node_handle()) -> ok | {error, reason()}.
tick(Node) ->
    result(tick_nif(Node)).

%% @doc Host-driven mode: hand the node a `Frame' that node `From' sent (a
%% `{send, To, Frame, Liveness}' message of node `From', with `To' this node).
%% `{error, malformed}' for bytes that are not a muxraft frame,
%% `{error, invalid_argument}' for a frame of another cluster, for another
%% node, or for a started node.
-spec step(node_handle(), node_id(), binary()) -> ok | {error, reason()}.
step(Node, From, Frame) ->
    result(step_nif(Node, From, Frame)).

%% @doc The library's explanation of the last `{error, _}' returned to the
%% calling process by this module (`<<>>' if none).
-spec last_error() -> binary().
last_error() ->
    case get(?LAST_ERROR) of
        undefined -> <<>>;
        Msg -> Msg
    end.

%% @doc The ABI version and the version of the linked muxraft library.
-spec version() -> {AbiVersion :: pos_integer(), Version :: binary()}.
version() ->
    version_nif().

%% ---------------------------------------------------------------------------
%% Internals

result({error, Reason, Msg}) ->
    put(?LAST_ERROR, Msg),
    {error, Reason};
result(Other) ->
    Other.

opt_int(Key, Opts) ->
    case maps:find(Key, Opts) of
        error -> undefined;
        {ok, V} when is_integer(V), V >= 0, V < 1 bsl 32 -> V;
        {ok, _} -> error(badarg, [Opts])
    end.

opt_bool(Key, Opts) ->
    case maps:get(Key, Opts, undefined) of
        B when is_boolean(B); B =:= undefined -> B;
        _ -> error(badarg, [Opts])
    end.

opt_u64(Key, Opts) ->
    case maps:find(Key, Opts) of
        error -> undefined;
        {ok, V} when is_integer(V), V >= 0, V < 1 bsl 64 -> V;
        {ok, _} -> error(badarg, [Opts])
    end.

opt_string(Key, Opts) ->
    case maps:find(Key, Opts) of
        error -> undefined;
        {ok, V} -> to_bin(V, Opts)
    end.

to_bin(V, _Opts) when is_binary(V) ->
    V;
to_bin(V, Opts) when is_list(V) ->
    case unicode:characters_to_binary(V) of
        B when is_binary(B) -> B;
        _ -> error(badarg, [Opts])
    end;
to_bin(_, Opts) ->
    error(badarg, [Opts]).

filename_bin(V, Opts) when is_binary(V); is_list(V); is_atom(V) ->
    try filename:flatten(V) of
        F -> to_bin(F, Opts)
    catch
        _:_ -> error(badarg, [Opts])
    end;
filename_bin(_, Opts) ->
    error(badarg, [Opts]).

%% ---------------------------------------------------------------------------
%% Log lines

%% @doc Forward muxraft's log lines to OTP's `logger', at `Level' and more
%% severe (`none' stops them): every node of this VM, from then on. Each
%% line is logged at its level (`error', `warning', `info' or `debug') with
%% the message as a string and the metadata
%% `#{domain => [muxraft], muxraft_node => NodeId, muxraft_target =>
%% Target}' plus `muxraft_group => GroupId' when the line is about one
%% group. `info' is what an operator needs: peers connected and lost,
%% elections (a count per second), recovery and torn WAL tails, refused
%% peers and frames, snapshots sent and installed, backpressure.
%%
%% muxraft hands its lines to the NIF on its own log thread, which only
%% sends them to a forwarder process (registered as `muxraft_logger'); that
%% process calls `logger'. Returns once the lines queued before the call
%% were sent to the forwarder.
-spec set_log_level(logger:level() | none) -> ok.
set_log_level(none) ->
    ok = set_log_nif(undefined, 0);
set_log_level(Level) ->
    ok = set_log_nif(log_forwarder(), log_level_number(Level)).

log_level_number(Level) when Level =:= emergency; Level =:= alert;
                             Level =:= critical; Level =:= error -> 1;
log_level_number(warning) -> 2;
log_level_number(Level) when Level =:= notice; Level =:= info -> 3;
log_level_number(debug) -> 5;
log_level_number(Level) -> error(badarg, [Level]).

%% The forwarder: started once, registered, never linked (it outlives the
%% process that set the level).
log_forwarder() ->
    case whereis(muxraft_logger) of
        undefined ->
            Pid = spawn(fun forward_log/0),
            try register(muxraft_logger, Pid) of
                true -> Pid
            catch
                error:badarg -> % started meanwhile by another process
                    exit(Pid, kill),
                    log_forwarder()
            end;
        Pid ->
            Pid
    end.

forward_log() ->
    receive
        {muxraft_log, Level, NodeId, GroupId, Target, Message} ->
            Meta0 = #{domain => [muxraft], muxraft_node => NodeId,
                      muxraft_target => Target},
            Meta = case GroupId of
                       undefined -> Meta0;
                       _ -> Meta0#{muxraft_group => GroupId}
                   end,
            logger:log(Level, "~ts", [Message], Meta),
            forward_log();
        _ ->
            forward_log()
    end.

%% ---------------------------------------------------------------------------
%% NIFs (c_src/muxraft_nif.c)

load_nif() ->
    Dir = case code:priv_dir(muxraft) of
              {error, bad_name} ->
                  filename:join(filename:dirname(filename:dirname(code:which(?MODULE))),
                                "priv");
              D ->
                  D
          end,
    erlang:load_nif(filename:join(Dir, "muxraft_nif"), 0).

start_node_nif(_NodeId, _ClusterId, _Listen, _Peers, _DataDir, _TickMs,
               _HeartbeatTicks, _ElectionTicks, _Batch, _MaxProposalBytes,
               _SnapshotOpts, _BackpressureOpts, _Quiesce, _ReadOpts,
               _Link) ->
    erlang:nif_error(not_loaded).
create_group_nif(_Node, _GroupId, _Incarnation, _Members) -> erlang:nif_error(not_loaded).
rejoin_group_nif(_Node, _GroupId, _Incarnation, _Members) -> erlang:nif_error(not_loaded).
snapshot_nif(_Node, _GroupId, _Index, _Data) -> erlang:nif_error(not_loaded).
remove_group_nif(_Node, _GroupId) -> erlang:nif_error(not_loaded).
propose_nif(_Node, _GroupId, _Data) -> erlang:nif_error(not_loaded).
read_index_nif(_Node, _GroupId) -> erlang:nif_error(not_loaded).
transfer_leader_nif(_Node, _GroupId, _ToNodeId) -> erlang:nif_error(not_loaded).
join_group_nif(_Node, _GroupId, _Incarnation) -> erlang:nif_error(not_loaded).
add_member_nif(_Node, _GroupId, _Member, _Role) -> erlang:nif_error(not_loaded).
remove_member_nif(_Node, _GroupId, _Member) -> erlang:nif_error(not_loaded).
members_nif(_Node, _GroupId) -> erlang:nif_error(not_loaded).
node_peers_nif(_Node) -> erlang:nif_error(not_loaded).
metrics_text_nif(_Node) -> erlang:nif_error(not_loaded).
group_status_nif(_Node, _GroupId) -> erlang:nif_error(not_loaded).
key_metrics_nif(_Node, _GroupId) -> erlang:nif_error(not_loaded).
stats_nif(_Node) -> erlang:nif_error(not_loaded).
stop_node_nif(_Node) -> erlang:nif_error(not_loaded).
tick_nif(_Node) -> erlang:nif_error(not_loaded).
step_nif(_Node, _From, _Frame) -> erlang:nif_error(not_loaded).
version_nif() -> erlang:nif_error(not_loaded).
set_log_nif(_Pid, _Level) -> erlang:nif_error(not_loaded).
