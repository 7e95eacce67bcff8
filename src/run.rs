//! The program: command line -> host discovery -> configuration -> runtime
//! files -> identity -> link set-up -> background -> event loop.
//!
//! Errors end the program with one line on stderr (or the log) and exit
//! status 1; `pasta CMD` exits with the command's status.

use std::ffi::OsString;
use std::io::{self, Write};

use crate::conf::ports::PortSet;
use crate::conf::{self, Config, Mode, ParseOutcome};
use crate::daemon::{self, DevNull, PidFile};
use crate::engine::{Engine, LinkState};
use crate::event::{EventLoop, Interest, Ready, Token, TokenKind};
use crate::flow::listen::{Forward, ForwardSockets};
use crate::link::listener::PasstListener;
use crate::link::{Link, LinkIo, StreamLink, Tap};
use crate::pasta::auto_forward::ForwardTable;
use crate::pasta::{self, Attached, QuitWatch};
use crate::pcap::Pcap;

/// Entry point of both binaries: returns the exit status.
pub fn main(default_mode: Mode) -> i32 {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let mode = Mode::from_argv0(&argv0, default_mode);
    match run(mode, args.collect()) {
        Ok(code) => code,
        Err(msg) => {
            log::error!("{msg}");
            1
        }
    }
}

fn run(mode: Mode, args: Vec<OsString>) -> Result<i32, String> {
    let opts = match conf::parse_args(mode, args) {
        Ok(ParseOutcome::Run(opts)) => opts,
        Ok(ParseOutcome::Help(text)) | Ok(ParseOutcome::Version(text)) => {
            let _ = io::stdout().write_all(text.as_bytes());
            return Ok(0);
        }
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    if let Err(e) = crate::logging::init(mode.name(), &conf::resolve::log_config(&opts)) {
        eprintln!("{e}");
        return Ok(1);
    }
    let host = conf::host::discover().map_err(|e| format!("Host discovery failed: {e}"))?;
    let config = conf::resolve::resolve(opts, &host).map_err(|e| e.to_string())?;
    for notice in &config.notices {
        notice.log();
    }
    let files = RuntimeFiles::open(&config)?;
    if let Err(e) = crate::sys::process::raise_fd_limit() {
        log::debug!("Raising the open files limit: {e}");
    }
    if let Some(runas) = config.runas {
        crate::isolation::switch_identity(runas.uid, runas.gid).map_err(|e| e.to_string())?;
    }
    match mode {
        Mode::Pasta => run_pasta(&config, &host, files),
        Mode::Passt => run_passt(&config, files),
    }
}

/// Files opened before set-up changes identity or namespaces.
struct RuntimeFiles {
    pid_file: Option<PidFile>,
    pcap: Option<Pcap>,
    devnull: DevNull,
}

impl RuntimeFiles {
    fn open(config: &Config) -> Result<RuntimeFiles, String> {
        let pid_file = match &config.pid_file {
            Some(p) => {
                Some(PidFile::create(p).map_err(|e| format!("PID file {}: {e}", p.display()))?)
            }
            None => None,
        };
        let pcap = match &config.pcap {
            Some(p) => {
                Some(Pcap::create(p).map_err(|e| format!("pcap file {}: {e}", p.display()))?)
            }
            None => None,
        };
        let devnull = DevNull::open().map_err(|e| format!("/dev/null: {e}"))?;
        Ok(RuntimeFiles {
            pid_file,
            pcap,
            devnull,
        })
    }

    /// Daemonizes (unless `-f`) and writes the PID file: the process is
    /// ready from here on.
    fn go_background(self, config: &Config) -> Result<(), String> {
        if config.foreground {
            match self.pid_file {
                Some(pid_file) => pid_file
                    .write(daemon::getpid())
                    .map_err(|e| format!("PID file: {e}")),
                None => Ok(()),
            }
        } else {
            daemon::daemonize(self.devnull, self.pid_file).map_err(|e| format!("daemonize: {e}"))
        }
    }
}

const LINK: Token = crate::engine::LINK_TOKEN;
const LISTENER: Token = Token::new(TokenKind::LinkListener, 0);
const CHILD: Token = Token::new(TokenKind::ChildExit, 0);
const NETNS_OWNER: Token = Token::new(TokenKind::NetnsOwnerExit, 0);

fn run_pasta(
    config: &Config,
    host: &conf::host::HostNet,
    mut files: RuntimeFiles,
) -> Result<i32, String> {
    let (mut ns, tap) = pasta::attach(config, host, daemon::geteuid(), daemon::getegid())
        .map_err(|e| format!("Namespace set-up failed: {e}"))?;
    log::debug!("Tap {} ready, guest MAC {:02x?}", tap.name, tap.mac);
    print_summary(config);
    let link = Link::new(Some(LinkIo::Tap(Tap::new(tap.fd))), files.pcap.take());
    let mut engine = Engine::new(config, link);
    engine.set_guest_mac(tap.mac);
    let netns = ns
        .netns
        .try_clone()
        .map_err(|e| format!("namespace: {e}"))?;
    engine.set_namespace(Box::new(pasta::netns::NsSockets::new(netns)));
    let mut events = EventLoop::new().map_err(|e| format!("epoll: {e}"))?;
    register_pasta(&events, &ns, &engine).map_err(|e| format!("epoll: {e}"))?;
    bind_forwards(config, &mut engine, &events)?;
    let mut auto = pasta::auto_forward::AutoForward::new(config, &ns.netns)
        .map_err(|e| format!("Port scan set-up failed: {e}"))?;
    if let Some(auto) = &mut auto {
        auto.update(&mut EngineForwards(&mut engine, &events));
    }
    files.go_background(config)?;
    if let Some(command) = &mut ns.command {
        command
            .start()
            .map_err(|e| format!("starting the command: {e}"))?;
        if !config.log.debug {
            crate::logging::stderr_off();
        }
    }
    pasta_loop(&mut events, &mut engine, &ns, auto)
}

/// The engine's forwarding sockets as pasta's `auto` sees them.
struct EngineForwards<'a>(&'a mut Engine, &'a EventLoop);

impl ForwardTable for EngineForwards<'_> {
    fn ports(&self, forward: Forward) -> PortSet {
        self.0.forward_ports(forward)
    }

    fn sync(&mut self, forward: Forward, wanted: &PortSet) {
        self.0.sync_forward(self.1, forward, wanted);
    }
}

