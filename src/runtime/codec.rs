//! Between the node's typed messages and the bytes on the wire: decoding a
//! frame a peer sent and stepping it, encoding what a node hands out. The
//! node's per-kind byte counters are filled here, where the bytes are.

use bytes::Bytes;

use super::error::Error;
use crate::multi::{msg_kind, Body, Envelope, FrameKind, Node};
use crate::raft::MessageType;
use crate::wire::{decode_frame_bytes, encode_frame, encode_groups_frame};

/// An encoded frame for node `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFrame {
    pub to: u64,
    pub kind: FrameKind,
    pub bytes: Bytes,
}

/// Decode `frame` (length prefix included) and step it into `node`.
/// `sender` is the peer the host knows sent it, if it knows; a frame
/// claiming another sender is refused. A frame that cannot be trusted
/// (malformed, too large, another cluster, another destination) is refused
/// whole and counted in the node's stats. (The runtime decodes before it
/// takes the node's lock, and calls the two halves itself.)
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn step_frame(
    node: &mut Node,
    max_frame_bytes: usize,
    sender: Option<u64>,
    frame: Bytes,
) -> Result<(), Error> {
    let cluster_id = node.config().cluster_id;
    match decode_checked(cluster_id, max_frame_bytes, sender, frame) {
        Ok(d) => step_decoded(node, d),
        Err(e) => {
            node.record_rejected();
            Err(e)
        }
    }
}

/// A frame decoded and checked by [`decode_checked`], to be stepped by
/// [`step_decoded`].
pub(crate) struct Checked {
    env: Envelope,
    /// The frame's bytes, length prefix included.
    len: usize,
}

impl Checked {
    /// Is this frame on the data path: appends and their answers, alone or
    /// packed (what the embedded writer steps right before its next pass;
    /// everything else, heartbeats, votes and snapshots, goes to the node
    /// thread).
    pub(crate) fn is_bulk(&self) -> bool {
        matches!(self.env.body, Body::Groups(_)) || packable(&self.env)
    }
}

/// The first half of [`step_frame`], which needs no node: decode `frame`
/// and check that it belongs to cluster `cluster_id` and comes from
/// `sender` (if known). A caller that holds the node's lock only to step
/// decodes first, so that a frame of a thousand groups' appends does not
/// keep the node from its pass while it is parsed. An error is a refusal
/// the caller counts ([`Node::record_rejected`]).
pub(crate) fn decode_checked(
    cluster_id: u64,
    max_frame_bytes: usize,
    sender: Option<u64>,
    frame: Bytes,
) -> Result<Checked, Error> {
    let len = frame.len();
    let f = decode_frame_bytes(frame, max_frame_bytes).map_err(Error::Wire)?;
    if f.cluster_id != cluster_id {
        return Err(Error::WrongCluster {
            expected: cluster_id,
            got: f.cluster_id,
        });
    }
    if let Some(sender) = sender.filter(|&s| s != f.envelope.from) {
        return Err(Error::WrongSender {
            claimed: f.envelope.from,
            sender,
        });
    }
    Ok(Checked {
        env: f.envelope,
        len,
    })
}

/// The second half of [`step_frame`]: step a checked frame into `node`
/// and count its bytes by kind.
pub(crate) fn step_decoded(node: &mut Node, checked: Checked) -> Result<(), Error> {
    let Checked { env, len } = checked;
    // Per kind, this frame's bytes, counted once it is stepped (an array,
    // not a list: every frame of an idle node would allocate one).
    let mut shares = [0usize; FrameKind::COUNT];
    share_bytes(&env.body, len, |kind, n| shares[kind as usize] += n);
    node.step(env)?;
    for (kind, n) in FrameKind::ALL.into_iter().zip(shares) {
        if n > 0 {
            node.record_bytes_received(kind, n);
        }
    }
    Ok(())
}

/// Splits the `len` bytes of a frame carrying `body` among the kinds of
/// the messages in it: all to its kind, or for [`Body::Groups`] evenly per
/// message (the remainder to the first), so that per-kind byte counters
/// add up to the bytes on the wire.
fn share_bytes(body: &Body, len: usize, mut f: impl FnMut(FrameKind, usize)) {
    match body {
        Body::Groups(msgs) if !msgs.is_empty() => {
            let each = len / msgs.len();
            for (i, m) in msgs.iter().enumerate() {
                let extra = if i == 0 { len % msgs.len() } else { 0 };
                f(msg_kind(&m.msg), each + extra);
            }
        }
        _ => f(body.kind(), len),
    }
}

/// Group messages packed into one frame stop at about this many bytes (a
/// larger message goes alone): well under the default frame limit, and
/// small enough that a frame does not hold a peer's connection long.
pub(crate) const PACK_BYTES: usize = 256 << 10;

