%% EUnit tests of the muxraft binding (run by `rebar3 eunit`, from
%% `make test-erlang` at the repository root).
%%
%% Each node of the cluster tests is owned by its own process (`owner/3'
%% below), which collects the node's messages and tells the test process
%% when something changed; the tests await those notifications instead of
%% sleeping. The one exception is the thread check of the
%% garbage-collection test, which has nothing to await and polls /proc,
%% bounded. The other tests own host-driven nodes in the test process
%% itself: a call's events are in its mailbox when the call returns.
-module(muxraft_tests).

-include_lib("eunit/include/eunit.hrl").

%% The logger handler of log_lines_reach_logger/0.
-export([log/2]).

-define(WAIT_MS, 20000).

%% ---------------------------------------------------------------------------
%% Tests

embedded_cluster_test_() ->
    {timeout, 120, fun embedded_cluster/0}.

host_driven_cluster_test_() ->
    {timeout, 120, fun host_driven_cluster/0}.

stop_with_proposals_in_flight_test_() ->
    {timeout, 120, fun stop_with_proposals_in_flight/0}.

bad_arguments_test_() ->
    {timeout, 60, fun bad_arguments/0}.

calls_after_stop_test_() ->
    {timeout, 60, fun calls_after_stop/0}.

garbage_collected_without_stop_test_() ->
    {timeout, 60, fun garbage_collected_without_stop/0}.

single_node_host_driven_test_() ->
    {timeout, 60, fun single_node_host_driven/0}.

data_dir_recovery_test_() ->
    {timeout, 60, fun data_dir_recovery/0}.

log_lines_reach_logger_test_() ->
    {timeout, 60, fun log_lines_reach_logger/0}.

data_dir_in_use_test_() ->
    {timeout, 60, fun data_dir_in_use/0}.

group_zero_test_() ->
    {timeout, 60, fun group_zero/0}.

key_metrics_test_() ->
    {timeout, 60, fun key_metrics/0}.

liveness_flag_test_() ->
    {timeout, 60, fun liveness_flag/0}.

snapshot_single_node_test_() ->
    {timeout, 60, fun snapshot_single_node/0}.

snapshot_needed_test_() ->
    {timeout, 60, fun snapshot_needed/0}.

restore_after_restart_test_() ->
    {timeout, 60, fun restore_after_restart/0}.

rejoin_after_lost_data_test_() ->
    {timeout, 120, fun rejoin_after_lost_data/0}.

backpressure_test_() ->
    {timeout, 60, fun backpressure/0}.

quiesce_option_test_() ->
    {timeout, 60, fun quiesce_option/0}.

balance_option_test_() ->
    {timeout, 60, fun balance_option/0}.

broadcast_commit_option_test_() ->
    {timeout, 60, fun broadcast_commit_option/0}.

quiesce_idle_groups_test_() ->
    {timeout, 60, fun quiesce_idle_groups/0}.

quiesce_off_test_() ->
    {timeout, 60, fun quiesce_off/0}.

read_index_test_() ->
    {timeout, 60, fun read_index/0}.

read_index_limits_test_() ->
    {timeout, 60, fun read_index_limits/0}.

read_index_pending_fails_test_() ->
    {timeout, 60, fun read_index_pending_fails/0}.

node_peers_test_() ->
    {timeout, 60, fun node_peers/0}.

metrics_test_() ->
    {timeout, 60, fun metrics/0}.

transfer_leader_test_() ->
    {timeout, 60, fun transfer_leader/0}.

transfer_leader_busy_test_() ->
    {timeout, 60, fun transfer_leader_busy/0}.

membership_test_() ->
    {timeout, 60, fun membership/0}.

membership_refusals_test_() ->
    {timeout, 60, fun membership_refusals/0}.

%% Three embedded nodes in this VM on loopback, many groups; every group's
%% proposals are applied in proposal order, identically, on every node.
embedded_cluster() ->
    Groups = lists:seq(1, 50),
    PerGroup = 5,
    %% The leaders found below must stay: no balancer moving them (on a
    %% busy machine a node may lose and hear a peer again, and be handed
    %% its share of leaders while the test reads at the old ones).
    Owners = start_embedded_cluster(101, [1, 2, 3], #{balance_leaders => off}),
    try
        [ok = call(O, fun(N) -> muxraft:create_group(N, G, 1, [1, 2, 3]) end)
         || O <- Owners, G <- Groups],
        Leaders = wait_leaders(Owners, Groups),
        %% Any process may propose in embedded mode: the outcomes go to the
        %% leader's owner.
        Proposed = [{G, K, propose_ok(leader_node(Owners, Leaders, G), G, entry(G, K))}
                    || G <- Groups, K <- lists:seq(1, PerGroup)],
        wait_until(fun() -> all_applied(Owners, Groups, PerGroup) end),
        check_logs(Owners, Groups, PerGroup),
        %% Exactly one outcome per proposal, on the leader's owner, at the
        %% index where the entry was applied.
        [begin
             L = maps:get(G, Leaders),
             Owner = lists:nth(L, Owners),
             [{ok, Index}] = outcomes(Owner, Id),
             {Index, _} = lists:keyfind(entry(G, K), 2, applied(Owner, G))
         end || {G, K, Id} <- Proposed],
        %% A read of every group at its leader, taken by this process: its
        %% outcome goes to the leader's owner, once, with an index at or
        %% past every proposal acknowledged above, after those entries'
        %% `applied' messages.
        Reads = [{G, R} || G <- Groups,
                           {ok, R} <- [muxraft:read_index(leader_node(Owners, Leaders, G), G)]],
        ?assertEqual(length(Groups), length(Reads)),
        [begin
             Owner = lists:nth(maps:get(G, Leaders), Owners),
             wait_until(fun() -> outcomes(Owner, {read, R}) =/= [] end),
             [{ok, I}] = outcomes(Owner, {read, R}),
             ?assert(I >= lists:max([Ix || {G2, _, Id} <- Proposed, G2 =:= G,
                                           [{ok, Ix}] <- [outcomes(Owner, Id)]]))
         end || {G, R} <- Reads],
        [?assertMatch(#{pending_reads := 0}, call(O, fun muxraft:stats/1)) || O <- Owners],
        %% The heartbeats of all groups travel in batches (sent by the nodes
        %% that lead groups, once per heartbeat interval: a counter to poll).
        Stats = fun() -> [call(O, fun muxraft:stats/1) || O <- Owners] end,
        Sum = fun(Key) -> lists:sum([maps:get(Key, S) || S <- Stats()]) end,
        ok = poll(fun() -> Sum(heartbeat_batches_sent) > 0 end, 500, 10),
        ?assert(Sum(group_heartbeats_batched) >= Sum(heartbeat_batches_sent)),
        [?assertEqual(0, maps:get(heartbeats_sent, S)) || S <- Stats()],
        [?assertEqual(length(Groups), maps:get(groups, S)) || S <- Stats()],
        %% The transport's counters: every node connected to its two peers.
        [?assert(maps:get(connections_established, S) >= 2) || S <- Stats()],
        [?assertEqual(0, maps:get(proposals_unknown, S)) || S <- Stats()],
        [?assertMatch({ok, #{incarnation := 1}},
                      call(O, fun(N) -> muxraft:group_status(N, 1) end)) || O <- Owners]
    after
        stop_owners(Owners)
    end.

%% Three host-driven nodes: each owner ticks its node and carries the
%% node's {send, To, Frame} messages to the owner of node To as Erlang
%% messages, which steps them into its node.
host_driven_cluster() ->
    Groups = lists:seq(0, 19), % group 0 is a group like any other
    PerGroup = 5,
    Ids = [1, 2, 3],
    Owners = [start_owner(#{node_id => Id, cluster_id => 202, tick_ms => 10},
                          #{tick_ms => 10})
              || Id <- Ids],
    try
        Peers = maps:from_list(lists:zip(Ids, Owners)),
        [O ! {peers, Peers} || O <- Owners],
        [ok = call(O, fun(N) -> muxraft:create_group(N, G, 1, Ids) end)
         || O <- Owners, G <- Groups],
        Leaders = wait_leaders(Owners, Groups),
        %% Host-driven: callbacks run inside the call, so every call on a
        %% node is made by its owner (events then arrive in order).
        Proposed = [{G, K, call(lists:nth(maps:get(G, Leaders), Owners),
                                fun(N) -> {ok, Id} = muxraft:propose(N, G, entry(G, K)), Id end)}
                    || G <- Groups, K <- lists:seq(1, PerGroup)],
        wait_until(fun() -> all_applied(Owners, Groups, PerGroup) end),
        check_logs(Owners, Groups, PerGroup),
        [begin
             Owner = lists:nth(maps:get(G, Leaders), Owners),
             wait_until(fun() -> outcomes(Owner, Id) =/= [] end),
             [{ok, _}] = outcomes(Owner, Id)
         end || {G, _K, Id} <- Proposed],
        Stats = [call(O, fun muxraft:stats/1) || O <- Owners],
        [?assert(maps:get(messages_sent, S) > 0) || S <- Stats],
        [?assert(maps:get(messages_received, S) > 0) || S <- Stats],
        [?assertEqual(0, maps:get(frames_rejected, S)) || S <- Stats]
    after
        stop_owners(Owners)
    end.

%% A leader stopped while proposals are in flight, some of them proposed
%% concurrently with the stop: every accepted proposal gets exactly one
%% outcome (committed, or {error, shutdown}/not_leader), and none after
%% stop_node/1 returned.
stop_with_proposals_in_flight() ->
    Owners = start_embedded_cluster(303, [1, 2, 3], #{}),
    try
        [ok = call(O, fun(N) -> muxraft:create_group(N, 1, 1, [1, 2, 3]) end) || O <- Owners],
        #{1 := L} = wait_leaders(Owners, [1]),
        LeaderOwner = lists:nth(L, Owners),
        Node = node_of(LeaderOwner),
        Self = self(),
        %% Proposers keep proposing until the node refuses with shutdown.
        Proposers = [spawn_link(fun() -> Self ! {proposed, self(), propose_until_shutdown(Node, P, 0, [])} end)
                     || P <- lists:seq(1, 4)],
        wait_until(fun() -> maps:size(outcomes_all(LeaderOwner)) >= 20 end),
        ok = muxraft:stop_node(Node),
        Ids = lists:append([receive {proposed, P, Ids0} -> Ids0 end || P <- Proposers]),
        ?assert(length(Ids) >= 20),
        %% Every message was sent before stop_node returned; a round trip
        %% to the owner (sent afterwards) makes sure it has them all.
        All = outcomes_all(LeaderOwner),
        [begin
             [Outcome] = maps:get(Id, All, missing),
             ?assert(lists:member(element(1, Outcome), [ok, error])),
             case Outcome of
                 {ok, I} -> ?assert(is_integer(I) andalso I > 0);
                 {error, R} -> ?assert(lists:member(R, [shutdown, not_leader, unknown]))
             end
         end || Id <- Ids],
        ?assertEqual(lists:sort(Ids), lists:sort(maps:keys(All))),
        %% Nothing more comes after stop.
        {error, shutdown} = muxraft:propose(Node, 1, <<"late">>),
        Count = length(maps:keys(outcomes_all(LeaderOwner))),
        ?assertEqual(Count, length(maps:keys(outcomes_all(LeaderOwner))))
    after
        stop_owners(Owners)
    end.

propose_until_shutdown(Node, P, K, Acc) ->
    case muxraft:propose(Node, 1, <<"p", (integer_to_binary(P))/binary, "-",
                                    (integer_to_binary(K))/binary>>) of
        {ok, Id} -> propose_until_shutdown(Node, P, K + 1, [Id | Acc]);
        {error, shutdown} -> Acc;
        {error, not_leader} -> propose_until_shutdown(Node, P, K + 1, Acc)
    end.

%% Wrong types raise badarg; values the library refuses give {error, _};
%% nothing crashes the VM.
bad_arguments() ->
    {ok, H} = muxraft:start_node(#{node_id => 1, cluster_id => 404}),
    ok = muxraft:create_group(H, 1, 1, [1]),
    %% start_node
    ?assertError(badarg, muxraft:start_node(not_a_map)),
    ?assertError(badarg, muxraft:start_node(#{})),
    ?assertError(badarg, muxraft:start_node(#{node_id => -1})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 0})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1 bsl 64})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, cluster_id => -1})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, listen => 42})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, listen => "a\0b"})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, peers => [{2, "x"}]})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, peers => #{-2 => "x"}})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, tick_ms => -5})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, batch_heartbeats => yes})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, no_such_option => 1})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, max_snapshot_bytes => -1})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, snapshot_threshold_entries => 1 bsl 64})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, snapshot_chunk_bytes => 1 bsl 32})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, wal_segment_bytes => x})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, max_pending_proposals_per_group => -1})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, max_pending_proposals => x})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, max_unsynced_bytes_per_group => 1 bsl 64})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, max_unsynced_bytes => 1.0})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, cluster_secret => "a string"})),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, cluster_secret => <<>>})),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, snapshot_chunk_bytes => 0})),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, wal_segment_bytes => 1024})),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, tick_ms => 0})),
    %% a cluster secret under 16 bytes
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, cluster_secret => <<"short">>})),
    ?assertNotEqual(nomatch, binary:match(muxraft:last_error(), <<"cluster_secret">>)),
    %% TLS: a path that is not a file name, one of the three alone, a
    %% missing CA file, then the three test files (tests/certs)
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, tls_ca_pem => 42})),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, tls_cert_pem => cert("node1.crt")})),
    ?assertNotEqual(nomatch, binary:match(muxraft:last_error(), <<"tls_key_pem">>)),
    Tls = #{node_id => 1, tls_cert_pem => cert("node1.crt"),
            tls_key_pem => list_to_binary(cert("node1.key"))},
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(Tls#{tls_ca_pem => cert("no-such-ca.crt")})),
    ?assertNotEqual(nomatch, binary:match(muxraft:last_error(), <<"no-such-ca.crt">>)),
    ?assert(filelib:is_file(cert("ca.crt"))),
    {ok, TlsNode} = muxraft:start_node(Tls#{tls_ca_pem => cert("ca.crt")}),
    ?assertMatch(#{peers_refused_tls := 0}, muxraft:stats(TlsNode)),
    ok = muxraft:stop_node(TlsNode),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, heartbeat_ticks => 5, election_ticks => 5})),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, max_proposal_bytes => 64 * 1024 * 1024})),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, listen => "not an address"})),
    ?assertNotEqual(<<>>, muxraft:last_error()),
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, listen => "127.0.0.1:1",
                                      peers => #{1 => "127.0.0.1:2"}})),
    ?assertEqual({error, io},
                 muxraft:start_node(#{node_id => 1, data_dir => "/proc/muxraft-cannot-be-here"})),
    %% the port is taken
    {ok, Sock} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(Sock),
    ?assertEqual({error, io},
                 muxraft:start_node(#{node_id => 1, listen => "127.0.0.1:" ++ integer_to_list(Port)})),
    gen_tcp:close(Sock),
    %% not a node
    [?assertError(badarg, F(Bad))
     || Bad <- [make_ref(), self(), 1, <<"node">>, {node}],
        F <- [fun(B) -> muxraft:propose(B, 1, <<"x">>) end,
              fun(B) -> muxraft:create_group(B, 1, 1, [1]) end,
              fun(B) -> muxraft:remove_group(B, 1) end,
              fun(B) -> muxraft:group_status(B, 1) end,
              fun(B) -> muxraft:stats(B) end,
              fun(B) -> muxraft:tick(B) end,
              fun(B) -> muxraft:step(B, 2, <<"x">>) end,
              fun(B) -> muxraft:snapshot(B, 1, 1, <<"x">>) end,
              fun(B) -> muxraft:rejoin_group(B, 1, 1, [1]) end,
              fun(B) -> muxraft:read_index(B, 1) end,
              fun(B) -> muxraft:node_peers(B) end,
              fun(B) -> muxraft:metrics(B) end,
              fun(B) -> muxraft:metrics_text(B) end,
              fun(B) -> muxraft:stop_node(B) end]],
    %% ids
    ?assertError(badarg, muxraft:create_group(H, -1, 1, [1])),
    ?assertError(badarg, muxraft:create_group(H, 2, 1, [1, -2])),
    ?assertError(badarg, muxraft:create_group(H, 2, 1, not_a_list)),
    ?assertError(badarg, muxraft:create_group(H, 2, 1, [1 | 2])),
    ?assertError(badarg, muxraft:create_group(H, 1 bsl 64, 1, [1])),
    ?assertError(badarg, muxraft:create_group(H, 2, -1, [1])),
    ?assertEqual({error, invalid_argument}, muxraft:create_group(H, 2, 1, [])),
    ?assertEqual({error, invalid_argument}, muxraft:create_group(H, 2, 1, [0])),
    ?assertEqual({error, invalid_argument}, muxraft:create_group(H, 2, 1, [2, 3])),
    ?assertEqual({error, invalid_argument}, muxraft:create_group(H, 2, 1, [1, 1])),
    ?assertEqual({error, invalid_argument}, muxraft:create_group(H, 2, 1, lists:seq(1, 8))),
    ?assertEqual({error, invalid_argument}, muxraft:create_group(H, 2, 1, lists:seq(1, 1000))),
    ?assertEqual({error, already_exists}, muxraft:create_group(H, 1, 1, [1])),
    ?assertError(badarg, muxraft:propose(H, -1, <<"x">>)),
    ?assertError(badarg, muxraft:propose(H, 1, not_binary)),
    ?assertError(badarg, muxraft:propose(H, 1, [1, 2, 256])),
    ?assertEqual({error, not_found}, muxraft:propose(H, 999, <<"x">>)),
    ?assertEqual({error, not_found}, muxraft:group_status(H, 999)),
    ?assertEqual({error, not_found}, muxraft:remove_group(H, 999)),
    ?assertError(badarg, muxraft:group_status(H, -1)),
    %% not the leader yet (no tick happened), then too large
    ?assertEqual({error, not_leader}, muxraft:propose(H, 1, <<"x">>)),
    lead(H, 1),
    Huge = binary:copy(<<0>>, 2 * 1024 * 1024),
    ?assertEqual({error, too_large}, muxraft:propose(H, 1, Huge)),
    ?assertMatch(<<_, _/binary>>, muxraft:last_error()),
    ?assertEqual({error, too_large}, muxraft:propose(H, 1, [Huge, Huge])),
    {ok, _} = muxraft:propose(H, 1, [<<"io">>, $l, "ist"]),
    %% frames
    ?assertError(badarg, muxraft:step(H, 2, not_binary)),
    ?assertError(badarg, muxraft:step(H, -2, <<"x">>)),
    ?assertEqual({error, invalid_argument}, muxraft:step(H, 0, <<"x">>)),
    ?assertEqual({error, malformed}, muxraft:step(H, 2, <<>>)),
    ?assertEqual({error, malformed}, muxraft:step(H, 2, <<"garbage">>)),
    [?assertMatch({error, _}, muxraft:step(H, 2, crypto_free_random(N)))
     || N <- [1, 4, 5, 16, 100, 1000, 70000]],
    ?assertMatch({error, _}, muxraft:step(H, 2, <<0, 0, 0, 16, 0:128>>)),
    ?assertMatch({error, _}, muxraft:step(H, 2, <<255, 255, 255, 255, 1, 2, 3>>)),
    #{frames_rejected := Rejected} = muxraft:stats(H),
    ?assert(Rejected > 0),
    %% the node still works
    {ok, #{role := leader}} = muxraft:group_status(H, 1),
    {ok, P} = muxraft:propose(H, 1, <<"still fine">>),
    receive {muxraft, H, {proposal, P, ok, _}} -> ok after ?WAIT_MS -> error(no_outcome) end,
    %% embedded-only / host-driven-only calls on the wrong kind of node
    [Port2] = free_ports(1),
    {ok, E} = muxraft:start_node(#{node_id => 5, cluster_id => 404,
                                   listen => "127.0.0.1:" ++ integer_to_list(Port2)}),
    ?assertEqual({error, invalid_argument}, muxraft:tick(E)),
    ?assertEqual({error, invalid_argument}, muxraft:step(E, 2, <<"x">>)),
    ok = muxraft:stop_node(E),
    ok = muxraft:stop_node(H),
    flush().

%% After stop_node/1: mutating calls answer {error, shutdown}, status and
%% stats still answer, stop_node/1 is idempotent. Both modes.
calls_after_stop() ->
    [Port] = free_ports(1),
    {ok, E} = muxraft:start_node(#{node_id => 1, cluster_id => 505,
                                   listen => "127.0.0.1:" ++ integer_to_list(Port)}),
    {ok, H} = muxraft:start_node(#{node_id => 1, cluster_id => 505}),
    [ok = muxraft:create_group(N, 1, 1, [1]) || N <- [E, H]],
    lead(H, 1),
    receive {muxraft, E, {role, 1, leader, _, 1}} -> ok after ?WAIT_MS -> error(no_leader) end,
    [begin
         ok = muxraft:stop_node(N),
         ok = muxraft:stop_node(N),
         ?assertEqual({error, shutdown}, muxraft:propose(N, 1, <<"x">>)),
         ?assertEqual({error, shutdown}, muxraft:read_index(N, 1)),
         ?assertEqual({error, shutdown}, muxraft:create_group(N, 2, 1, [1])),
         ?assertEqual({error, shutdown}, muxraft:remove_group(N, 1)),
         ?assertEqual({error, shutdown}, muxraft:tick(N)),
         ?assertEqual({error, shutdown}, muxraft:step(N, 2, <<"x">>)),
         ?assertMatch({ok, #{role := leader}}, muxraft:group_status(N, 1)),
         ?assertMatch(#{groups := 1}, muxraft:stats(N))
     end || N <- [E, H]],
    %% The port is free again: the transport is gone.
    {ok, E2} = muxraft:start_node(#{node_id => 1, cluster_id => 505,
                                    listen => "127.0.0.1:" ++ integer_to_list(Port)}),
    ok = muxraft:stop_node(E2),
    flush().

%% A process starts an embedded node and exits without stop_node/1: the
%% node's threads end and the resource is freed; a host-driven node that is
%% dropped is freed too.
garbage_collected_without_stop() ->
    Id = 77,
    Names = [<<"muxraft-node-77">>, <<"muxraft-tx-77">>],
    ?assertEqual([], threads_named(Names)),
    [Port] = free_ports(1),
    Self = self(),
    {Pid, Ref} = spawn_monitor(
                   fun() ->
                           {ok, N} = muxraft:start_node(
                                       #{node_id => Id, cluster_id => 606,
                                         listen => "127.0.0.1:" ++ integer_to_list(Port),
                                         peers => #{78 => "127.0.0.1:1"}}),
                           ok = muxraft:create_group(N, 1, 1, [Id, 78]),
                           {ok, H} = muxraft:start_node(#{node_id => Id}),
                           ok = muxraft:create_group(H, 1, 1, [Id]),
                           Self ! {started, self()},
                           receive exit -> ok end
                   end),
    receive {started, Pid} -> ok after ?WAIT_MS -> error(not_started) end,
    %% The check sees the threads while the node runs (a thread names
    %% itself once it runs, so this too may take a moment)...
    ok = poll(fun() -> lists:sort(threads_named(Names)) =:= lists:sort(Names) end, 200, 10),
    Pid ! exit,
    receive {'DOWN', Ref, process, Pid, normal} -> ok end,
    [erlang:garbage_collect(P) || P <- processes()],
    %% ...and they are gone once the owner exited.
    ok = poll(fun() -> threads_named(Names) =:= [] end, 200, 50),
    %% The port is free again.
    {ok, S} = gen_tcp:listen(Port, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    gen_tcp:close(S).

%% One node, one single-member group, driven by this process: the smallest
%% complete host-driven program (the README's example does the same).
single_node_host_driven() ->
    {ok, N} = muxraft:start_node(#{node_id => 1}),
    ok = muxraft:create_group(N, 1, 1, [1]),
    lead(N, 1),
    {ok, P1} = muxraft:propose(N, 1, <<"hello">>),
    {ok, P2} = muxraft:propose(N, 1, <<"world">>),
    %% A single-member group commits inside the call.
    I1 = receive {muxraft, N, {applied, 1, A1, <<"hello">>}} -> A1 after 0 -> error(not_applied) end,
    receive {muxraft, N, {proposal, P1, ok, I1}} -> ok after 0 -> error(no_outcome) end,
    I2 = receive {muxraft, N, {applied, 1, A2, <<"world">>}} -> A2 after 0 -> error(not_applied) end,
    receive {muxraft, N, {proposal, P2, ok, I2}} -> ok after 0 -> error(no_outcome) end,
    ?assert(I2 > I1),
    {ok, #{role := leader, leader := 1, term := T, commit := C, applied := C}} =
        muxraft:group_status(N, 1),
    ?assert(T >= 1),
    ?assertEqual(I2, C),
    ok = muxraft:remove_group(N, 1),
    ?assertEqual({error, not_found}, muxraft:group_status(N, 1)),
    {Abi, Vsn} = muxraft:version(),
    ?assert(is_integer(Abi) andalso is_binary(Vsn)),
    ok = muxraft:stop_node(N),
    flush().

%% With a data_dir, a node started again on the same directory (here while
%% the stopped one is not yet garbage collected) recovers its groups and
%% delivers their committed entries again from the start.
data_dir_recovery() ->
    Dir = filename:join(temp_dir(), "muxraft-eunit-" ++ os:getpid() ++ "-"
                        ++ integer_to_list(erlang:unique_integer([positive]))),
    try
        {ok, N1} = muxraft:start_node(#{node_id => 1, data_dir => Dir}),
        ok = muxraft:create_group(N1, 1, 1, [1]),
        lead(N1, 1),
        Entries = [<<"a">>, <<"b">>, <<"c">>],
        [{ok, _} = muxraft:propose(N1, 1, E) || E <- Entries],
        Applied1 = [receive {muxraft, N1, {applied, 1, I, E}} -> {I, E} after ?WAIT_MS -> error(E) end
                    || E <- Entries],
        ok = muxraft:stop_node(N1),
        {ok, N2} = muxraft:start_node(#{node_id => 1, data_dir => list_to_binary(Dir)}),
        ?assertEqual({error, already_exists}, muxraft:create_group(N2, 1, 1, [1])),
        lead(N2, 1),
        Applied2 = [receive {muxraft, N2, {applied, 1, I, E}} -> {I, E} after ?WAIT_MS -> error(E) end
                    || E <- Entries],
        ?assertEqual(Applied1, Applied2),
        ok = muxraft:stop_node(N2)
    after
        flush(),
        rm_rf(Dir)
    end.

%% muxraft's log lines reach OTP's logger, with the node (and group) as
%% metadata: a torn WAL tail truncated when a node reopens its data_dir,
%% and a peer of another cluster refused. A logger handler (this module's
%% log/2) sends the test process every event of the muxraft domain.
log_lines_reach_logger() ->
    Dir = unique_dir(),
    ok = logger:add_handler(muxraft_eunit_capture, ?MODULE,
                            #{level => all, config => #{test => self()},
                              filters => [{muxraft, {fun logger_filters:domain/2,
                                                     {log, sub, [muxraft]}}}],
                              filter_default => stop}),
    ok = muxraft:set_log_level(info),
    try
        {ok, N1} = muxraft:start_node(#{node_id => 1, data_dir => Dir}),
        ok = muxraft:create_group(N1, 3, 1, [1]),
        lead(N1, 3),
        [{ok, _} = muxraft:propose(N1, 3, E) || E <- [<<"a">>, <<"b">>]],
        ok = muxraft:stop_node(N1),
        %% Garbage after the last commit, as a torn write leaves it.
        [Seg | _] = lists:reverse(lists:sort(filelib:wildcard(filename:join(Dir, "*.wal")))),
        ok = file:write_file(Seg, binary:copy(<<16#A5>>, 11), [append]),
        {ok, N2} = muxraft:start_node(#{node_id => 1, data_dir => Dir}),
        Torn = await_log(warning, "truncating a torn tail"),
        ?assertMatch(#{muxraft_node := 1, muxraft_target := <<"muxraft::", _/binary>>,
                       domain := [muxraft]}, Torn),
        ?assertNotEqual(nomatch, string:find(maps:get(text, Torn), "bytes=11")),
        ok = muxraft:stop_node(N2),
        %% Node 1 dials node 2, of another cluster: refused.
        [P1, P2] = free_ports(2),
        Addr = fun(P) -> "127.0.0.1:" ++ integer_to_list(P) end,
        {ok, A} = muxraft:start_node(#{node_id => 1, cluster_id => 10, listen => Addr(P1),
                                       peers => #{2 => Addr(P2)}}),
        {ok, B} = muxraft:start_node(#{node_id => 2, cluster_id => 11, listen => Addr(P2),
                                       peers => #{1 => Addr(P1)}}),
        Refused = await_log(warning, "another cluster"),
        ?assertMatch(#{muxraft_node := _}, Refused),
        ok = muxraft:stop_node(A),
        ok = muxraft:stop_node(B),
        %% none: nothing more arrives (what was sent before is discarded
        %% first: the forwarder may still be handing it to logger).
        ok = muxraft:set_log_level(none),
        discard_logs(),
        {ok, N3} = muxraft:start_node(#{node_id => 1, data_dir => Dir}),
        ok = muxraft:stop_node(N3),
        drain_logs(),
        ?assertError(badarg, muxraft:set_log_level(loud))
    after
        muxraft:set_log_level(none),
        logger:remove_handler(muxraft_eunit_capture),
        flush(),
        rm_rf(Dir)
    end.

%% logger handler callback: the event, its text formatted, to the test.
log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{test := Test}}) ->
    Text = case Msg of
               {Format, Args} when is_list(Format) -> lists:flatten(io_lib:format(Format, Args));
               {string, S} -> unicode:characters_to_list(S);
               {report, R} -> lists:flatten(io_lib:format("~p", [R]))
           end,
    Test ! {muxraft_logged, Level, Meta#{text => Text}},
    ok.

await_log(Level, Needle) ->
    receive
        {muxraft_logged, Level, #{text := Text} = Meta} ->
            case string:find(Text, Needle) of
                nomatch -> await_log(Level, Needle);
                _ -> Meta
            end
    after ?WAIT_MS ->
        error({no_log_line, Level, Needle})
    end.

discard_logs() ->
    receive
        {muxraft_logged, _, _} -> discard_logs()
    after 200 ->
        ok
    end.

drain_logs() ->
    receive
        {muxraft_logged, Level, #{text := Text}} -> error({logged_after_none, Level, Text})
    after 200 ->
        ok
    end.

%% One node per data_dir: a second start_node/1 on a directory in use
%% answers {error, busy} (the message names the holder); once the first is
%% stopped, even before it is garbage collected, the directory is free.
data_dir_in_use() ->
    Dir = unique_dir(),
    try
        {ok, N1} = muxraft:start_node(#{node_id => 1, data_dir => Dir}),
        ?assertEqual({error, busy}, muxraft:start_node(#{node_id => 1, data_dir => Dir})),
        Msg = unicode:characters_to_list(muxraft:last_error()),
        ?assertNotEqual(nomatch, string:find(Msg, "in use")),
        ok = muxraft:stop_node(N1),
        {ok, N2} = muxraft:start_node(#{node_id => 1, data_dir => Dir}),
        ok = muxraft:stop_node(N2)
    after
        flush(),
        rm_rf(Dir)
    end.

%% key_metrics/2 on a host-driven node: the group's numbers as
%% group_status/2 has them once a pass ended, a follower before it leads,
%% not_found for a group not hosted (or removed), badarg for a bad id, and
%% still answering after stop.
key_metrics() ->
    {ok, N} = muxraft:start_node(#{node_id => 1}),
    ok = muxraft:create_group(N, 3, 9, [1]),
    ?assertMatch({ok, #{role := follower, leader := 0, incarnation := 9, voters := 1,
                        quiesced := false, last_index := 0}},
                 muxraft:key_metrics(N, 3)),
    lead(N, 3),
    {ok, _} = muxraft:propose(N, 3, <<"four">>),
    I = receive {muxraft, N, {applied, 3, A, <<"four">>}} -> A after ?WAIT_MS -> error(not_applied) end,
    {ok, #{term := T, commit := C, applied := Ap, last_index := L, snapshot_index := S}} =
        muxraft:group_status(N, 3),
    ?assertEqual({ok, #{role => leader, term => T, leader => 1, commit => C, applied => Ap,
                        last_index => L, snapshot_index => S, log_bytes => 4, voters => 1,
                        membership_index => 0, quiesced => false, incarnation => 9}},
                 muxraft:key_metrics(N, 3)),
    ?assertEqual(I, Ap),
    ?assertEqual({error, not_found}, muxraft:key_metrics(N, 4)),
    ?assertError(badarg, muxraft:key_metrics(N, -1)),
    ?assertError(badarg, muxraft:key_metrics(not_a_node, 3)),
    ok = muxraft:stop_node(N),
    ?assertMatch({ok, #{applied := Ap}}, muxraft:key_metrics(N, 3)),
    flush().

%% Group id 0 is a group id like any other (as is 2^64-1): created,
%% proposed to, applied, removed, created again.
group_zero() ->
    {ok, N} = muxraft:start_node(#{node_id => 1}),
    Max = 1 bsl 64 - 1,
    ok = muxraft:create_group(N, 0, 5, [1]),
    ok = muxraft:create_group(N, 1, 1, [1]),
    ok = muxraft:create_group(N, Max, 1, [1]),
    ?assertEqual({error, already_exists}, muxraft:create_group(N, 0, 5, [1])),
    ?assertMatch({ok, #{role := follower, incarnation := 5}}, muxraft:group_status(N, 0)),
    ?assertEqual({error, not_leader}, muxraft:propose(N, 0, <<"early">>)),
    lead(N, 0),
    lead(N, 1),
    lead(N, Max),
    {ok, P} = muxraft:propose(N, 0, <<"zero">>),
    {ok, PMax} = muxraft:propose(N, Max, <<"max">>),
    I = receive {muxraft, N, {applied, 0, A, <<"zero">>}} -> A after ?WAIT_MS -> error(not_applied) end,
    receive {muxraft, N, {proposal, P, ok, I}} -> ok after ?WAIT_MS -> error(no_outcome) end,
    receive {muxraft, N, {applied, Max, _, <<"max">>}} -> ok after ?WAIT_MS -> error(not_applied) end,
    receive {muxraft, N, {proposal, PMax, ok, _}} -> ok after ?WAIT_MS -> error(no_outcome) end,
    %% Nothing of group 0 reached group 1.
    receive {muxraft, N, {applied, 1, _, _} = E} -> error({unexpected, E}) after 0 -> ok end,
    {ok, #{role := leader, leader := 1, commit := C, applied := C}} = muxraft:group_status(N, 0),
    ?assertEqual(I, C),
    ?assertMatch(#{groups := 3}, muxraft:stats(N)),
    ok = muxraft:remove_group(N, 0),
    ?assertEqual({error, not_found}, muxraft:group_status(N, 0)),
    ?assertEqual({error, not_found}, muxraft:propose(N, 0, <<"gone">>)),
    ?assertEqual({error, not_found}, muxraft:remove_group(N, 0)),
    ok = muxraft:remove_group(N, Max),
    ?assertMatch(#{groups := 1}, muxraft:stats(N)),
    %% Created again, as a new incarnation.
    ok = muxraft:create_group(N, 0, 6, [1]),
    ?assertMatch({ok, #{incarnation := 6}}, muxraft:group_status(N, 0)),
    lead(N, 0),
    {ok, _} = muxraft:propose(N, 0, <<"again">>),
    receive {muxraft, N, {applied, 0, _, <<"again">>}} -> ok after ?WAIT_MS -> error(not_applied) end,
    ok = muxraft:stop_node(N),
    flush().

%% Three host-driven nodes owned by this process, which carries their
%% frames itself: the Liveness flag of {send, To, Frame, Liveness} marks
%% exactly the frames the heartbeat counters count, an idle cluster sends
%% nothing else, and group 0 replicates like any group.
liveness_flag() ->
    Ids = [1, 2, 3],
    Nodes = maps:from_list([begin
                                {ok, N} = muxraft:start_node(#{node_id => Id, cluster_id => 808}),
                                {Id, N}
                            end || Id <- Ids]),
    IdOf = maps:from_list([{N, Id} || {Id, N} <- maps:to_list(Nodes)]),
    Groups = [0, 1, 2],
    [ok = muxraft:create_group(N, G, 1, Ids) || N <- maps:values(Nodes), G <- Groups],
    S0 = hd_ticks(Nodes, IdOf, #{}, 100),
    Leaders = [{G, hd_leader(Nodes, G)} || G <- Groups],
    [?assertNotEqual(none, L) || {_, L} <- Leaders],
    [{ok, _} = muxraft:propose(maps:get(L, Nodes), G, <<"g", (integer_to_binary(G))/binary>>)
     || {G, L} <- Leaders],
    S1 = hd_ticks(Nodes, IdOf, S0, 40),
    %% Every node applied every group's entry; group 0's is its own.
    [?assertEqual([<<"g", (integer_to_binary(G))/binary>>],
                  [D || {_, D} <- maps:get({applied, Id, G}, S1, [])])
     || Id <- Ids, G <- Groups],
    Check = fun(S) ->
                    [begin
                         #{heartbeat_messages_sent := Hb, messages_sent := All} =
                             muxraft:stats(maps:get(Id, Nodes)),
                         ?assertEqual(Hb, maps:get({liveness, Id}, S, 0)),
                         ?assertEqual(All - Hb, maps:get({bulk, Id}, S, 0))
                     end || Id <- Ids]
            end,
    Check(S1),
    [?assert(maps:get({bulk, Id}, S1, 0) > 0) || Id <- Ids],
    %% Idle: liveness frames only.
    S2 = hd_ticks(Nodes, IdOf, S1, 40),
    Check(S2),
    [?assertEqual(maps:get({bulk, Id}, S1), maps:get({bulk, Id}, S2)) || Id <- Ids],
    [?assert(maps:get({liveness, Id}, S2) > maps:get({liveness, Id}, S1)) || Id <- Ids],
    %% A proposal still in flight when its group is removed: its outcome is
    %% unknown (it may have committed on the other replicas).
    {2, L2} = lists:keyfind(2, 1, Leaders),
    LN = maps:get(L2, Nodes),
    {ok, P2} = muxraft:propose(LN, 2, <<"in flight">>),
    ok = muxraft:remove_group(LN, 2),
    receive {muxraft, LN, {proposal, P2, Outcome}} -> ?assertEqual({error, unknown}, Outcome)
    after ?WAIT_MS -> error(no_outcome)
    end,
    ?assertMatch(#{proposals_unknown := 1, groups := 2}, muxraft:stats(LN)),
    [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)],
    flush().

%% A snapshot on one host-driven node: its effect on group_status and the
%% counters, every refusal, and the calls after stop.
snapshot_single_node() ->
    {ok, N} = muxraft:start_node(#{node_id => 1, snapshot_trailing_entries => 1,
                                   max_snapshot_bytes => 64}),
    ok = muxraft:create_group(N, 1, 1, [1]),
    lead(N, 1),
    ?assertMatch({ok, #{snapshot_index := 0, first_index := 1, snapshot_bytes_memory := 0,
                        log_bytes_disk := 0, snapshot_bytes_disk := 0}},
                 muxraft:group_status(N, 1)),
    Entries = [<<"e", (integer_to_binary(K))/binary>> || K <- lists:seq(1, 5)],
    [{ok, _} = muxraft:propose(N, 1, E) || E <- Entries],
    Applied = [receive {muxraft, N, {applied, 1, I, E}} -> I after 0 -> error({not_applied, E}) end
               || E <- Entries],
    Last = lists:last(Applied),
    {ok, #{applied := Last, log_bytes_memory := Before}} = muxraft:group_status(N, 1),
    %% Refused, changing nothing.
    ?assertEqual({error, not_found}, muxraft:snapshot(N, 9, Last, <<"s">>)),
    ?assertEqual({error, invalid_argument}, muxraft:snapshot(N, 1, Last + 1, <<"s">>)),
    ?assertEqual({error, invalid_argument}, muxraft:snapshot(N, 1, 0, <<"s">>)),
    ?assertEqual({error, too_large}, muxraft:snapshot(N, 1, Last, binary:copy(<<"x">>, 65))),
    ?assertNotEqual(nomatch, binary:match(muxraft:last_error(), <<"max_snapshot_bytes">>)),
    ?assertError(badarg, muxraft:snapshot(N, 1, -1, <<"s">>)),
    ?assertError(badarg, muxraft:snapshot(N, -1, Last, <<"s">>)),
    ?assertError(badarg, muxraft:snapshot(N, 1, Last, not_iodata)),
    ?assertError(badarg, muxraft:snapshot(N, 1, Last, [1, 256])),
    ?assertMatch({ok, #{snapshot_index := 0}}, muxraft:group_status(N, 1)),
    ?assertMatch(#{snapshots_taken := 0}, muxraft:stats(N)),
    %% At the size limit, as iodata, one entry before the last.
    ok = muxraft:snapshot(N, 1, Last - 1, [binary:copy(<<"x">>, 60), "abcd"]),
    {ok, #{snapshot_index := SI, first_index := FI, snapshot_bytes_memory := 64,
           log_bytes_memory := After, last_index := Last}} = muxraft:group_status(N, 1),
    ?assertEqual({Last - 1, Last - 1}, {SI, FI}), % one trailing entry kept
    ?assert(After < Before),
    ?assertEqual({error, invalid_argument}, muxraft:snapshot(N, 1, Last - 1, <<"s">>)),
    ?assertEqual({error, invalid_argument}, muxraft:snapshot(N, 1, Last - 2, <<"s">>)),
    ok = muxraft:snapshot(N, 1, Last, <<>>),
    ?assertMatch({ok, #{snapshot_index := Last, snapshot_bytes_memory := 0}},
                 muxraft:group_status(N, 1)),
    ?assertMatch(#{snapshots_taken := 2, snapshots_installed := 0, wal_segments := 0,
                   snapshot_files := 0}, muxraft:stats(N)),
    %% The host's own snapshots restore nothing; the group goes on.
    receive {muxraft, N, {restore, _, _, _} = R} -> error({unexpected, R}) after 0 -> ok end,
    {ok, _} = muxraft:propose(N, 1, <<"after">>),
    receive {muxraft, N, {applied, 1, IA, <<"after">>}} -> ?assert(IA > Last)
    after 0 -> error(not_applied)
    end,
    %% Rejoin refused.
    ?assertEqual({error, already_exists}, muxraft:rejoin_group(N, 1, 1, [1])),
    ?assertEqual({error, invalid_argument}, muxraft:rejoin_group(N, 2, 1, [2, 3])),
    ?assertEqual({error, invalid_argument}, muxraft:rejoin_group(N, 2, 1, [])),
    ?assertError(badarg, muxraft:rejoin_group(N, 2, 1, not_a_list)),
    ?assertError(badarg, muxraft:rejoin_group(N, 2, -1, [1])),
    %% After stop.
    ok = muxraft:stop_node(N),
    ?assertEqual({error, shutdown}, muxraft:snapshot(N, 1, Last + 1, <<"s">>)),
    ?assertEqual({error, shutdown}, muxraft:rejoin_group(N, 2, 1, [1])),
    ?assertMatch({ok, #{snapshot_index := Last}}, muxraft:group_status(N, 1)),
    flush().

%% snapshot_needed: once the log since the last snapshot holds the
%% threshold's entries, naming the last index applied; not again until a
%% snapshot is taken.
snapshot_needed() ->
    {ok, N} = muxraft:start_node(#{node_id => 1, snapshot_threshold_entries => 4,
                                   snapshot_threshold_bytes => 0}),
    ok = muxraft:create_group(N, 1, 1, [1]),
    lead(N, 1),
    {I1, Hint1} = propose_until_hint(N, 0),
    ?assertMatch({snapshot_needed, 1, I1, I1, _}, Hint1), % entries: all, no snapshot yet
    ?assertEqual({ok, I1}, applied_index(N)),
    %% Not again until a snapshot is taken...
    [{ok, _} = muxraft:propose(N, 1, <<"e">>) || _ <- lists:seq(1, 6)],
    receive {muxraft, N, {snapshot_needed, _, _, _, _} = H} -> error({unexpected, H}) after 0 -> ok end,
    {ok, Snap} = applied_index(N),
    ok = muxraft:snapshot(N, 1, Snap, <<"s">>),
    flush(),
    %% ...then after 4 more entries.
    {I2, Hint2} = propose_until_hint(N, Snap),
    ?assertEqual(Snap + 4, I2),
    ?assertMatch({snapshot_needed, 1, I2, 4, _}, Hint2),
    ok = muxraft:stop_node(N),
    flush().

%% Propose one entry at a time until a snapshot_needed message comes, which
%% must be with the entry that brings the log since Snap to 4 entries.
propose_until_hint(N, Snap) ->
    {ok, _} = muxraft:propose(N, 1, <<"e">>),
    I = receive {muxraft, N, {applied, 1, A, <<"e">>}} -> A after 0 -> error(not_applied) end,
    receive
        {muxraft, N, {snapshot_needed, _, _, _, _} = Hint} ->
            ?assert(I - Snap >= 4),
            {I, Hint}
    after 0 ->
            ?assert(I - Snap < 4),
            propose_until_hint(N, Snap)
    end.

applied_index(N) ->
    case muxraft:group_status(N, 1) of
        {ok, #{applied := A}} -> {ok, A};
        Error -> Error
    end.

%% A node started again on its data_dir sends the restore message of a
%% group with a snapshot before start_node/1 returns and before any applied
%% message of a later index; applied resumes after the snapshot.
restore_after_restart() ->
    Dir = unique_dir(),
    try
        Opts = #{node_id => 1, data_dir => Dir, snapshot_trailing_entries => 0},
        {ok, N1} = muxraft:start_node(Opts),
        ok = muxraft:create_group(N1, 1, 1, [1]),
        ok = muxraft:create_group(N1, 2, 1, [1]),
        lead(N1, 1),
        lead(N1, 2),
        Applied = [begin
                       {ok, _} = muxraft:propose(N1, 1, E),
                       receive {muxraft, N1, {applied, 1, I, E}} -> I after ?WAIT_MS -> error(E) end
                   end || E <- [<<"a">>, <<"b">>]],
        Snap = lists:last(Applied),
        ok = muxraft:snapshot(N1, 1, Snap, <<"a+b">>),
        {ok, #{snapshot_bytes_disk := OnDisk}} = muxraft:group_status(N1, 1),
        ?assert(OnDisk > 0),
        ?assertMatch(#{snapshot_files := 1}, muxraft:stats(N1)),
        {ok, _} = muxraft:propose(N1, 1, <<"c">>),
        IC = receive {muxraft, N1, {applied, 1, C, <<"c">>}} -> C after ?WAIT_MS -> error(c) end,
        {ok, _} = muxraft:propose(N1, 2, <<"x">>),
        ok = muxraft:stop_node(N1),
        flush(),
        {ok, N2} = muxraft:start_node(Opts),
        %% Already in the mailbox, before anything applied of group 1.
        receive
            {muxraft, N2, {Kind, 1, _, _} = First} when Kind =:= restore; Kind =:= applied ->
                ?assertEqual({restore, 1, Snap, <<"a+b">>}, First)
        after 0 ->
                error(no_restore)
        end,
        lead(N2, 1),
        lead(N2, 2),
        receive {muxraft, N2, {applied, 1, I1, D1}} -> ?assertEqual({IC, <<"c">>}, {I1, D1})
        after ?WAIT_MS -> error(not_applied)
        end,
        %% Group 2 has no snapshot: replayed from the start, not restored.
        receive {muxraft, N2, {applied, 2, _, D2}} -> ?assertEqual(<<"x">>, D2)
        after ?WAIT_MS -> error(not_applied)
        end,
        receive {muxraft, N2, {restore, _, _, _} = R} -> error({unexpected, R}) after 0 -> ok end,
        ?assertMatch({ok, #{snapshot_index := Snap}}, muxraft:group_status(N2, 1)),
        ok = muxraft:stop_node(N2)
    after
        flush(),
        rm_rf(Dir)
    end.

%% Three host-driven nodes with data directories, driven by this process.
%% A follower's directory is deleted; started again it has no group, and
%% rejoin_group brings its replica back: the leader's snapshot arrives as a
%% restore message before the applied messages that follow it.
rejoin_after_lost_data() ->
    Root = unique_dir(),
    Ids = [1, 2, 3],
    DirOf = fun(Id) -> filename:join(Root, "node-" ++ integer_to_list(Id)) end,
    Opts = fun(Id) -> #{node_id => Id, cluster_id => 909, data_dir => DirOf(Id),
                        snapshot_trailing_entries => 0}
           end,
    Start = fun(Id) -> {ok, N} = muxraft:start_node(Opts(Id)), N end,
    Nodes0 = maps:from_list([{Id, Start(Id)} || Id <- Ids]),
    try
        IdOf0 = maps:from_list([{N, Id} || {Id, N} <- maps:to_list(Nodes0)]),
        [ok = muxraft:create_group(N, 1, 1, Ids) || N <- maps:values(Nodes0)],
        S0 = hd_ticks(Nodes0, IdOf0, #{}, 100),
        L = hd_leader(Nodes0, 1),
        ?assertNotEqual(none, L),
        F = L rem 3 + 1,
        LN = maps:get(L, Nodes0),
        [{ok, _} = muxraft:propose(LN, 1, <<"old">>) || _ <- lists:seq(1, 3)],
        S1 = hd_ticks(Nodes0, IdOf0, S0, 40),
        ?assertEqual(3, length(maps:get({applied, F, 1}, S1, []))),
        {ok, Snap} = applied_index(LN),
        ok = muxraft:snapshot(LN, 1, Snap, <<"three olds">>),
        %% F's disk is lost.
        ok = muxraft:stop_node(maps:get(F, Nodes0)),
        rm_rf(DirOf(F)),
        FN = Start(F),
        ?assertEqual({error, not_found}, muxraft:group_status(FN, 1)),
        ok = muxraft:rejoin_group(FN, 1, 1, Ids),
        ?assertEqual({error, already_exists}, muxraft:rejoin_group(FN, 1, 1, Ids)),
        Nodes1 = Nodes0#{F := FN},
        IdOf1 = IdOf0#{FN => F},
        S2 = hd_ticks(Nodes1, IdOf1, S1, 60),
        %% Restored by the leader, after the 3 entries it applied before the
        %% loss.
        ?assertEqual([{Snap, <<"three olds">>, 3}], maps:get({restore, F, 1}, S2, [])),
        {ok, _} = muxraft:propose(LN, 1, <<"new">>),
        S3 = hd_ticks(Nodes1, IdOf1, S2, 40),
        [_, _, _, {INew, <<"new">>}] = maps:get({applied, F, 1}, S3),
        ?assert(INew > Snap),
        ?assertMatch({ok, #{snapshot_index := Snap}}, muxraft:group_status(FN, 1)),
        ?assertMatch(#{snapshots_installed := 1, elections_started := 0}, muxraft:stats(FN)),
        [?assertEqual(error, maps:find({restore, Id, 1}, S3)) || Id <- Ids, Id =/= F],
        [ok = muxraft:stop_node(N) || N <- maps:values(Nodes1)]
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes0)],
        flush(),
        rm_rf(Root)
    end.

%% Backpressure on three host-driven nodes owned by this process: with the
%% frames held, the leader's proposals stay in flight; at
%% max_pending_proposals_per_group the next propose is {error, busy} at once
%% (nothing proposed), stats/1 and group_status/2 show it, and once the
%% frames flow the proposals commit and proposing works again. The refused
%% payload is never applied.
backpressure() ->
    Ids = [1, 2, 3],
    Limits = #{max_pending_proposals_per_group => 2, max_pending_proposals => 100,
               max_unsynced_bytes_per_group => 0, max_unsynced_bytes => 1 bsl 30},
    Nodes = maps:from_list([begin
                                {ok, N} = muxraft:start_node(Limits#{node_id => Id,
                                                                     cluster_id => 1010}),
                                {Id, N}
                            end || Id <- Ids]),
    try
        IdOf = maps:from_list([{N, Id} || {Id, N} <- maps:to_list(Nodes)]),
        [ok = muxraft:create_group(N, 1, 1, Ids) || N <- maps:values(Nodes)],
        S0 = hd_ticks(Nodes, IdOf, #{}, 100),
        L = hd_leader(Nodes, 1),
        ?assertNotEqual(none, L),
        LN = maps:get(L, Nodes),
        ?assertMatch({ok, #{pending_proposals := 0, unsynced_bytes := 0}},
                     muxraft:group_status(LN, 1)),
        ?assertMatch(#{proposals_refused_busy := 0, pending_proposals := 0,
                       unsynced_bytes := 0}, muxraft:stats(LN)),
        %% Nothing delivered between these calls: nothing commits.
        {ok, P1} = muxraft:propose(LN, 1, <<"one">>),
        {ok, P2} = muxraft:propose(LN, 1, <<"two">>),
        {ok, #{last_index := Last, pending_proposals := 2}} = muxraft:group_status(LN, 1),
        ?assertEqual({error, busy}, muxraft:propose(LN, 1, <<"refused">>)),
        Msg = unicode:characters_to_list(muxraft:last_error()),
        ?assertNotEqual(nomatch, string:find(Msg, "proposals in flight")),
        {ok, Info} = muxraft:group_status(LN, 1),
        ?assertMatch(#{last_index := Last, pending_proposals := 2}, Info), % nothing proposed
        ?assert(is_integer(maps:get(unsynced_bytes, Info))),
        Stats = muxraft:stats(LN),
        ?assertMatch(#{proposals_refused_busy := 1, pending_proposals := 2}, Stats),
        ?assert(is_integer(maps:get(unsynced_bytes, Stats))),
        %% A follower still answers not_leader.
        ?assertEqual({error, not_leader}, muxraft:propose(maps:get(L rem 3 + 1, Nodes), 1, <<"x">>)),
        %% The frames flow: both commit, and the pressure is gone.
        S1 = hd_ticks(Nodes, IdOf, S0, 40),
        ?assertEqual([P1, P2], maps:get({committed, L}, S1, [])),
        [?assertEqual([<<"one">>, <<"two">>], [D || {_, D} <- maps:get({applied, Id, 1}, S1, [])])
         || Id <- Ids],
        ?assertMatch({ok, #{pending_proposals := 0}}, muxraft:group_status(LN, 1)),
        ?assertMatch(#{proposals_refused_busy := 1, pending_proposals := 0,
                       proposals_committed := 2}, muxraft:stats(LN)),
        %% Proposing works again; the refused payload was never applied.
        {ok, P3} = muxraft:propose(LN, 1, <<"after">>),
        S2 = hd_ticks(Nodes, IdOf, S1, 40),
        ?assertEqual([P1, P2, P3], maps:get({committed, L}, S2)),
        [?assertEqual([<<"one">>, <<"two">>, <<"after">>],
                      [D || {_, D} <- maps:get({applied, Id, 1}, S2, [])])
         || Id <- Ids],
        [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)]
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

-define(QUIESCE_STATS, [groups_awake, groups_quiesced, quiesced_total, wakeups_host,
                        wakeups_leader_message, wakeups_follower_message,
                        wakeups_peer_lost, wakeups_peer_returned, peers, peers_heard,
                        peers_lost, peers_returned, peers_restarted]).
-define(QUIESCE_GROUPS, 6).

%% start_node/1 takes `quiesce' true and false, with and without batched
%% heartbeats, and nothing else; stats/1 has the quiescence and liveness
%% keys.
quiesce_option() ->
    [begin
         {ok, N} = muxraft:start_node(#{node_id => 1, cluster_id => 1111, quiesce => Q,
                                        batch_heartbeats => B}),
         ok = muxraft:create_group(N, 1, 1, [1]),
         Stats = muxraft:stats(N),
         [?assert(is_integer(maps:get(K, Stats))) || K <- ?QUIESCE_STATS],
         ?assertMatch(#{peers := 0, peers_heard := 0, groups_awake := 1,
                        groups_quiesced := 0}, Stats),
         ok = muxraft:stop_node(N)
     end || Q <- [false, true], B <- [false, true]],
    [?assertError(badarg, muxraft:start_node(#{node_id => 1, quiesce => Bad}))
     || Bad <- [1, yes, "true", <<"false">>]],
    flush().

%% The leader balancer's options: auto (the default), on and off start a
%% node whose stats count balance_transfers; on without batched heartbeats
%% (which carry the counts) is refused by the library; anything else is
%% badarg.
balance_option() ->
    [begin
         {ok, N} = muxraft:start_node(Opts#{node_id => 1, cluster_id => 1313}),
         ?assertMatch(#{balance_transfers := 0}, muxraft:stats(N)),
         ok = muxraft:stop_node(N)
     end || Opts <- [#{}, #{balance_leaders => auto}, #{balance_leaders => on},
                     #{balance_leaders => off, balance_max_transfers => 3}]],
    ?assertEqual({error, invalid_argument},
                 muxraft:start_node(#{node_id => 1, balance_leaders => on,
                                      batch_heartbeats => false})),
    [?assertError(badarg, muxraft:start_node(#{node_id => 1, balance_leaders => Bad}))
     || Bad <- [1, yes, "on", true]],
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, balance_max_transfers => -1})),
    flush().

%% start_node/1 takes `broadcast_commit' true and false and nothing else.
%% In three host-driven nodes, a proposal's frames carried without a tick
%% commit it on the leader either way; with true the followers apply it
%% then too, with false not before the next heartbeat (heartbeat_ticks
%% ticks).
broadcast_commit_option() ->
    [begin
         {ok, N} = muxraft:start_node(Opts#{node_id => 1, cluster_id => 2121}),
         ok = muxraft:create_group(N, 1, 1, [1]),
         ok = muxraft:stop_node(N)
     end || Opts <- [#{}, #{broadcast_commit => false}, #{broadcast_commit => true}]],
    [?assertError(badarg, muxraft:start_node(#{node_id => 1, broadcast_commit => Bad}))
     || Bad <- [1, yes, "true", <<"false">>]],
    [begin
         {Nodes, IdOf} = hd_cluster(#{cluster_id => 2121, heartbeat_ticks => 2,
                                      broadcast_commit => Broadcast}),
         try
             [ok = muxraft:create_group(N, 1, 1, [1, 2, 3]) || N <- maps:values(Nodes)],
             S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, [1]) end),
             %% Settled: every replica told every commit.
             S1 = hd_ticks(Nodes, IdOf, S0, 20),
             L = hd_leader(Nodes, 1),
             Followers = [Id || Id <- [1, 2, 3], Id =/= L],
             Applied = fun(S, Id) ->
                               lists:keymember(<<"bc">>, 2, maps:get({applied, Id, 1}, S, []))
                       end,
             {ok, P} = muxraft:propose(maps:get(L, Nodes), 1, <<"bc">>),
             S2 = hd_deliver(Nodes, IdOf, S1),
             ?assertEqual([P], maps:get({committed, L}, S2)),
             ?assert(Applied(S2, L)),
             [?assertEqual(Broadcast, Applied(S2, Id)) || Id <- Followers],
             S3 = hd_ticks(Nodes, IdOf, S2, 2),
             [?assert(Applied(S3, Id)) || Id <- Followers],
             [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)]
         after
             [muxraft:stop_node(N) || N <- maps:values(Nodes)],
             flush()
         end
     end || Broadcast <- [true, false]],
    ok.

%% Three host-driven nodes owned by this process, quiesce on (the default
%% too, but said): with no proposals, groups_awake counts down to 0 and
%% never up on every node and groups_quiesced reaches every group; the
%% per-pair batches then carry no rows and the leaders stay. A proposal
%% wakes its group, which commits and goes quiet again.
quiesce_idle_groups() ->
    Groups = lists:seq(1, ?QUIESCE_GROUPS),
    {Nodes, IdOf} = hd_cluster(#{quiesce => true, cluster_id => 1212}),
    try
        [ok = muxraft:create_group(N, G, 1, [1, 2, 3]) || N <- maps:values(Nodes), G <- Groups],
        S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, Groups) end),
        %% groups_awake of every node, sampled before each tick.
        {S1, Samples} = hd_sample_until(Nodes, IdOf, S0, fun() -> hd_all_quiet(Nodes) end, 2000, []),
        ?assertNotEqual(timeout, Samples),
        [begin
             Awake = [maps:get(Id, Sample) || Sample <- Samples],
             ?assert(hd(Awake) > 0),
             ?assert(hd(Awake) =< ?QUIESCE_GROUPS),
             ?assertEqual(0, lists:last(Awake)),
             ?assertEqual(Awake, lists:reverse(lists:sort(Awake))), % never up
             ?assertMatch(#{groups := ?QUIESCE_GROUPS, groups_quiesced := ?QUIESCE_GROUPS,
                            groups_awake := 0, wakeups_host := 0, wakeups_peer_lost := 0,
                            peers := 2, peers_heard := 2, peers_lost := 0,
                            peers_returned := 0, peers_restarted := 0},
                          muxraft:stats(N)),
             ?assert(maps:get(quiesced_total, muxraft:stats(N)) >= ?QUIESCE_GROUPS)
         end || {Id, N} <- maps:to_list(Nodes)],
        %% Quiet: batches every interval, no rows in them, no elections.
        Leaders = [{G, hd_leader(Nodes, G)} || G <- Groups],
        Before = maps:map(fun(_, N) -> muxraft:stats(N) end, Nodes),
        S2 = hd_ticks(Nodes, IdOf, S1, 40),
        [begin
             B = maps:get(Id, Before),
             A = muxraft:stats(N),
             ?assert(maps:get(heartbeat_batches_sent, A) > maps:get(heartbeat_batches_sent, B)),
             ?assertEqual(maps:get(group_heartbeats_batched, B), maps:get(group_heartbeats_batched, A)),
             ?assertEqual(maps:get(elections_started, B), maps:get(elections_started, A)),
             ?assertMatch(#{groups_quiesced := ?QUIESCE_GROUPS, peers_heard := 2}, A)
         end || {Id, N} <- maps:to_list(Nodes)],
        ?assertEqual(Leaders, [{G, hd_leader(Nodes, G)} || G <- Groups]),
        %% A proposal wakes its group: on the leader at once (a host call),
        %% on the followers by the leader's message.
        {3, L} = lists:keyfind(3, 1, Leaders),
        LN = maps:get(L, Nodes),
        {ok, P} = muxraft:propose(LN, 3, <<"wake up">>),
        ?assertMatch(#{groups_awake := 1, groups_quiesced := ?QUIESCE_GROUPS - 1},
                     muxraft:stats(LN)),
        ?assertEqual(maps:get(wakeups_host, maps:get(L, Before)) + 1,
                     maps:get(wakeups_host, muxraft:stats(LN))),
        S3 = hd_ticks(Nodes, IdOf, S2, 20),
        ?assertEqual([P], maps:get({committed, L}, S3, [])),
        [?assertEqual([<<"wake up">>], [D || {_, D} <- maps:get({applied, Id, 3}, S3, [])])
         || Id <- maps:keys(Nodes)],
        [?assert(maps:get(wakeups_leader_message, muxraft:stats(N))
                 > maps:get(wakeups_leader_message, maps:get(Id, Before)))
         || {Id, N} <- maps:to_list(Nodes), Id =/= L],
        {_, Again} = hd_sample_until(Nodes, IdOf, S3, fun() -> hd_all_quiet(Nodes) end, 2000, []),
        ?assertNotEqual(timeout, Again),
        [?assert(maps:get(quiesced_total, muxraft:stats(N))
                 > maps:get(quiesced_total, maps:get(Id, Before)))
         || {Id, N} <- maps:to_list(Nodes)],
        [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)]
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

%% With quiesce false, or without batched heartbeats (which quiesce needs),
%% every group stays awake however long it idles.
quiesce_off() ->
    Groups = lists:seq(1, ?QUIESCE_GROUPS),
    [begin
         {Nodes, IdOf} = hd_cluster(Opts#{cluster_id => 1313}),
         try
             [ok = muxraft:create_group(N, G, 1, [1, 2, 3])
              || N <- maps:values(Nodes), G <- Groups],
             S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, Groups) end),
             %% Checked before each of 100 ticks.
             Awake = fun() ->
                             [?assertMatch(#{groups_awake := ?QUIESCE_GROUPS,
                                             groups_quiesced := 0},
                                           muxraft:stats(N)) || N <- maps:values(Nodes)],
                             false
                     end,
             {_, timeout} = hd_sample_until(Nodes, IdOf, S0, Awake, 100, []),
             [?assertMatch(#{groups_awake := ?QUIESCE_GROUPS, groups_quiesced := 0,
                             quiesced_total := 0, wakeups_host := 0,
                             wakeups_leader_message := 0, wakeups_follower_message := 0,
                             wakeups_peer_lost := 0, wakeups_peer_returned := 0},
                           muxraft:stats(N))
              || N <- maps:values(Nodes)],
             [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)]
         after
             [muxraft:stop_node(N) || N <- maps:values(Nodes)],
             flush()
         end
     end || Opts <- [#{quiesce => false}, #{quiesce => true, batch_heartbeats => false}]],
    ok.

%% Three host-driven nodes: refusals (badarg, not_leader, not_found); a read
%% taken after a proposal was acknowledged is reported exactly once, not
%% before frames travel, as {read, R, ok, I} with I at or past the
%% proposal's index, after the proposal's `applied' message; the stats
%% count it; read_index/2 works again afterwards.
read_index() ->
    {Nodes, IdOf} = hd_cluster(#{cluster_id => 1414}),
    try
        [ok = muxraft:create_group(N, 1, 1, [1, 2, 3]) || N <- maps:values(Nodes)],
        S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, [1]) end),
        L = hd_leader(Nodes, 1),
        LN = maps:get(L, Nodes),
        FN = maps:get(L rem 3 + 1, Nodes),
        ?assertError(badarg, muxraft:read_index(LN, -1)),
        ?assertError(badarg, muxraft:read_index(LN, 1 bsl 64)),
        ?assertError(badarg, muxraft:read_index(make_ref(), 1)),
        ?assertEqual({error, not_leader}, muxraft:read_index(FN, 1)),
        ?assertNotEqual(<<>>, muxraft:last_error()),
        ?assertEqual({error, not_found}, muxraft:read_index(LN, 99)),
        ?assertEqual({error, not_found}, muxraft:read_index(FN, 99)),
        Stats0 = muxraft:stats(LN),
        [?assert(is_integer(maps:get(K, Stats0)))
         || K <- [reads, reads_served, reads_failed, reads_refused_busy, pending_reads,
                  read_rounds_sent, read_rounds_answered]],
        ?assertMatch(#{reads := 0, pending_reads := 0, reads_refused_busy := 0}, Stats0),
        %% A proposal acknowledged before the read.
        {ok, P} = muxraft:propose(LN, 1, <<"written">>),
        S1 = hd_ticks_until_s(Nodes, IdOf, S0,
                              fun(S) -> maps:is_key({proposal_index, P}, S) end, 200),
        Written = maps:get({proposal_index, P}, S1),
        {ok, R} = muxraft:read_index(LN, 1),
        ?assert(is_integer(R) andalso R > 0),
        receive {muxraft, _, {read, _, _, _} = Early} -> error({early, Early});
                {muxraft, _, {read, _, _} = Early} -> error({early, Early})
        after 0 -> ok
        end,
        ?assertMatch(#{reads := 1, pending_reads := 1, reads_served := 0}, muxraft:stats(LN)),
        S2 = hd_ticks_until_s(Nodes, IdOf, S1, fun(S) -> maps:is_key({reads, L}, S) end, 200),
        [{R, {ok, I}, Applied}] = maps:get({reads, L}, S2),
        ?assert(I >= Written),
        ?assert(lists:member(Written, maps:get(1, Applied, []))),
        {ok, #{commit := C}} = muxraft:group_status(LN, 1),
        ?assert(I =< C),
        #{reads := 1, reads_served := 1, reads_failed := 0, pending_reads := 0,
          reads_refused_busy := 0, read_rounds_sent := Sent, read_rounds_answered := Answered} =
            muxraft:stats(LN),
        ?assert(Sent >= 1),
        ?assert(Answered >= 1),
        %% Exactly once, and only on the leader.
        S3 = hd_ticks(Nodes, IdOf, S2, 20),
        ?assertEqual(1, length(maps:get({reads, L}, S3))),
        [?assertNot(maps:is_key({reads, Id}, S3)) || Id <- [1, 2, 3], Id =/= L],
        %% Again, twice in one interval.
        {ok, R2} = muxraft:read_index(LN, 1),
        {ok, R3} = muxraft:read_index(LN, 1),
        ?assertEqual(3, length(lists:usort([R, R2, R3]))),
        S4 = hd_ticks_until_s(Nodes, IdOf, S3,
                              fun(S) -> length(maps:get({reads, L}, S)) =:= 3 end, 200),
        [{R2, {ok, _}, _}, {R3, {ok, _}, _}] = tl(maps:get({reads, L}, S4)),
        ?assertMatch(#{reads := 3, reads_served := 3, pending_reads := 0}, muxraft:stats(LN)),
        [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)]
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

%% max_pending_reads_per_group and max_pending_reads: {error, busy} at once
%% (nothing taken, counted, the message says which limit); room again once
%% the reads are reported. Bad values raise badarg.
read_index_limits() ->
    [?assertError(badarg, muxraft:start_node(#{node_id => 1, K => V}))
     || K <- [max_pending_reads_per_group, max_pending_reads], V <- [-1, 1 bsl 64, x, 1.0]],
    [begin
         {Nodes, IdOf} = hd_cluster(Opts#{cluster_id => 1515}),
         try
             [ok = muxraft:create_group(N, 1, 1, [1, 2, 3]) || N <- maps:values(Nodes)],
             S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, [1]) end),
             L = hd_leader(Nodes, 1),
             LN = maps:get(L, Nodes),
             {ok, R1} = muxraft:read_index(LN, 1),
             ?assertEqual({error, busy}, muxraft:read_index(LN, 1)),
             Msg = unicode:characters_to_list(muxraft:last_error()),
             ?assertNotEqual(nomatch, string:find(Msg, Which)),
             ?assertMatch(#{reads := 1, pending_reads := 1, reads_refused_busy := 1},
                          muxraft:stats(LN)),
             S1 = hd_ticks_until_s(Nodes, IdOf, S0, fun(S) -> maps:is_key({reads, L}, S) end, 200),
             [{R1, {ok, _}, _}] = maps:get({reads, L}, S1),
             {ok, _} = muxraft:read_index(LN, 1),
             [ok = muxraft:stop_node(N) || N <- maps:values(Nodes)]
         after
             [muxraft:stop_node(N) || N <- maps:values(Nodes)],
             flush()
         end
     end || {Opts, Which} <- [{#{max_pending_reads_per_group => 1}, "reads pending in the group"},
                              {#{max_pending_reads => 1}, "reads pending on the node"}]],
    ok.

%% A read pending when its group is removed is reported
%% {error, not_found}, by remove_group/2 itself; one pending when the node
%% stops, {error, shutdown}, by stop_node/1; afterwards read_index/2 answers
%% {error, shutdown}.
read_index_pending_fails() ->
    {Nodes, IdOf} = hd_cluster(#{cluster_id => 1616}),
    try
        [ok = muxraft:create_group(N, G, 1, [1, 2, 3]) || N <- maps:values(Nodes), G <- [1, 2]],
        _ = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, [1, 2]) end),
        LN1 = maps:get(hd_leader(Nodes, 1), Nodes),
        {ok, R1} = muxraft:read_index(LN1, 1),
        ok = muxraft:remove_group(LN1, 1),
        receive {muxraft, LN1, {read, R1, O1}} -> ?assertEqual({error, not_found}, O1)
        after 0 -> error(no_read_outcome)
        end,
        ?assertMatch(#{reads_failed := 1, pending_reads := 0}, muxraft:stats(LN1)),
        ?assertEqual({error, not_found}, muxraft:read_index(LN1, 1)),
        LN2 = maps:get(hd_leader(Nodes, 2), Nodes),
        {ok, R2} = muxraft:read_index(LN2, 2),
        ok = muxraft:stop_node(LN2),
        receive {muxraft, LN2, {read, R2, O2}} -> ?assertEqual({error, shutdown}, O2)
        after 0 -> error(no_read_outcome)
        end,
        ?assertEqual({error, shutdown}, muxraft:read_index(LN2, 2)),
        ?assertMatch(#{pending_reads := 0}, muxraft:stats(LN2)),
        %% Nothing more about either read.
        receive {muxraft, _, {read, R, _}} when R =:= R1; R =:= R2 -> error(twice)
        after 0 -> ok
        end
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

%% transfer_leader/3 on three host-driven nodes: refusals (badarg,
%% not_leader, not_found, invalid_argument for a node that is no voter);
%% a transfer to the node itself does nothing; a real one makes the
%% target lead within a few ticks, told to every node by a `role' message,
%% while the old leader refuses proposals; the new leader commits them;
%% groups_led and transfers_started follow; after stop_node/1, shutdown.
transfer_leader() ->
    {Nodes, IdOf} = hd_cluster(#{cluster_id => 1818}),
    try
        [ok = muxraft:create_group(N, 1, 1, [1, 2, 3]) || N <- maps:values(Nodes)],
        S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Nodes, [1]) end),
        L = hd_leader(Nodes, 1),
        T = L rem 3 + 1,
        LN = maps:get(L, Nodes),
        TN = maps:get(T, Nodes),
        ?assertError(badarg, muxraft:transfer_leader(make_ref(), 1, T)),
        ?assertError(badarg, muxraft:transfer_leader(LN, -1, T)),
        ?assertError(badarg, muxraft:transfer_leader(LN, 1, 1 bsl 64)),
        ?assertError(badarg, muxraft:transfer_leader(LN, 1, x)),
        ?assertEqual({error, not_leader}, muxraft:transfer_leader(TN, 1, L)),
        ?assertNotEqual(<<>>, muxraft:last_error()),
        ?assertEqual({error, not_found}, muxraft:transfer_leader(LN, 99, T)),
        ?assertEqual({error, invalid_argument}, muxraft:transfer_leader(LN, 1, 42)),
        Stats0 = muxraft:stats(LN),
        [?assert(is_integer(maps:get(K, Stats0)))
         || K <- [groups_led, transfers_started, compact_rows_sent, compact_rows_refused]],
        ?assertMatch(#{groups_led := 1, transfers_started := 0}, Stats0),
        ?assertMatch(#{groups_led := 0}, muxraft:stats(TN)),
        ok = muxraft:transfer_leader(LN, 1, L),    % itself: nothing to do
        ?assertMatch(#{transfers_started := 0}, muxraft:stats(LN)),
        S1 = hd_ticks(Nodes, IdOf, S0, 3),
        ?assertEqual(L, hd_leader(Nodes, 1)),
        %% The transfer: the old leader refuses proposals meanwhile.
        ok = muxraft:transfer_leader(LN, 1, T),
        ?assertMatch(#{transfers_started := 1}, muxraft:stats(LN)),
        ?assertEqual({error, not_leader}, muxraft:propose(LN, 1, <<"during">>)),
        S2 = hd_ticks_until_s(Nodes, IdOf, maps:remove(roles, S1),
                              fun(S) ->
                                      hd_leader(Nodes, 1) =:= T andalso
                                          lists:all(fun(Id) -> told_leader(S, Id, 1, T) end,
                                                    [1, 2, 3])
                              end, 50),
        {ok, #{role := follower, leader := T}} = muxraft:group_status(LN, 1),
        ?assertMatch(#{groups_led := 0, transfers_started := 1}, muxraft:stats(LN)),
        ?assertMatch(#{groups_led := 1, transfers_started := 0}, muxraft:stats(TN)),
        {ok, P} = muxraft:propose(TN, 1, <<"after">>),
        _ = hd_ticks_until_s(Nodes, IdOf, S2,
                             fun(S) -> maps:is_key({proposal_index, P}, S) end, 200),
        ?assertEqual({error, not_leader}, muxraft:propose(LN, 1, <<"old">>)),
        ok = muxraft:stop_node(TN),
        ?assertEqual({error, shutdown}, muxraft:transfer_leader(TN, 1, L))
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

%% A leader that has never heard from the target (node 3, cut off since
%% the group was created) is not replicating to it: {error, busy}, nothing
%% started, and it keeps leading. Once node 3 is reachable and caught up,
%% the same call answers ok and node 3 leads.
transfer_leader_busy() ->
    {Nodes, IdOf} = hd_cluster(#{cluster_id => 1919}),
    try
        [ok = muxraft:create_group(N, 1, 1, [1, 2, 3]) || N <- maps:values(Nodes)],
        Cut = #{isolated => 3},
        S0 = hd_ticks_until_s(Nodes, IdOf, Cut,
                              fun(_) -> lists:member(hd_leader(Nodes, 1), [1, 2]) end, 2000),
        L = hd_leader(Nodes, 1),
        LN = maps:get(L, Nodes),
        {ok, P} = muxraft:propose(LN, 1, <<"while 3 is away">>),
        S1 = hd_ticks_until_s(Nodes, IdOf, S0,
                              fun(S) -> maps:is_key({proposal_index, P}, S) end, 200),
        ?assertEqual({error, busy}, muxraft:transfer_leader(LN, 1, 3)),
        ?assertNotEqual(<<>>, muxraft:last_error()),
        ?assertMatch(#{transfers_started := 0, groups_led := 1}, muxraft:stats(LN)),
        {ok, _} = muxraft:propose(LN, 1, <<"still leading">>),
        %% Reachable again: busy until the leader replicates to node 3.
        S2 = hd_ticks_until_s(Nodes, IdOf, maps:remove(isolated, S1),
                              fun(_) ->
                                      case muxraft:transfer_leader(LN, 1, 3) of
                                          ok -> true;
                                          {error, busy} -> false
                                      end
                              end, 2000),
        ?assertMatch(#{transfers_started := 1}, muxraft:stats(LN)),
        _ = hd_ticks_until_s(Nodes, IdOf, S2, fun(_) -> hd_leader(Nodes, 1) =:= 3 end, 50),
        ?assertMatch(#{groups_led := 1}, muxraft:stats(maps:get(3, Nodes))),
        ?assertMatch(#{groups_led := 0}, muxraft:stats(LN)),
        {ok, #{commit := C}} = muxraft:group_status(maps:get(3, Nodes), 1),
        ?assert(C >= maps:get({proposal_index, P}, S1))
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

%% join_group/3, add_member/4, remove_member/3 and members/2 on four
%% host-driven nodes: a group of nodes 1..3 grows to node 4 (joined, added
%% as promotable: listed at once on the leader, busy for a second change);
%% every node gets a `members_changed' message with 4 voters, node 4
%% applies the entries proposed before, and members/2 on the leader gives
%% each member's match_index. Then the leader removes itself: another node
%% leads and every node, the old leader included, is told the three others.
membership() ->
    Nodes = maps:from_list([begin
                                {ok, N} = muxraft:start_node(#{node_id => Id,
                                                               cluster_id => 2020}),
                                {Id, N}
                            end || Id <- [1, 2, 3, 4]]),
    IdOf = maps:from_list([{N, Id} || {Id, N} <- maps:to_list(Nodes)]),
    Trio = maps:with([1, 2, 3], Nodes),
    try
        [ok = muxraft:create_group(N, 1, 5, [1, 2, 3]) || N <- maps:values(Trio)],
        S0 = hd_ticks_until(Nodes, IdOf, #{}, fun() -> hd_all_led(Trio, [1]) end),
        L = hd_leader(Trio, 1),
        LN = maps:get(L, Nodes),
        FN = maps:get(L rem 3 + 1, Nodes),
        N4 = maps:get(4, Nodes),
        {ok, P1} = muxraft:propose(LN, 1, <<"a">>),
        {ok, P2} = muxraft:propose(LN, 1, <<"b">>),
        S1 = hd_ticks_until_s(Nodes, IdOf, S0,
                              fun(S) -> maps:is_key({proposal_index, P2}, S) end, 200),
        ?assertEqual(error, maps:find({members, L, 1}, S1)), % creation: no message

        ok = muxraft:join_group(N4, 1, 5),
        ?assertEqual({error, already_exists}, muxraft:join_group(N4, 1, 5)),
        ?assertEqual({ok, []}, muxraft:members(N4, 1)),
        ?assertEqual({error, not_leader}, muxraft:add_member(FN, 1, 4, promotable)),
        ok = muxraft:add_member(LN, 1, 4, promotable),
        {ok, Listed} = muxraft:members(LN, 1),
        ?assertMatch([#{role := voter}, #{role := voter}, #{role := voter},
                      #{node_id := 4, role := promotable}], Listed),
        ?assertEqual({error, busy}, muxraft:add_member(LN, 1, 4, voter)),
        ?assertEqual({error, busy}, muxraft:remove_member(LN, 1, 4)),
        ?assertNotEqual(<<>>, muxraft:last_error()),

        S2 = hd_ticks_until_s(Nodes, IdOf, S1,
                              fun(S) ->
                                      length(maps:get({applied, 4, 1}, S, [])) >= 2 andalso
                                          lists:all(fun(Id) -> told_voters(S, Id, 1, [1, 2, 3, 4]) end,
                                                    [1, 2, 3, 4])
                              end, 2000),
        [{I1, <<"a">>}, {I2, <<"b">>} | _] = maps:get({applied, 4, 1}, S2),
        ?assertEqual({I1, I2}, {maps:get({proposal_index, P1}, S2),
                                maps:get({proposal_index, P2}, S2)}),
        %% Node 4 first learned the change that added it, as promotable.
        [{_, First} | _] = maps:get({members, 4, 1}, S2),
        ?assertMatch([_, _, _, #{node_id := 4, role := promotable, match_index := 0}], First),
        S3 = hd_ticks(Nodes, IdOf, S2, 5),
        {ok, #{last_index := Last}} = muxraft:group_status(LN, 1),
        ?assertEqual({ok, [#{node_id => Id, role => voter, match_index => Last}
                           || Id <- [1, 2, 3, 4]]},
                     muxraft:members(LN, 1)),
        {ok, On4} = muxraft:members(N4, 1),
        ?assertEqual([0, 0, 0, 0], [M || #{match_index := M} <- On4]),
        ?assertEqual({error, invalid_argument}, muxraft:remove_member(LN, 1, 9)),

        %% The leader leaves.
        Rest = [Id || Id <- [1, 2, 3, 4], Id =/= L],
        ok = muxraft:remove_member(LN, 1, L),
        S4 = hd_ticks_until_s(Nodes, IdOf, maps:remove(roles, S3),
                              fun(S) ->
                                      NL = hd_leader(Nodes, 1),
                                      NL =/= none andalso NL =/= L andalso
                                          lists:all(fun(Id) -> told_voters(S, Id, 1, Rest) end,
                                                    [1, 2, 3, 4])
                              end, 2000),
        NL = hd_leader(Nodes, 1),
        ?assert(lists:member(NL, Rest)),
        ?assert(lists:all(fun(Id) -> told_leader(S4, Id, 1, NL) end, Rest)),
        ?assertEqual({error, not_leader}, muxraft:propose(LN, 1, <<"gone">>)),
        ok = muxraft:remove_group(LN, 1),
        {ok, P3} = muxraft:propose(maps:get(NL, Nodes), 1, <<"without it">>),
        _ = hd_ticks_until_s(Nodes, IdOf, S4,
                             fun(S) -> maps:is_key({proposal_index, P3}, S) end, 200)
    after
        [muxraft:stop_node(N) || N <- maps:values(Nodes)],
        flush()
    end.

%% Whether node Id's last `members_changed' message of group G lists
%% exactly Ids, all voters.
told_voters(S, Id, G, Ids) ->
    case maps:get({members, Id, G}, S, []) of
        [] -> false;
        Reports ->
            {_, Members} = lists:last(Reports),
            Members =:= [#{node_id => M, role => voter, match_index => 0} || M <- Ids]
    end.

%% The refusals of the membership calls on one host-driven node, and what
%% they answer after stop_node/1 (members/2 still answers).
membership_refusals() ->
    {ok, N} = muxraft:start_node(#{node_id => 1}),
    try
        ok = muxraft:create_group(N, 1, 1, [1]),
        ok = muxraft:create_group(N, 2, 1, [1, 2, 3]), % nobody leads it
        [ok = muxraft:tick(N) || _ <- lists:seq(1, 30)],
        {ok, #{role := leader}} = muxraft:group_status(N, 1),
        ?assertError(badarg, muxraft:add_member(N, 1, 2, learner)),
        ?assertError(badarg, muxraft:add_member(N, 1, -1, voter)),
        ?assertError(badarg, muxraft:add_member(make_ref(), 1, 2, voter)),
        ?assertError(badarg, muxraft:remove_member(N, 1 bsl 64, 2)),
        ?assertError(badarg, muxraft:members(N, x)),
        ?assertError(badarg, muxraft:join_group(N, 3, -1)),
        ?assertEqual({error, not_found}, muxraft:add_member(N, 99, 2, voter)),
        ?assertEqual({error, not_found}, muxraft:members(N, 99)),
        ?assertEqual({error, invalid_argument}, muxraft:add_member(N, 1, 0, voter)),
        ?assertEqual({error, invalid_argument}, muxraft:add_member(N, 1, 1, voter)),
        ?assertEqual({error, invalid_argument}, muxraft:remove_member(N, 1, 1)), % last voter
        ?assertEqual({error, not_leader}, muxraft:add_member(N, 2, 4, nonvoter)),
        ?assertEqual({error, already_exists}, muxraft:join_group(N, 2, 1)),
        {ok, Three} = muxraft:members(N, 2),
        ?assertEqual([1, 2, 3], [Id || #{node_id := Id, role := voter} <- Three]),
        %% A non-voter commits at once (it never counts): a message here.
        ok = muxraft:add_member(N, 1, 2, nonvoter),
        [ok = muxraft:tick(N) || _ <- lists:seq(1, 5)],
        receive
            {muxraft, N, {members_changed, 1, _, Two}} ->
                ?assertEqual([#{node_id => 1, role => voter, match_index => 0},
                              #{node_id => 2, role => nonvoter, match_index => 0}], Two)
        after 0 ->
                error(no_members_changed)
        end,
        ok = muxraft:stop_node(N),
        ?assertEqual({error, shutdown}, muxraft:add_member(N, 1, 3, nonvoter)),
        ?assertEqual({error, shutdown}, muxraft:remove_member(N, 1, 2)),
        ?assertEqual({error, shutdown}, muxraft:join_group(N, 3, 1)),
        ?assertMatch({ok, [_, _]}, muxraft:members(N, 1))
    after
        muxraft:stop_node(N),
        flush()
    end.

%% Whether node Id received, since `roles' was last cleared from S, a
%% `role' message naming Leader the leader of group G (as leader on
%% Leader itself, as follower elsewhere).
told_leader(S, Id, G, Leader) ->
    Want = case Id of Leader -> leader; _ -> follower end,
    Told = maps:get({roles, Id}, maps:get(roles, S, #{}), []),
    lists:any(fun({G2, R, _Term, Ld}) -> {G2, R, Ld} =:= {G, Want, Leader} end, Told).

%% node_peers/1: the other members of this node's groups, in id order,
%% heard (epoch 1) at first, lost after an election timeout without a frame
%% (epoch 2); in a cluster whose frames flow, heard.
node_peers() ->
    ?assertError(badarg, muxraft:node_peers(make_ref())),
    {ok, N} = muxraft:start_node(#{node_id => 1, election_ticks => 10}),
    ?assertEqual([], muxraft:node_peers(N)),
    ok = muxraft:create_group(N, 9, 1, [3, 1, 2]),
    ?assertEqual([#{node_id => 2, heard => true, epoch => 1},
                  #{node_id => 3, heard => true, epoch => 1}], muxraft:node_peers(N)),
    [ok = muxraft:tick(N) || _ <- lists:seq(1, 11)],
    ?assertEqual([#{node_id => 2, heard => false, epoch => 2},
                  #{node_id => 3, heard => false, epoch => 2}], muxraft:node_peers(N)),
    ?assertMatch(#{peers := 2, peers_heard := 0, peers_lost := 2}, muxraft:stats(N)),
    ok = muxraft:stop_node(N),
    flush(),
    {Nodes, IdOf} = hd_cluster(#{cluster_id => 1717}),
    try
        [ok = muxraft:create_group(M, 1, 1, [1, 2, 3]) || M <- maps:values(Nodes)],
        _ = hd_ticks(Nodes, IdOf, #{}, 30),
        [?assertEqual([#{node_id => P, heard => true, epoch => 1} || P <- [1, 2, 3], P =/= Id],
                      muxraft:node_peers(maps:get(Id, Nodes)))
         || Id <- [1, 2, 3]]
    after
        [muxraft:stop_node(M) || M <- maps:values(Nodes)],
        flush()
    end.

%% metrics_text/1 and metrics/1 of a host-driven cluster: the text with the
%% node label on its samples, per-group series only up to
%% metrics_per_group_max; the map of node-level samples agrees with stats/1;
%% both answer after stop.
metrics() ->
    ?assertError(badarg, muxraft:metrics_text(make_ref())),
    ?assertError(badarg, muxraft:start_node(#{node_id => 1, metrics_per_group_max => -1})),
    {Nodes, IdOf} = hd_cluster(#{cluster_id => 1818, metrics_per_group_max => 2}),
    N2 = maps:get(2, Nodes),
    try
        [ok = muxraft:create_group(M, G, 1, [1, 2, 3]) || M <- maps:values(Nodes), G <- [1, 2]],
        _ = hd_ticks(Nodes, IdOf, #{}, 30),
        Text = muxraft:metrics_text(N2),
        ?assert(is_binary(Text)),
        ?assertMatch({_, _}, binary:match(Text, <<"# TYPE muxraft_proposals_total counter\n">>)),
        ?assertMatch({_, _}, binary:match(Text, <<"muxraft_groups{node=\"2\"} 2\n">>)),
        ?assertMatch({_, _}, binary:match(Text, <<"muxraft_group_term{node=\"2\",group=\"1\"} ">>)),
        M = muxraft:metrics(N2),
        #{groups := Groups, elections_started := Elections} = muxraft:stats(N2),
        ?assertEqual(2, Groups),
        ?assertMatch(#{muxraft_groups := 2, muxraft_peers := 2}, M),
        ?assertEqual(Elections, maps:get(muxraft_elections_started_total, M)),
        ?assert(maps:size(M) > 50),
        %% Per-group series carry a group label: not node-level.
        ?assertNot(maps:is_key(muxraft_group_term, M)),
        ?assert(maps:is_key(muxraft_group_heartbeats_batched_total, M)),
        [ok = muxraft:create_group(X, 3, 1, [1, 2, 3]) || X <- maps:values(Nodes)],
        ?assertEqual(nomatch, binary:match(muxraft:metrics_text(N2), <<"group=\"">>)),
        ok = muxraft:stop_node(N2),
        ?assertMatch(#{muxraft_groups := 3}, muxraft:metrics(N2))
    after
        [muxraft:stop_node(X) || X <- maps:values(Nodes)],
        flush()
    end.

%% Nodes 1..3, host-driven, owned by this process: {IdToNode, NodeToId}.
hd_cluster(Opts) ->
    Nodes = maps:from_list([begin
                                {ok, N} = muxraft:start_node(Opts#{node_id => Id}),
                                {Id, N}
                            end || Id <- [1, 2, 3]]),
    {Nodes, maps:from_list([{N, Id} || {Id, N} <- maps:to_list(Nodes)])}.

%% Tick until Pred() holds (at most 2000 ticks).
hd_ticks_until(Nodes, IdOf, S, Pred) ->
    case hd_sample_until(Nodes, IdOf, S, Pred, 2000, []) of
        {S1, timeout} -> error({timeout, S1});
        {S1, _} -> S1
    end.

%% Tick until Pred() holds, at most Max ticks; before each tick and when
%% Pred() holds, sample groups_awake of every node (#{Id => Awake}).
%% {S, Samples} in order, or {S, timeout}. Every sample checks that
%% groups_awake + groups_quiesced = groups.
hd_sample_until(Nodes, IdOf, S, Pred, Max, Acc) ->
    Sample = maps:map(fun(_, N) ->
                              #{groups_awake := A, groups_quiesced := Q, groups := G} =
                                  muxraft:stats(N),
                              ?assertEqual(G, A + Q),
                              A
                      end, Nodes),
    case Pred() of
        true -> {S, lists:reverse([Sample | Acc])};
        false when Max =:= 0 -> {S, timeout};
        false -> hd_sample_until(Nodes, IdOf, hd_ticks(Nodes, IdOf, S, 1), Pred, Max - 1,
                                 [Sample | Acc])
    end.

hd_all_led(Nodes, Groups) ->
    lists:all(fun(G) -> hd_leader(Nodes, G) =/= none end, Groups).

hd_all_quiet(Nodes) ->
    lists:all(fun(N) ->
                      case muxraft:stats(N) of
                          #{groups_awake := 0, groups_quiesced := ?QUIESCE_GROUPS} -> true;
                          _ -> false
                      end
              end, maps:values(Nodes)).

unique_dir() ->
    filename:join(temp_dir(), "muxraft-eunit-" ++ os:getpid() ++ "-"
                  ++ integer_to_list(erlang:unique_integer([positive]))).

%% Tick every node K times, carrying all frames after each tick.
hd_ticks(_Nodes, _IdOf, S, 0) ->
    S;
hd_ticks(Nodes, IdOf, S, K) ->
    [ok = muxraft:tick(N) || N <- maps:values(Nodes)],
    hd_ticks(Nodes, IdOf, hd_deliver(Nodes, IdOf, S), K - 1).

%% Handle this process's node messages until there are none: frames are
%% stepped into their destination (and counted by sender and flag), or
%% dropped if they come from or go to the node S's `isolated' names;
%% applied entries, restores, role messages (under `roles') and the ids of
%% the proposals committed recorded, in the order they came.
hd_deliver(Nodes, IdOf, S) ->
    receive
        {muxraft, N, {send, To, Frame, Liveness}} when is_boolean(Liveness) ->
            From = maps:get(N, IdOf),
            Cut = maps:get(isolated, S, none),
            case From =:= Cut orelse To =:= Cut of
                true -> hd_deliver(Nodes, IdOf, S);  % dropped
                false ->
                    ok = muxraft:step(maps:get(To, Nodes), From, Frame),
                    Key = {case Liveness of true -> liveness; false -> bulk end, From},
                    hd_deliver(Nodes, IdOf, maps:update_with(Key, fun(X) -> X + 1 end, 1, S))
            end;
        {muxraft, N, {applied, G, I, D}} ->
            Key = {applied, maps:get(N, IdOf), G},
            hd_deliver(Nodes, IdOf, maps:update_with(Key, fun(L) -> L ++ [{I, D}] end, [{I, D}], S));
        {muxraft, N, {restore, G, I, D}} ->
            %% With how many entries the node had applied when it came.
            Id = maps:get(N, IdOf),
            R = {I, D, length(maps:get({applied, Id, G}, S, []))},
            hd_deliver(Nodes, IdOf, maps:update_with({restore, Id, G}, fun(L) -> L ++ [R] end, [R], S));
        {muxraft, N, {role, G, Role, Term, Leader}} ->
            Id = maps:get(N, IdOf),
            Roles = maps:update_with({roles, Id}, fun(L) -> L ++ [{G, Role, Term, Leader}] end,
                                     [{G, Role, Term, Leader}], maps:get(roles, S, #{})),
            hd_deliver(Nodes, IdOf, S#{roles => Roles});
        {muxraft, N, {proposal, P, ok, I}} ->
            Key = {committed, maps:get(N, IdOf)},
            S1 = maps:update_with(Key, fun(L) -> L ++ [P] end, [P], S),
            hd_deliver(Nodes, IdOf, S1#{{proposal_index, P} => I});
        {muxraft, N, {read, R, ok, I}} ->
            hd_deliver(Nodes, IdOf, hd_read(maps:get(N, IdOf), R, {ok, I}, S));
        {muxraft, N, {read, R, {error, Reason}}} ->
            hd_deliver(Nodes, IdOf, hd_read(maps:get(N, IdOf), R, {error, Reason}, S));
        {muxraft, N, {members_changed, G, I, Members}} when is_list(Members) ->
            Key = {members, maps:get(N, IdOf), G},
            hd_deliver(Nodes, IdOf,
                       maps:update_with(Key, fun(L) -> L ++ [{I, Members}] end,
                                        [{I, Members}], S))
    after 0 ->
            S
    end.

%% A read outcome of node Id, in order, with the indexes of the entries the
%% node had applied, per group, when it came: {reads, Id} => [{R, Outcome,
%% #{G => [Index]}}].
hd_read(Id, R, Outcome, S) ->
    Applied = maps:from_list([{G, [I || {I, _} <- L]} || {{applied, Id2, G}, L} <- maps:to_list(S),
                                                         Id2 =:= Id]),
    maps:update_with({reads, Id}, fun(L) -> L ++ [{R, Outcome, Applied}] end,
                     [{R, Outcome, Applied}], S).

%% Tick until Pred(S) holds, at most Max ticks; the state then.
hd_ticks_until_s(Nodes, IdOf, S, Pred, Max) ->
    case Pred(S) of
        true -> S;
        false when Max =:= 0 -> error({timeout, S});
        false -> hd_ticks_until_s(Nodes, IdOf, hd_ticks(Nodes, IdOf, S, 1), Pred, Max - 1)
    end.

%% The node id that leads group G, if exactly one does.
hd_leader(Nodes, G) ->
    case [Id || {Id, N} <- maps:to_list(Nodes),
                {ok, #{role := leader}} <- [muxraft:group_status(N, G)]] of
        [L] -> L;
        _ -> none
    end.

temp_dir() ->
    case os:getenv("TMPDIR") of
        false -> "/tmp";
        "" -> "/tmp";
        T -> T
    end.

rm_rf(Dir) ->
    case file:list_dir(Dir) of
        {ok, Names} ->
            [rm_rf(filename:join(Dir, N)) || N <- Names],
            file:del_dir(Dir);
        {error, enotdir} ->
            file:delete(Dir);
        {error, _} ->
            ok
    end.

%% ---------------------------------------------------------------------------
%% Owners: one process per node, which started it and collects its events.

start_embedded_cluster(ClusterId, Ids, Extra) ->
    Ports = free_ports(length(Ids)),
    Addr = fun(P) -> "127.0.0.1:" ++ integer_to_list(P) end,
    All = lists:zip(Ids, Ports),
    [start_owner(maps:merge(#{node_id => Id, cluster_id => ClusterId,
                              tick_ms => 20, listen => Addr(Port),
                              peers => maps:from_list([{I, Addr(P)} || {I, P} <- All, I =/= Id])},
                            Extra),
                 #{})
     || {Id, Port} <- All].

%% Owner options: tick_ms => T makes the owner drive a host-driven node.
start_owner(Opts, OwnerOpts) ->
    Test = self(),
    Pid = spawn_link(fun() ->
                             {ok, N} = muxraft:start_node(Opts),
                             Test ! {owner_started, self(), N},
                             case OwnerOpts of
                                 #{tick_ms := T} -> erlang:send_after(T, self(), {tick, T});
                                 _ -> ok
                             end,
                             owner_loop(#{node => N, id => maps:get(node_id, Opts),
                                          test => Test, peers => #{},
                                          applied => #{}, roles => #{}, outcomes => #{}})
                     end),
    receive {owner_started, Pid, _} -> Pid after ?WAIT_MS -> error(owner_not_started) end.

owner_loop(#{node := N, test := Test} = S) ->
    receive
        {muxraft, N, Event} ->
            S1 = event(Event, S),
            Test ! {changed, self()},
            owner_loop(S1);
        {frame, From, Frame} ->
            ok = muxraft:step(N, From, Frame),
            owner_loop(S);
        {tick, T} ->
            ok = muxraft:tick(N),
            erlang:send_after(T, self(), {tick, T}),
            owner_loop(S);
        {peers, Peers} ->
            owner_loop(S#{peers := Peers});
        {call, From, Ref, Fun} ->
            From ! {Ref, Fun(N, S)},
            owner_loop(S);
        {stop, From, Ref} ->
            ok = muxraft:stop_node(N),
            From ! {Ref, ok}
    end.

event({applied, G, I, D}, #{applied := A} = S) ->
    S#{applied := maps:update_with(G, fun(L) -> [{I, D} | L] end, [{I, D}], A)};
event({role, G, Role, Term, Leader}, #{roles := R} = S) ->
    S#{roles := R#{G => {Role, Term, Leader}}};
event({proposal, Id, ok, I}, S) ->
    outcome(Id, {ok, I}, S);
event({proposal, Id, {error, Reason}}, S) ->
    outcome(Id, {error, Reason}, S);
event({read, Id, ok, I}, S) ->
    outcome({read, Id}, {ok, I}, S);
event({read, Id, {error, Reason}}, S) ->
    outcome({read, Id}, {error, Reason}, S);
event({members_changed, G, I, Members}, S) when is_list(Members) ->
    outcome({members, G}, {I, Members}, S);
event({send, To, Frame, Liveness}, #{peers := Peers, id := Me} = S) when is_boolean(Liveness) ->
    maps:get(To, Peers) ! {frame, Me, Frame},
    S.

outcome(Id, O, #{outcomes := Os} = S) ->
    S#{outcomes := maps:update_with(Id, fun(L) -> L ++ [O] end, [O], Os)}.

call(Owner, Fun) when is_function(Fun, 1) ->
    call_state(Owner, fun(N, _S) -> Fun(N) end).

call_state(Owner, Fun) ->
    Ref = make_ref(),
    Owner ! {call, self(), Ref, Fun},
    receive {Ref, R} -> R after ?WAIT_MS -> error({owner_timeout, Owner}) end.

node_of(Owner) -> call(Owner, fun(N) -> N end).

applied(Owner, G) ->
    call_state(Owner, fun(_, #{applied := A}) -> lists:reverse(maps:get(G, A, [])) end).

outcomes(Owner, Id) ->
    maps:get(Id, outcomes_all(Owner), []).

outcomes_all(Owner) ->
    call_state(Owner, fun(_, #{outcomes := Os}) -> Os end).

roles(Owner) ->
    call_state(Owner, fun(_, #{roles := R}) -> R end).

stop_owners(Owners) ->
    [begin
         Ref = make_ref(),
         O ! {stop, self(), Ref},
         receive {Ref, ok} -> ok after ?WAIT_MS -> error({stop_timeout, O}) end
     end || O <- Owners],
    flush().

%% ---------------------------------------------------------------------------
%% Cluster checks

entry(G, K) ->
    <<"group-", (integer_to_binary(G))/binary, "-entry-", (integer_to_binary(K))/binary>>.

%% #{Group => LeaderId} once, for every group, every owner names the same
%% leader in the same term and that node says it leads.
wait_leaders(Owners, Groups) ->
    Leaders = fun() ->
                      Views = [roles(O) || O <- Owners],
                      agreed_leaders(Views, Groups)
              end,
    wait_until(fun() -> maps:size(Leaders()) =:= length(Groups) end),
    Leaders().

agreed_leaders(Views, Groups) ->
    maps:from_list(
      [{G, L} || G <- Groups,
                 {ok, L} <- [agreed_leader([maps:get(G, V, none) || V <- Views])]]).

agreed_leader([{_, Term, L} | _] = Vs) when L > 0, L =< length(Vs) ->
    Same = lists:all(fun({_, T, L2}) -> T =:= Term andalso L2 =:= L; (none) -> false end, Vs),
    case Same andalso element(1, lists:nth(L, Vs)) =:= leader of
        true -> {ok, L};
        false -> none
    end;
agreed_leader(_) ->
    none.

leader_node(Owners, Leaders, G) ->
    node_of(lists:nth(maps:get(G, Leaders), Owners)).

propose_ok(Node, G, Data) ->
    {ok, Id} = muxraft:propose(Node, G, Data),
    Id.

all_applied(Owners, Groups, PerGroup) ->
    lists:all(fun(O) ->
                      A = call_state(O, fun(_, #{applied := A}) -> A end),
                      lists:all(fun(G) -> length(maps:get(G, A, [])) >= PerGroup end, Groups)
              end, Owners).

%% Every node applied exactly the group's entries, in proposal order, at
%% increasing indexes, and all nodes agree on (index, data).
check_logs(Owners, Groups, PerGroup) ->
    [begin
         Logs = [applied(O, G) || O <- Owners],
         Expected = [entry(G, K) || K <- lists:seq(1, PerGroup)],
         [?assertEqual(Expected, [D || {_, D} <- Log]) || Log <- Logs],
         [?assertEqual(lists:usort([I || {I, _} <- Log]), [I || {I, _} <- Log]) || Log <- Logs],
         [First | Rest] = Logs,
         [?assertEqual(First, Log) || Log <- Rest]
     end || G <- Groups],
    ok.

%% ---------------------------------------------------------------------------
%% Helpers

%% Tick a host-driven node until it leads group G.
lead(N, G) ->
    ok = poll(fun() ->
                      ok = muxraft:tick(N),
                      case muxraft:group_status(N, G) of
                          {ok, #{role := leader}} -> true;
                          _ -> false
                      end
              end, 1000, 0).

%% Re-check Pred whenever an owner reports a change, until it holds.
wait_until(Pred) ->
    wait_until(Pred, erlang:monotonic_time(millisecond) + ?WAIT_MS).

wait_until(Pred, Deadline) ->
    flush_changed(),
    case Pred() of
        true ->
            ok;
        false ->
            Left = Deadline - erlang:monotonic_time(millisecond),
            Left > 0 orelse error(wait_timeout),
            receive
                {changed, _} -> wait_until(Pred, Deadline)
            after Left ->
                    case Pred() of
                        true -> ok;
                        false -> error(wait_timeout)
                    end
            end
    end.

flush_changed() ->
    receive {changed, _} -> flush_changed() after 0 -> ok end.

flush() ->
    receive _ -> flush() after 0 -> ok end.

poll(_Pred, 0, _SleepMs) ->
    error(poll_timeout);
poll(Pred, Tries, SleepMs) ->
    case Pred() of
        true -> ok;
        false -> timer:sleep(SleepMs), poll(Pred, Tries - 1, SleepMs)
    end.

%% Ports free right now on 127.0.0.1.
free_ports(K) ->
    Socks = [begin {ok, S} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]), S end
             || _ <- lists:seq(1, K)],
    Ports = [begin {ok, P} = inet:port(S), P end || S <- Socks],
    [gen_tcp:close(S) || S <- Socks],
    Ports.

%% This VM's threads whose name (/proc/self/task/*/comm) is one of Names.
threads_named(Names) ->
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    [Name || T <- Tasks,
             {ok, Comm} <- [file:read_file(filename:join(["/proc/self/task", T, "comm"]))],
             Name <- [string:trim(Comm)],
             lists:member(Name, Names)].

%% Deterministic pseudo-random bytes (no crypto application needed).
crypto_free_random(N) ->
    rand:seed(exsss, {N, 7, 11}),
    << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N) >>.

%% A test certificate of the repository's tests/certs (gen.sh).
cert(Name) ->
    filename:join([filename:dirname(filename:absname(?FILE)), "..", "..", "..",
                   "tests", "certs", Name]).
