//! Route netlink (`NETLINK_ROUTE`): reading the host's links, addresses and
//! routes, and configuring pasta's tap inside the namespace
//! (`--config-net`).
//!
//! [`Netlink`] is one synchronous socket. It belongs to the network namespace
//! of the thread that opened it, for its whole life: open one in the init
//! namespace for discovery ([`discover_host`]) and one on a thread that has
//! entered the target namespace for set-up (`crate::sys::ns::enter`); either
//! may then be used from any thread.
//!
//! Why `netlink-packet-route`: rtnetlink messages are nested TLVs with many
//! per-family and per-kind layouts (links, addresses, routes, multipath
//! nexthops, link kinds). The crate is what podman's netavark and the
//! rtnetlink crates use; it parses and emits all of them with bounds checks,
//! so this module only frames requests, matches replies and converts to the
//! plain data of `crate::conf::host`. `netlink-sys` gives a safe socket.
//!
//! Invariants:
//! - One request in flight. Each gets a fresh sequence number; replies with
//!   another number (late answers to an earlier request) are skipped.
//! - Replies are read into one fixed 64 KiB buffer (upstream's size); a
//!   larger datagram is an error, never a reallocation. A reply that does not arrive within a few seconds is an
//!   error, never a hang.
//! - Nothing the kernel sends can panic: frames are length-checked, a
//!   message the parser rejects is skipped (logged at debug level), an
//!   `NLMSG_ERROR` becomes an [`std::io::Error`] carrying its errno, so that
//!   callers can match on it (the kernel's extended-ack text, when there is
//!   one, goes to the debug log).
//! - Dumps interrupted by a concurrent change (`NLM_F_DUMP_INTR`) are
//!   restarted a few times, then reported.
//!
//! Link-up for the tap, decided from upstream (REFERENCE §1.8): with IPv6,
//! [`Netlink::set_link_up_without_dad`] brings the link up with `IFF_NOARP`
//! set, which makes the kernel skip duplicate address detection for the
//! link-local address it creates at that moment; it then re-adds that
//! address with `IFA_F_NODAD` and clears `IFF_NOARP` so that neighbour
//! discovery works as usual. Both are needed: the kernel decides in a work
//! item that may run hundreds of milliseconds later (it waits for the RTNL
//! lock; seen in the tests), when `IFF_NOARP` may already be gone. The
//! address is created at link-up only if the link has a carrier: pasta
//! opens the tap's fd first. Every address added with [`Netlink::add_addr`]
//! is `IFA_F_NODAD` too, so the namespace's addresses are usable at once.
//! Without IPv6, plain [`Netlink::set_link_up`]. Routes are added with
//! [`Netlink::copy_routes`], which orders them so that each gateway is
//! reachable when its route goes in.
//!
//! Neighbours: `crate::conf` calls [`discover_host`] and resolves defaults
//! from the [`HostNet`] it returns; `crate::pasta` configures the tap with
//! the setters; `crate::sys::ns` moves threads between namespaces.

mod configure;
mod query;
mod socket;

#[cfg(test)]
mod tests;

use std::io;

use crate::conf::host::HostNet;

pub use socket::Netlink;

/// Reads the links, addresses and main-table routes of the calling
/// thread's network namespace. Nameservers, search domains and the
/// ephemeral port range are left empty: `crate::conf` fills them.
pub fn discover_host() -> io::Result<HostNet> {
    let mut netlink = Netlink::open()?;
    Ok(HostNet {
        links: netlink.links()?,
        addrs: netlink.addrs()?,
        routes: netlink.routes()?,
        ..HostNet::default()
    })
}