/// May `env` share a frame with other groups' messages? Appends and their
/// answers, the data path; votes and naive heartbeats keep a frame each
/// (heartbeats travel in the priority lane).
fn packable(env: &Envelope) -> bool {
    matches!(
        &env.body,
        Body::Group { msg, .. }
            if matches!(msg.msg_type, MessageType::Append | MessageType::AppendResponse)
    )
}

/// About how many bytes `env` takes in a frame (enough to bound a pack).
fn approx_len(env: &Envelope) -> usize {
    match &env.body {
        Body::Group { msg, .. } => {
            64 + msg.entries.iter().map(|e| 24 + e.data.len()).sum::<usize>()
        }
        _ => 0,
    }
}

/// Encode everything one pass of a node of cluster `cluster_id` sends, in
/// order, adding each frame's bytes to `bytes` by kind (as
/// [`share_bytes`]). The appends and append answers for one peer share
/// frames ([`Body::Groups`], up to [`PACK_BYTES`] each): a node answering
/// a thousand groups' appends sends one frame, not a thousand. A pack
/// takes the place of its first message in the order, so a group's
/// appends keep theirs; a vote may pass a packed append (Raft is correct
/// whatever the order its messages arrive in).
pub(crate) fn encode_all(
    cluster_id: u64,
    envs: &[Envelope],
    bytes: &mut [usize; FrameKind::COUNT],
) -> Vec<OutFrame> {
    // Per peer: the messages of its open pack and their approximate bytes.
    struct Pack<'a> {
        to: u64,
        slot: usize,
        msgs: Vec<&'a Envelope>,
        len: usize,
    }
    let mut out: Vec<Option<OutFrame>> = Vec::with_capacity(envs.len());
    let mut packs: Vec<Pack> = Vec::new();
    let close =
        |p: Pack, out: &mut Vec<Option<OutFrame>>, bytes: &mut [usize; FrameKind::COUNT]| {
            let f = if let [one] = p.msgs[..] {
                encode_only(cluster_id, one)
            } else {
                let from = p.msgs[0].from;
                let frame = encode_groups_frame(cluster_id, from, p.to, &p.msgs);
                OutFrame {
                    to: p.to,
                    kind: p.msgs[0].body.kind(),
                    bytes: frame,
                }
            };
            let n = p.msgs.len();
            let (each, rest) = (f.bytes.len() / n, f.bytes.len() % n);
            for (i, m) in p.msgs.iter().enumerate() {
                bytes[m.body.kind() as usize] += each + if i == 0 { rest } else { 0 };
            }
            out[p.slot] = Some(f);
        };
    for env in envs {
        if !packable(env) {
            let f = encode_only(cluster_id, env);
            bytes[f.kind as usize] += f.bytes.len();
            out.push(Some(f));
            continue;
        }
        let len = approx_len(env);
        let at = match packs.iter().position(|p| p.to == env.to) {
            Some(i) if packs[i].len + len > PACK_BYTES => {
                let full = packs.swap_remove(i);
                close(full, &mut out, bytes);
                None
            }
            found => found,
        };
        let i = at.unwrap_or_else(|| {
            out.push(None);
            packs.push(Pack {
                to: env.to,
                slot: out.len() - 1,
                msgs: Vec::new(),
                len: 0,
            });
            packs.len() - 1
        });
        packs[i].msgs.push(env);
        packs[i].len += len;
    }
    for p in packs {
        close(p, &mut out, bytes);
    }
    out.into_iter().flatten().collect()
}

/// Encode the messages `node` handed out in one pass, as the drive loop
/// does ([`encode_all`]), counting their bytes.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn encode(node: &mut Node, envs: &[Envelope]) -> Vec<OutFrame> {
    let mut bytes = [0usize; FrameKind::COUNT];
    let out = encode_all(node.config().cluster_id, envs, &mut bytes);
    for kind in FrameKind::ALL {
        if bytes[kind as usize] > 0 {
            node.record_bytes_sent(kind, bytes[kind as usize]);
        }
    }
    out
}

