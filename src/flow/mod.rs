//! Flows: guest traffic translated to host sockets and back. One file per
//! protocol ([`icmp`] today; TCP and UDP follow), plus the forwarding and
//! NAT decisions they share ([`nat`]).
//!
//! Invariants: every table here has a fixed capacity chosen at start-up;
//! nothing grows with guest input. Flows never parse frames themselves
//! beyond the views `wire` gives them.
//! May call: `sys`/rustix (sockets), `wire`, `event` (registration), `conf`.

pub mod icmp;
pub mod nat;
pub mod table;

/// Per-protocol state kept in a flow's slot: one table for every protocol,
/// so they share its capacity.
pub enum FlowState {
    Ping(icmp::PingState),
}

/// The flow table as the engine instantiates it.
pub type Flows = table::FlowTable<FlowState>;