fn print_summary(config: &Config) {
    if config.print_summary {
        conf::summary::print_summary(config, &mut io::stderr());
    }
}

fn register_pasta(events: &EventLoop, ns: &Attached, engine: &Engine) -> io::Result<()> {
    if let Some(fd) = engine.link().fd() {
        events.add(fd, LINK, Interest::READ)?;
    }
    if let Some(command) = &ns.command {
        events.add(command, CHILD, Interest::READ)?;
    }
    if let QuitWatch::Process(pidfd) = &ns.quit {
        events.add(pidfd, NETNS_OWNER, Interest::READ)?;
    }
    Ok(())
}

fn pasta_loop(
    events: &mut EventLoop,
    engine: &mut Engine,
    ns: &Attached,
    mut auto: Option<pasta::auto_forward::AutoForward>,
) -> Result<i32, String> {
    let mut ready: Vec<Ready> = Vec::with_capacity(64);
    loop {
        let tick = events.wait(&mut ready).map_err(|e| format!("epoll: {e}"))?;
        for r in &ready {
            if let Some(code) = handle_pasta_event(r, engine, ns, events)? {
                return Ok(code);
            }
        }
        if tick {
            engine.on_tick(events);
            if let Some(auto) = &mut auto {
                auto.update(&mut EngineForwards(engine, events));
            }
            if ns.quit.path_gone() {
                log::info!("Namespace is gone, exiting");
                return Ok(0);
            }
        }
        engine.watch_link(events);
    }
}

/// Handles one readiness report; `Some(status)` ends the program.
fn handle_pasta_event(
    r: &Ready,
    engine: &mut Engine,
    ns: &Attached,
    events: &EventLoop,
) -> Result<Option<i32>, String> {
    match r.token.kind {
        TokenKind::Link => {
            if r.writable {
                engine
                    .on_link_writable(events)
                    .map_err(|e| format!("Tap device: {e}"))?;
            }
            match engine.on_link_readable(events) {
                Ok(LinkState::Open) => Ok(None),
                Ok(LinkState::Closed) => Err("Tap device closed".into()),
                Err(e) => Err(format!("Tap device: {e}")),
            }
        }
        TokenKind::ChildExit => match ns.command.as_ref().map(|c| c.exit_status()) {
            Some(Ok(status)) => Ok(status),
            Some(Err(e)) => Err(format!("waiting for the command: {e}")),
            None => Ok(None),
        },
        TokenKind::NetnsOwnerExit => {
            log::info!("Namespace owner exited, exiting");
            Ok(Some(0))
        }
        TokenKind::LinkListener => Ok(None),
        _ => flow_event(engine, r, events).map(|()| None),
    }
}

/// A flow's socket is ready: errors writing to the guest end the program.
fn flow_event(engine: &mut Engine, ready: &Ready, events: &EventLoop) -> Result<(), String> {
    engine
        .on_flow_event(ready, events)
        .map_err(|e| format!("Guest link: {e}"))
}

