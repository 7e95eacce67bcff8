//! Test support shared by the flow modules' tests: running a closure in a
//! private network namespace, where sockets cannot reach anything real.

/// Runs `f` on a thread of its own in a fresh network namespace with `lo`
/// up (needs root).
pub fn in_private_netns(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::sys::ns::unshare_net_thread().expect("unshare");
            let mut nl = crate::netlink::Netlink::open().unwrap();
            let lo = nl.link_index("lo").unwrap().unwrap();
            nl.set_link_up(lo).unwrap();
            f();
        })
        .join()
        .unwrap();
    });
}