/// Encode a message of cluster `cluster_id` without counting it (for
/// callers that count later, outside the node's lock).
pub(crate) fn encode_only(cluster_id: u64, env: &Envelope) -> OutFrame {
    OutFrame {
        to: env.to,
        kind: env.body.kind(),
        bytes: encode_frame(cluster_id, env),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::NodeConfig;
    use crate::raft::{Entry, EntryKind, Message};

    fn group_msg(group_id: u64, to: u64, msg_type: MessageType, payload: usize) -> Envelope {
        let entries = (payload > 0)
            .then(|| Entry {
                term: 1,
                index: 1,
                kind: EntryKind::Normal,
                data: Bytes::from(vec![7u8; payload]),
            })
            .into_iter()
            .collect();
        Envelope {
            from: 1,
            to,
            body: Body::Group {
                group_id,
                incarnation: 1,
                msg: Message {
                    entries,
                    ..Message::new(msg_type, 1, to, 1)
                },
            },
        }
    }

    fn bodies(frames: &[OutFrame]) -> Vec<(u64, usize)> {
        frames
            .iter()
            .map(|f| {
                let env = crate::wire::decode_frame(&f.bytes, usize::MAX)
                    .unwrap()
                    .envelope;
                let n = match env.body {
                    Body::Groups(m) => m.len(),
                    _ => 1,
                };
                (env.to, n)
            })
            .collect()
    }

    #[test]
    fn a_pass_packs_each_peers_appends_and_answers_into_one_frame() {
        let mut envs = Vec::new();
        for g in 1..=50 {
            envs.push(group_msg(g, 2, MessageType::Append, 16));
            envs.push(group_msg(g, 3, MessageType::AppendResponse, 0));
        }
        // A vote keeps a frame of its own, in its place.
        envs.insert(3, group_msg(9, 2, MessageType::Vote, 0));
        let mut bytes = [0; FrameKind::COUNT];
        let frames = encode_all(7, &envs, &mut bytes);
        assert_eq!(bodies(&frames), [(2, 50), (3, 50), (2, 1)]);
        // Per-kind bytes add up to the bytes on the wire.
        let total: usize = frames.iter().map(|f| f.bytes.len()).sum();
        assert_eq!(bytes.iter().sum::<usize>(), total);
        assert!(bytes[FrameKind::Vote as usize] > 0);
        assert!(bytes[FrameKind::AppendResponse as usize] > 0);
        // One message alone is the plain group frame, byte for byte.
        let one = encode_all(7, &envs[..1], &mut bytes);
        assert_eq!(one[0].bytes, encode_only(7, &envs[0]).bytes);
    }

    #[test]
    fn a_pack_stops_at_its_size_and_a_large_append_goes_alone() {
        let envs: Vec<Envelope> = (1..=5)
            .map(|g| group_msg(g, 2, MessageType::Append, PACK_BYTES / 3))
            .chain([group_msg(6, 2, MessageType::Append, 2 * PACK_BYTES)])
            .collect();
        let frames = encode_all(7, &envs, &mut [0; FrameKind::COUNT]);
        assert_eq!(bodies(&frames), [(2, 2), (2, 2), (2, 1), (2, 1)]);
        assert!(frames.iter().all(|f| f.bytes.len() < 3 * PACK_BYTES));
    }

    // The embedded transport routes by this: appends and their answers to
    // the writer, everything else (heartbeats above all) to the node
    // thread, which never waits for the disk.
    #[test]
    fn only_appends_and_their_answers_alone_or_packed_are_bulk() {
        let checked = |env: &Envelope| {
            let frame = encode_only(7, env).bytes;
            decode_checked(7, usize::MAX, Some(1), frame).unwrap()
        };
        for t in [MessageType::Append, MessageType::AppendResponse] {
            assert!(checked(&group_msg(1, 2, t, 0)).is_bulk(), "{t:?}");
        }
        for t in [
            MessageType::Vote,
            MessageType::VoteResponse,
            MessageType::PreVote,
            MessageType::PreVoteResponse,
            MessageType::Heartbeat,
            MessageType::HeartbeatResponse,
            MessageType::TimeoutNow,
        ] {
            assert!(!checked(&group_msg(1, 2, t, 0)).is_bulk(), "{t:?}");
        }
        let pack: Vec<Envelope> = (1..=3)
            .map(|g| group_msg(g, 2, MessageType::Append, 16))
            .collect();
        let frames = encode_all(7, &pack, &mut [0; FrameKind::COUNT]);
        let packed = decode_checked(7, usize::MAX, Some(1), frames[0].bytes.clone()).unwrap();
        assert!(matches!(packed.env.body, Body::Groups(_)) && packed.is_bulk());
        let batch = Envelope {
            from: 1,
            to: 2,
            body: Body::HeartbeatBatch(Default::default()),
        };
        assert!(!checked(&batch).is_bulk());
    }

    #[test]
    fn stepping_a_packed_frame_steps_every_group_and_counts_each_message() {
        let mut node = Node::new(NodeConfig::new(2)).unwrap();
        for g in 1..=3 {
            node.create_group(g, 1, &[1, 2, 3]).unwrap();
        }
        let envs: Vec<Envelope> = (1..=3)
            .map(|g| group_msg(g, 2, MessageType::Append, 16))
            .collect();
        let frames = encode_all(0, &envs, &mut [0; FrameKind::COUNT]);
        assert_eq!(frames.len(), 1);
        let len = frames[0].bytes.len();
        step_frame(&mut node, usize::MAX, Some(1), frames[0].bytes.clone()).unwrap();
        for g in 1..=3 {
            assert_eq!(node.group_status(g).unwrap().last_index, 1, "group {g}");
        }
        let got = node.stats().received_of(FrameKind::Append);
        assert_eq!((got.messages, got.bytes), (3, len as u64));
    }
}
