%% A three-node muxraft cluster in one Erlang VM, on loopback: 100 Raft
%% groups (think: 100 quorum queues), each replicated on the three nodes.
%% Each node is owned by its own process, which receives the node's events.
-module(muxraft_example).
-export([main/0, main/1]).

-define(GROUPS, 100).

main() -> main(27400).

main(BasePort) ->
    Ids = [1, 2, 3],
    Addrs = maps:from_list([{Id, "127.0.0.1:" ++ integer_to_list(BasePort + Id)} || Id <- Ids]),
    Self = self(),
    Owners = [spawn_link(fun() -> replica(Self, Id, Addrs) end) || Id <- Ids],
    %% Wait until group 1 has a leader, then propose through it.
    {Leader, LeaderNode} = receive {leader, 1, L, N} -> {L, N} end,
    io:format("node ~p leads group 1~n", [Leader]),
    Msgs = [<<"enqueue:a">>, <<"enqueue:b">>, <<"dequeue">>],
    [{ok, _ProposalId} = muxraft:propose(LeaderNode, 1, M) || M <- Msgs],
    %% Every replica applies the three entries, in order.
    [receive {applied, Id, 1, _Index, M} -> ok end || Id <- Ids, M <- Msgs],
    io:format("all 3 replicas applied ~p~n", [Msgs]),
    %% Heartbeats: one batch per peer per interval, whatever the number of
    %% groups (1 s = 10 intervals of 2 ticks of 50 ms).
    timer:sleep(1000),
    #{heartbeat_batches_sent := Batches, group_heartbeats_batched := Carried} =
        muxraft:stats(LeaderNode),
    io:format("node ~p sent ~p heartbeat batches carrying ~p group heartbeats~n",
              [Leader, Batches, Carried]),
    [begin Owner ! {stop, self()}, receive {stopped, Owner} -> ok end end || Owner <- Owners],
    ok.

%% The process owning one node: starts it, creates the groups, and turns the
%% node's messages into what this example waits for.
replica(Parent, Id, Addrs) ->
    {ok, Node} = muxraft:start_node(#{node_id => Id,
                                      cluster_id => 1,
                                      listen => maps:get(Id, Addrs),
                                      peers => maps:remove(Id, Addrs)}),
    [ok = muxraft:create_group(Node, G, 1, maps:keys(Addrs)) || G <- lists:seq(1, ?GROUPS)],
    replica_loop(Parent, Id, Node).

replica_loop(Parent, Id, Node) ->
    receive
        {muxraft, Node, {applied, Group, Index, Data}} ->
            Parent ! {applied, Id, Group, Index, Data};
        {muxraft, Node, {role, Group, leader, _Term, Id}} ->
            Parent ! {leader, Group, Id, Node};
        {muxraft, Node, {role, _Group, _Role, _Term, _Leader}} ->
            ok;
        {muxraft, Node, {proposal, _ProposalId, ok, _Index}} ->
            ok;
        {muxraft, Node, {proposal, ProposalId, {error, Reason}}} ->
            io:format("proposal ~p failed: ~p~n", [ProposalId, Reason]);
        {stop, From} ->
            ok = muxraft:stop_node(Node),
            From ! {stopped, self()},
            exit(normal)
    end,
    replica_loop(Parent, Id, Node).
