//! The epoll loop: the one place the process waits.
//!
//! Every file descriptor the engine watches is registered here with a
//! [`Token`] (what it is + an index into its owner's table), packed into
//! epoll's 64-bit user data, so dispatch needs no lookup. A periodic tick
//! (1 s, upstream's timer granularity) drives timeouts: [`EventLoop::wait`]
//! never sleeps past the next tick, and reports whether the tick is due.
//!
//! Invariants: single-threaded; tokens are plain values (no pointers), so a
//! stale event for a closed fd can at worst name an index its owner checks.
//! May call: rustix's epoll wrappers only.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};

/// Interval of the periodic tick.
pub const TICK: Duration = Duration::from_secs(1);

/// Events reported per `epoll_wait` call.
const EVENTS_PER_WAIT: usize = 64;

/// What a registered fd is. The loop's owner dispatches on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenKind {
    /// The guest link (pasta's tap, passt's stream socket).
    Link = 1,
    /// passt's listening UNIX socket.
    LinkListener = 2,
    /// pidfd of the command pasta spawned.
    ChildExit = 3,
    /// pidfd of the process whose namespaces pasta joined.
    NetnsOwnerExit = 4,
    /// A ping socket of an ICMP echo flow (index: its flow id).
    Icmp = 5,
    /// The host socket of a TCP flow (index: its flow id).
    Tcp = 6,
    /// A `-t` listening socket (index: its place among the listeners).
    TcpListener = 7,
    /// The socket of a UDP flow (index: its flow id).
    Udp = 8,
    /// A `-u` socket (index: its place among the listeners).
    UdpListener = 9,
    /// A `-T` listening socket inside pasta's namespace (index: its place
    /// among the listeners).
    NsTcpListener = 10,
    /// A `-U` socket inside pasta's namespace (index: its place among the
    /// listeners).
    NsUdpListener = 11,
    /// The accepted socket of a spliced TCP connection (index: its flow id).
    SpliceAccepted = 12,
    /// The socket a spliced TCP connection opened toward its target
    /// (index: its flow id).
    SpliceTarget = 13,
}

impl TokenKind {
    /// Whether the fd belongs to a flow or a forwarded port's socket (the
    /// engine's business) rather than to the program's own plumbing.
    pub fn is_flow(self) -> bool {
        !matches!(
            self,
            TokenKind::Link
                | TokenKind::LinkListener
                | TokenKind::ChildExit
                | TokenKind::NetnsOwnerExit
        )
    }

    fn from_u8(v: u8) -> Option<TokenKind> {
        Some(match v {
            1 => TokenKind::Link,
            2 => TokenKind::LinkListener,
            3 => TokenKind::ChildExit,
            4 => TokenKind::NetnsOwnerExit,
            5 => TokenKind::Icmp,
            6 => TokenKind::Tcp,
            7 => TokenKind::TcpListener,
            8 => TokenKind::Udp,
            9 => TokenKind::UdpListener,
            10 => TokenKind::NsTcpListener,
            11 => TokenKind::NsUdpListener,
            12 => TokenKind::SpliceAccepted,
            13 => TokenKind::SpliceTarget,
            _ => return None,
        })
    }
}

/// A registered fd's identity: kind plus an index its owner understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub index: u32,
}

impl Token {
    pub const fn new(kind: TokenKind, index: u32) -> Token {
        Token { kind, index }
    }

    fn pack(self) -> u64 {
        ((self.kind as u64) << 56) | u64::from(self.index)
    }

    fn unpack(v: u64) -> Option<Token> {
        let kind = TokenKind::from_u8((v >> 56) as u8)?;
        Some(Token {
            kind,
            index: v as u32,
        })
    }
}

/// What to wait for on an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
    /// Edge-triggered instead of level-triggered.
    pub edge: bool,
}

impl Interest {
    pub const READ: Interest = Interest {
        readable: true,
        writable: false,
        edge: false,
    };

    fn flags(self) -> EventFlags {
        let mut f = EventFlags::RDHUP;
        if self.readable {
            f |= EventFlags::IN;
        }
        if self.writable {
            f |= EventFlags::OUT;
        }
        if self.edge {
            f |= EventFlags::ET;
        }
        f
    }
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub token: Token,
    pub readable: bool,
    pub writable: bool,
    /// Hang-up or error: the fd's peer is gone (or closed its side).
    pub closed: bool,
    /// An error is pending on the fd (EPOLLERR).
    pub error: bool,
}

