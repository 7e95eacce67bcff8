//! passt-rs: user-mode networking for virtual machines (`passt`) and network
//! namespaces (`pasta`).
//!
//! [`run`] is the whole program: parse the command line ([`conf`]), discover
//! the host ([`netlink`]), set up the guest link ([`pasta`] creates or joins
//! the namespace and its tap; [`link`] owns frame I/O), then run the single
//! epoll loop ([`event`]) until the guest goes away. DESIGN.md §3 is the map.
//!
//! Invariant: only [`sys`] contains `unsafe` code.

pub mod conf;
pub mod daemon;
pub mod engine;
pub mod event;
pub mod flow;
pub mod isolation;
pub mod link;
pub mod logging;
pub mod netlink;
pub mod pasta;
pub mod pcap;
pub mod services;
pub mod sys;
pub mod wire;

mod run;

pub use run::main;
