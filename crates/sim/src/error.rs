//! Why a simulation run failed: an engine broke an invariant or a protocol rule seen from
//! outside, or the run hit one of its bounds. One enum for the crate.

use std::time::Duration;

use bitswarm_engine::InvariantViolation;

/// Why a run failed. Every variant that concerns a node names it by index.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The engine's own consistency check failed.
    #[error("node {node} at {at:?}: engine invariant broken: {violation}")]
    Invariant {
        /// The node.
        node: usize,
        /// Virtual time.
        at: Duration,
        /// What the engine reported.
        #[source]
        violation: InvariantViolation,
    },
    /// A `Have`, `HaveAll` or `Bitfield` claimed a piece whose check had not passed.
    #[error("node {node} announced piece {piece} before it verified")]
    HaveBeforeVerified {
        /// The node.
        node: usize,
        /// The piece (0 for a whole-bitfield mismatch).
        piece: u32,
    },
    /// A request for a piece the requester already has.
    #[error("node {node} requested piece {piece}, which it has")]
    RequestForPieceWeHave {
        /// The node.
        node: usize,
        /// The piece.
        piece: u32,
    },
    /// A request for a piece the peer never announced.
    #[error("node {node} requested piece {piece} from node {peer}, which lacks it")]
    RequestForPiecePeerLacks {
        /// The requester.
        node: usize,
        /// The peer asked.
        peer: usize,
        /// The piece.
        piece: u32,
    },
    /// A block served from a piece the server has not verified.
    #[error("node {node} served piece {piece}, which it has not verified")]
    ServeUnverified {
        /// The node.
        node: usize,
        /// The piece.
        piece: u32,
    },
    /// A block to store or serve that is not one of the torrent's 16 KiB blocks.
    #[error("node {node}: block {piece}/{offset} (+{length}) is not a block of the torrent")]
    BadBlock {
        /// The node.
        node: usize,
        /// The piece.
        piece: u32,
        /// The offset in the piece.
        offset: u32,
        /// The length.
        length: u32,
    },
    /// More peers unchoked (by the node's own messages) than its slots plus one optimistic.
    #[error("node {node} has {unchoked} peers unchoked, more than its slots allow")]
    UnchokeSlotsExceeded {
        /// The node.
        node: usize,
        /// Peers it has unchoked and not choked since.
        unchoked: usize,
    },
    /// An engine emitted more actions in one step than
    /// [`ACTIONS_PER_STEP_MAX`](crate::ACTIONS_PER_STEP_MAX).
    #[error("node {node} emitted more than the action limit in one step")]
    ActionFlood {
        /// The node.
        node: usize,
    },
    /// The wire codec did not give back the message the engine sent.
    #[error("node {node}: the wire codec changed or refused a message: {message}")]
    WireRoundTrip {
        /// The sender.
        node: usize,
        /// The message as the engine emitted it (debug form).
        message: String,
    },
    /// The run took `SimSpec::steps_max` steps.
    #[error("step limit reached after {steps} steps")]
    StepLimit {
        /// Steps taken.
        steps: u64,
    },
    /// The next thing to happen lies past `SimSpec::time_max`.
    #[error("virtual time limit reached at {at:?}")]
    TimeLimit {
        /// Virtual time when the run stopped.
        at: Duration,
    },
    /// Nothing is scheduled and no engine wants a timer: nothing can ever happen again.
    #[error("nothing left to happen at {at:?}")]
    Stalled {
        /// Virtual time.
        at: Duration,
    },
}