/// The epoll instance plus the periodic tick.
pub struct EventLoop {
    epfd: OwnedFd,
    events: Vec<epoll::Event>,
    next_tick: Instant,
}

impl EventLoop {
    pub fn new() -> io::Result<EventLoop> {
        Ok(EventLoop {
            epfd: epoll::create(CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(EVENTS_PER_WAIT),
            next_tick: Instant::now() + TICK,
        })
    }

    pub fn add(&self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        epoll::add(
            &self.epfd,
            fd,
            EventData::new_u64(token.pack()),
            interest.flags(),
        )?;
        Ok(())
    }

    /// Changes what `fd` (registered with `token`) is watched for.
    pub fn modify(&self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        epoll::modify(
            &self.epfd,
            fd,
            EventData::new_u64(token.pack()),
            interest.flags(),
        )?;
        Ok(())
    }

    pub fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epfd, fd)?;
        Ok(())
    }

    /// Waits for events, at most until the next tick. Replaces the contents
    /// of `ready` (a buffer the caller keeps, so the loop allocates nothing)
    /// and returns whether the periodic tick is due (the caller runs its
    /// timers then).
    pub fn wait(&mut self, ready: &mut Vec<Ready>) -> io::Result<bool> {
        let timeout = self.next_tick.saturating_duration_since(Instant::now());
        self.collect(ready, timeout)?;
        let tick_due = Instant::now() >= self.next_tick;
        if tick_due {
            self.next_tick = Instant::now() + TICK;
        }
        Ok(tick_due)
    }

    /// Collects the events already pending, without waiting and without
    /// touching the tick (tests and fuzz targets step the loop with it).
    /// Replaces the contents of `ready` as [`EventLoop::wait`] does.
    pub fn poll(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.collect(ready, Duration::ZERO)
    }

    /// One `epoll_wait` of at most `timeout`; the events go to `ready`.
    fn collect(&mut self, ready: &mut Vec<Ready>, timeout: Duration) -> io::Result<()> {
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        self.events.clear();
        match epoll::wait(
            &self.epfd,
            rustix::buffer::spare_capacity(&mut self.events),
            Some(&ts),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        ready.clear();
        ready.extend(self.events.iter().filter_map(|ev| to_ready(*ev)));
        Ok(())
    }
}

fn to_ready(ev: epoll::Event) -> Option<Ready> {
    let flags = ev.flags;
    let token = Token::unpack(ev.data.u64())?;
    Some(Ready {
        token,
        readable: flags.intersects(EventFlags::IN | EventFlags::PRI),
        writable: flags.contains(EventFlags::OUT),
        closed: flags.intersects(EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP),
        error: flags.contains(EventFlags::ERR),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn event_token_round_trips() {
        let t = Token::new(TokenKind::ChildExit, 0xdead_beef);
        assert_eq!(Token::unpack(t.pack()), Some(t));
        assert_eq!(Token::unpack(0), None);
    }

    #[test]
    fn event_reports_readable_fd_with_its_token() {
        let mut ev = EventLoop::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let token = Token::new(TokenKind::Link, 7);
        ev.add(&b, token, Interest::READ).unwrap();
        a.write_all(b"x").unwrap();
        let mut ready = Vec::new();
        ev.wait(&mut ready).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, token);
        assert!(ready[0].readable);
        drop(a);
        ev.wait(&mut ready).unwrap();
        assert!(ready[0].closed);
    }

    #[test]
    fn event_poll_returns_at_once_with_what_is_pending() {
        let mut ev = EventLoop::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let token = Token::new(TokenKind::Tcp, 3);
        ev.add(&b, token, Interest::READ).unwrap();
        let mut ready = vec![Ready {
            token,
            readable: false,
            writable: false,
            closed: false,
            error: false,
        }];
        let start = Instant::now();
        ev.poll(&mut ready).unwrap();
        assert!(ready.is_empty(), "nothing pending: {ready:?}");
        assert!(start.elapsed() < TICK / 2, "did not wait for the tick");
        a.write_all(b"x").unwrap();
        ev.poll(&mut ready).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, token);
        assert!(ready[0].readable);
    }
}
