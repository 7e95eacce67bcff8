//! Fuzzes the engine's guest-frame dispatcher end to end: classification,
//! every local service, and the echo path, with replies written to a
//! detached link. The process first moves into an empty network namespace
//! of its own (no interfaces, no routes: root is needed, as for the tests),
//! so an echo request the fuzzer makes up can never leave the machine.
//! Guest UDP datagrams (other than to the DHCP servers) now reach the UDP
//! flows too: their sockets are created in that empty namespace, so the
//! connect to the translated destination fails (no route) or the datagram
//! goes nowhere; nothing leaves the machine either.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::{Mode, fixture};
use passt_rs::engine::Engine;
use passt_rs::event::EventLoop;
use passt_rs::link::Link;

struct World {
    engine: Engine,
    events: EventLoop,
}

thread_local! {
    /// libFuzzer calls the target on one thread; the namespace is that
    /// thread's, entered before the engine exists.
    static WORLD: RefCell<World> = RefCell::new(world());
}

fn world() -> World {
    passt_rs::sys::ns::unshare_net_thread().expect("an empty network namespace (run as root)");
    let config = fixture::config(Mode::Passt, &[]);
    World {
        engine: Engine::new(&config, Link::new(None, None)),
        events: EventLoop::new().expect("epoll"),
    }
}

fuzz_target!(|frame: &[u8]| {
    WORLD.with_borrow_mut(|World { engine, events }| engine.handle_guest_frame(frame, events));
});
