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
