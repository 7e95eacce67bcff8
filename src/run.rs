//! The program: command line -> host discovery -> configuration -> runtime
//! files -> identity -> link set-up -> background -> event loop.
//!
//! Errors end the program with one line on stderr (or the log) and exit
//! status 1; `pasta CMD` exits with the command's status.

use std::ffi::OsString;
use std::io::{self, Write};

use crate::conf::{self, Config, Mode, ParseOutcome};
use crate::daemon::{self, DevNull, PidFile};
use crate::engine::{Engine, LinkState};
use crate::event::{EventLoop, Interest, Ready, Token, TokenKind};
use crate::link::Tap;
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
    if let Some(runas) = config.runas {
        crate::isolation::switch_identity(runas.uid, runas.gid).map_err(|e| e.to_string())?;
    }
    match mode {
        Mode::Pasta => run_pasta(&config, &host, files),
        Mode::Passt => Err("passt: the qemu socket link is not supported yet".into()),
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
}

const LINK: Token = Token::new(TokenKind::Link, 0);
const CHILD: Token = Token::new(TokenKind::ChildExit, 0);
const NETNS_OWNER: Token = Token::new(TokenKind::NetnsOwnerExit, 0);

fn run_pasta(
    config: &Config,
    host: &conf::host::HostNet,
    files: RuntimeFiles,
) -> Result<i32, String> {
    let (mut ns, tap) = pasta::attach(config, host, daemon::geteuid(), daemon::getegid())
        .map_err(|e| format!("Namespace set-up failed: {e}"))?;
    log::debug!("Tap {} ready, guest MAC {:02x?}", tap.name, tap.mac);
    if config.print_summary {
        conf::summary::print_summary(config, &mut io::stderr());
    }
    let mut engine = Engine::new(Tap::new(tap.fd, files.pcap));
    let mut events = EventLoop::new().map_err(|e| format!("epoll: {e}"))?;
    register(&events, &ns, &engine).map_err(|e| format!("epoll: {e}"))?;
    if config.foreground {
        if let Some(pid_file) = files.pid_file {
            pid_file
                .write(daemon::getpid())
                .map_err(|e| format!("PID file: {e}"))?;
        }
    } else {
        daemon::daemonize(files.devnull, files.pid_file).map_err(|e| format!("daemonize: {e}"))?;
    }
    if let Some(command) = &mut ns.command {
        command
            .start()
            .map_err(|e| format!("starting the command: {e}"))?;
        if !config.log.debug {
            crate::logging::stderr_off();
        }
    }
    event_loop(&mut events, &mut engine, &ns)
}

fn register(events: &EventLoop, ns: &Attached, engine: &Engine) -> io::Result<()> {
    events.add(engine.link(), LINK, Interest::READ)?;
    if let Some(command) = &ns.command {
        events.add(command, CHILD, Interest::READ)?;
    }
    if let QuitWatch::Process(pidfd) = &ns.quit {
        events.add(pidfd, NETNS_OWNER, Interest::READ)?;
    }
    Ok(())
}

fn event_loop(events: &mut EventLoop, engine: &mut Engine, ns: &Attached) -> Result<i32, String> {
    let mut ready: Vec<Ready> = Vec::with_capacity(64);
    loop {
        let tick = events.wait(&mut ready).map_err(|e| format!("epoll: {e}"))?;
        for r in &ready {
            if let Some(code) = handle(r, engine, ns)? {
                return Ok(code);
            }
        }
        if tick && ns.quit.path_gone() {
            log::info!("Namespace is gone, exiting");
            return Ok(0);
        }
    }
}

/// Handles one readiness report; `Some(status)` ends the program.
fn handle(r: &Ready, engine: &mut Engine, ns: &Attached) -> Result<Option<i32>, String> {
    match r.token.kind {
        TokenKind::Link => match engine.on_link_readable() {
            Ok(LinkState::Open) => Ok(None),
            Ok(LinkState::Closed) => Err("Tap device closed".into()),
            Err(e) => Err(format!("Tap device: {e}")),
        },
        TokenKind::ChildExit => match ns.command.as_ref().map(|c| c.exit_status()) {
            Some(Ok(Some(code))) => Ok(Some(code)),
            Some(Ok(None)) => Ok(None),
            Some(Err(e)) => Err(format!("waiting for the command: {e}")),
            None => Ok(None),
        },
        TokenKind::NetnsOwnerExit => {
            log::info!("Namespace owner exited, exiting");
            Ok(Some(0))
        }
        TokenKind::LinkListener => Ok(None),
    }
}