/// Binds the sockets of the forwarded ports (`-t`, `-u`; pasta's `-T`,
/// `-U` inside the namespace).
fn bind_forwards(config: &Config, engine: &mut Engine, events: &EventLoop) -> Result<(), String> {
    let forwards =
        ForwardSockets::bind(config, events, engine.namespace()).map_err(|e| e.to_string())?;
    for listeners in forwards.all() {
        if !listeners.is_empty() {
            log::debug!(
                "{:?}: {} sockets bound",
                listeners.forward(),
                listeners.len()
            );
        }
    }
    engine.set_forwards(forwards);
    Ok(())
}

fn run_passt(config: &Config, mut files: RuntimeFiles) -> Result<i32, String> {
    let mut events = EventLoop::new().map_err(|e| format!("epoll: {e}"))?;
    let mut engine = Engine::new(config, Link::new(None, files.pcap.take()));
    bind_forwards(config, &mut engine, &events)?;
    let listener = match config.fd {
        Some(fd) => {
            let fd = crate::sys::fd::take_inherited(fd).map_err(|e| format!("--fd {fd}: {e}"))?;
            attach_client(&mut engine, &events, fd)?;
            None
        }
        None => Some(bind_passt_socket(config, &events)?),
    };
    print_summary(config);
    files.go_background(config)?;
    passt_loop(
        &mut events,
        &mut engine,
        listener.as_ref(),
        config.passt.one_off,
    )
}

fn bind_passt_socket(config: &Config, events: &EventLoop) -> Result<PasstListener, String> {
    let listener =
        PasstListener::bind(config.passt.socket_path.as_deref()).map_err(|e| e.to_string())?;
    events
        .add(&listener, LISTENER, Interest::READ)
        .map_err(|e| format!("epoll: {e}"))?;
    let path = listener.path().display();
    log::info!("UNIX domain socket bound at {path}");
    log::info!(
        "\nYou can now start qemu (>= 7.2, with commit 13c6be96618c):\n    \
         kvm ... -device virtio-net-pci,netdev=s -netdev stream,id=s,server=off,addr.type=unix,addr.path={path}"
    );
    Ok(listener)
}

fn attach_client(
    engine: &mut Engine,
    events: &EventLoop,
    fd: std::os::fd::OwnedFd,
) -> Result<(), String> {
    events
        .add(&fd, LINK, Interest::READ)
        .map_err(|e| format!("epoll: {e}"))?;
    engine
        .link_mut()
        .attach(LinkIo::Stream(StreamLink::new(fd)));
    Ok(())
}

fn passt_loop(
    events: &mut EventLoop,
    engine: &mut Engine,
    listener: Option<&PasstListener>,
    one_off: bool,
) -> Result<i32, String> {
    let mut ready: Vec<Ready> = Vec::with_capacity(64);
    loop {
        engine.watch_link(events);
        let tick = events.wait(&mut ready).map_err(|e| format!("epoll: {e}"))?;
        if tick {
            engine.on_tick(events);
        }
        for r in &ready {
            match r.token.kind {
                TokenKind::LinkListener => {
                    if let Some(listener) = listener {
                        accept_client(listener, engine, events)?;
                    }
                }
                kind if kind.is_flow() => {
                    if let Err(e) = engine.on_flow_event(r, events) {
                        log::info!("Client connection error: {e}");
                        detach_client(engine, events);
                        if one_off {
                            return Ok(0);
                        }
                    }
                }
                TokenKind::Link => {
                    let flushed = match r.writable {
                        true => engine.on_link_writable(events),
                        false => Ok(()),
                    };
                    let closed = match flushed.and_then(|()| engine.on_link_readable(events)) {
                        Ok(LinkState::Open) => false,
                        Ok(LinkState::Closed) => true,
                        Err(e) => {
                            log::info!("Client connection error: {e}");
                            true
                        }
                    };
                    if closed {
                        detach_client(engine, events);
                        if one_off {
                            return Ok(0);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Takes a new guest connection, or refuses it if a guest is connected.
fn accept_client(
    listener: &PasstListener,
    engine: &mut Engine,
    events: &EventLoop,
) -> Result<(), String> {
    while let Some((fd, pid)) = listener.accept().map_err(|e| format!("accept: {e}"))? {
        let who = pid.map_or_else(|| "unknown PID".to_string(), |p| format!("PID {p}"));
        if engine.link().is_attached() {
            log::info!("Guest already connected: refusing connection from {who}");
            continue;
        }
        log::info!("Accepted connection from {who}");
        attach_client(engine, events, fd)?;
    }
    Ok(())
}

fn detach_client(engine: &mut Engine, events: &EventLoop) {
    if let Some(fd) = engine.link().fd() {
        let _ = events.delete(fd);
    }
    engine.detach_link();
    log::info!("Client connection closed");
}
