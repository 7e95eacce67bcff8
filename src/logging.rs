//! The `log` backend: stderr, the `-l/--log-file` file and syslog, as
//! upstream's `log.c` writes them.
//!
//! Outputs, chosen once by [`init`] from the options:
//! - stderr: the bare message, while stderr is on ([`stderr_off`] turns it
//!   off once pasta has started its command, or after daemonising). With
//!   `-d`/`--trace` and no log file, every line gets a `SECONDS.FFFF: `
//!   prefix (time since [`init`], in units of 100 us) and stderr stays on.
//! - the log file: `SECONDS.FFFF: LEVEL-PREFIX message` lines under a header
//!   line `<prog> <version>: <exe> (<pid>)`. The file never reaches its size
//!   cap: before a line would, the oldest ~30% (rounded up to a page) is cut,
//!   with `fallocate(FALLOC_FL_COLLAPSE_RANGE)` where the file system has it
//!   (ext4, xfs), else by moving the rest up with `pread`/`pwrite` and
//!   `ftruncate` (tmpfs). Either way the first line is then the header again,
//!   with ` - log truncated at SECONDS.FFFF`, and only whole lines follow.
//! - syslog: `<PRI>prog: message` datagrams (facility `LOG_DAEMON`) on a
//!   socket connected to `/dev/log` at start-up, so it keeps working after
//!   isolation hides the file system. As upstream, syslog gets the messages
//!   whenever there is no log file and debugging is off, daemon or not;
//!   [`use_syslog`] (re)connects it explicitly. The socket is non-blocking: a
//!   stalled syslog daemon loses messages rather than stalling the data path.
//!
//! Invariants: a message is formatted once into a fixed buffer on the stack
//! (at most [`LINE_MAX`] bytes; longer ones end in `...`), then each output
//! gets one `writev`-style call with a few borrowed pieces: no allocation
//! per message. The outputs sit behind one mutex, and the timestamp is taken
//! under it, so lines from any thread appear in time order.
//!
//! Neighbours: [`crate::conf`] parses the options into [`LogSettings`];
//! [`crate::daemon`] calls [`stderr_off`] in the daemon; everything else
//! logs through the `log` macros.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write as _};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};
use rustix::fs::{FallocateFlags, fallocate};

use crate::conf::DEFAULT_LOG_SIZE;

/// Longest message kept, in bytes (upstream: `BUFSIZ`, 8192, for prefix and
/// message together); longer ones are cut and end in `...`.
pub const LINE_MAX: usize = 2048;
/// Share of the log file cut when it is full, in percent.
const CUT_PERCENT: u64 = 30;
/// Where the system logger listens.
const SYSLOG_PATH: &str = "/dev/log";
/// Appended to the header line when the log file is cut.
const TRUNCATED: &[u8] = b" - log truncated at ";
/// syslog facility `LOG_DAEMON`, already shifted.
const LOG_DAEMON: u8 = 3 << 3;

/// What the command line says about logging: `-d`, `--trace` (implies
/// debug), `-q` (warnings and errors only, overridden by debug), `-l` and
/// `--log-size` (0 means the default). The type lives with the rest of the
/// configuration.
pub use crate::conf::LogConfig as LogSettings;

fn level(cfg: &LogSettings) -> LevelFilter {
    if cfg.trace {
        LevelFilter::Trace
    } else if cfg.debug {
        LevelFilter::Debug
    } else if cfg.quiet {
        LevelFilter::Warn
    } else {
        LevelFilter::Info
    }
}

fn debug(cfg: &LogSettings) -> bool {
    cfg.debug || cfg.trace
}

/// Why logging could not start; the text is upstream's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("Failed to read own /proc/self/exe link: {0}")]
    Exe(#[source] io::Error),
    #[error("Couldn't open log file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("Couldn't write to log file: {0}")]
    Write(#[source] io::Error),
    #[error("Logging was already initialised")]
    AlreadyInitialised,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger for `prog` ("passt" or "pasta"): opens and truncates
/// the log file, or connects to syslog, as `cfg` says. Call once, early.
pub fn init(prog: &str, cfg: &LogSettings) -> Result<(), InitError> {
    if LOGGER.get().is_some() {
        return Err(InitError::AlreadyInitialised);
    }
    let logger = Logger::new(prog, cfg)?;
    let level = logger.level;
    LOGGER
        .set(logger)
        .map_err(|_| InitError::AlreadyInitialised)?;
    if let Some(logger) = LOGGER.get() {
        log::set_logger(logger).map_err(|_| InitError::AlreadyInitialised)?;
        log::set_max_level(level);
    }
    Ok(())
}

/// Stops writing messages to stderr (pasta's command runs, or we are a
/// daemon). Debug output without a log file stays on stderr, as upstream.
pub fn stderr_off() {
    if let Some(logger) = LOGGER.get() {
        logger.sinks().stderr = false;
    }
}

/// Connects (again) to the system logger at `/dev/log`, which then gets
/// the messages whenever there is no log file. Before [`init`], does nothing.
pub fn use_syslog() -> io::Result<()> {
    LOGGER
        .get()
        .map_or(Ok(()), |logger| logger.use_syslog(Path::new(SYSLOG_PATH)))
}

/// The logger: fixed settings plus the outputs behind a mutex.
struct Logger {
    level: LevelFilter,
    /// `-d` without `-l`: timestamps on stderr, which never goes off.
    debug_stderr: bool,
    ident: String,
    start: Instant,
    sinks: Mutex<Sinks>,
}

struct Sinks {
    stderr: bool,
    file: Option<LogFile>,
    syslog: Option<UnixDatagram>,
}

impl Logger {
    fn new(prog: &str, cfg: &LogSettings) -> Result<Logger, InitError> {
        let start = Instant::now();
        let file = match &cfg.file {
            Some(path) => Some(LogFile::create(path, &file_header(prog)?, cfg.file_size)?),
            None => None,
        };
        let debug_stderr = debug(cfg) && file.is_none();
        let syslog = file.is_none() && !debug(cfg);
        let logger = Logger {
            level: level(cfg),
            debug_stderr,
            ident: prog.to_owned(),
            start,
            sinks: Mutex::new(Sinks {
                stderr: true,
                file,
                syslog: None,
            }),
        };
        if syslog {
            // No system logger (containers, test rigs): carry on without.
            let _ = logger.use_syslog(Path::new(SYSLOG_PATH));
        }
        Ok(logger)
    }

    fn sinks(&self) -> MutexGuard<'_, Sinks> {
        self.sinks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn use_syslog(&self, path: &Path) -> io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        sock.set_nonblocking(true)?;
        self.sinks().syslog = Some(sock);
        Ok(())
    }

    /// Writes one formatted message (ending in a newline) to the outputs.
    fn emit(&self, level: Level, msg: &[u8]) {
        let mut sinks = self.sinks();
        let stamp = Stamp::new(self.start.elapsed());
        if self.debug_stderr {
            write_stderr([stamp.as_bytes(), b": ", msg]);
        } else if sinks.stderr {
            write_stderr([msg]);
        }
        if let Some(file) = &mut sinks.file {
            file.append(stamp.as_bytes(), level, msg);
        } else if let Some(sock) = &sinks.syslog {
            send_syslog(sock, &self.ident, level, msg);
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = Line::format(*record.args());
            self.emit(record.level(), line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// A byte buffer on the stack; writes past its end are dropped (at a
/// character boundary) and remembered.
struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Writes stop here, leaving room for a marker.
    limit: usize,
    truncated: bool,
}

impl<const N: usize> StackBuf<N> {
    fn new() -> Self {
        StackBuf {
            buf: [0; N],
            len: 0,
            limit: N,
            truncated: false,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            // Stop formatting: the rest would be thrown away anyway.
            self.truncated = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// A formatted message: at most [`LINE_MAX`] bytes, always ending in `\n`.
struct Line(StackBuf<LINE_MAX>);

impl Line {
    /// Room kept for `...\n`.
    const TAIL: usize = 4;

    fn format(args: fmt::Arguments<'_>) -> Line {
        let mut buf = StackBuf::new();
        buf.limit = LINE_MAX - Self::TAIL;
        // An error here only means the message was cut.
        let _ = fmt::write(&mut buf, args);
        buf.limit = LINE_MAX;
        if buf.truncated {
            let _ = buf.write_str("...");
        }
        if !buf.as_bytes().ends_with(b"\n") {
            let _ = buf.write_str("\n");
        }
        Line(buf)
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `SECONDS.FFFF`: time since start in seconds and 100 us units.
struct Stamp(StackBuf<32>);

impl Stamp {
    fn new(elapsed: Duration) -> Stamp {
        let mut buf = StackBuf::new();
        let frac = elapsed.subsec_micros() / 100;
        let _ = write!(buf, "{}.{frac:04}", elapsed.as_secs());
        Stamp(buf)
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The level column of log file lines (upstream's `logfile_prefix`).
fn file_prefix(level: Level) -> &'static [u8] {
    match level {
        Level::Error => b"ERROR:   ",
        Level::Warn => b"WARNING: ",
        Level::Info => b"info:    ",
        Level::Debug | Level::Trace => b"         ",
    }
}

/// syslog severity of a level.
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Best effort: a full pipe or closed terminal loses the message.
fn write_stderr<const N: usize>(parts: [&[u8]; N]) {
    let _ = rustix::io::writev(io::stderr().as_fd(), &parts.map(IoSlice::new));
}

/// One datagram `<PRI>ident: message`, without the trailing newline.
fn send_syslog(sock: &UnixDatagram, ident: &str, level: Level, msg: &[u8]) {
    let mut prefix = StackBuf::<64>::new();
    let _ = write!(prefix, "<{}>{ident}: ", LOG_DAEMON | severity(level));
    let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
    let iov = [IoSlice::new(prefix.as_bytes()), IoSlice::new(msg)];
    let _ = rustix::io::writev(sock, &iov);
}

/// `<prog> <version>: <exe> (<pid>)`, the first line of the log file.
fn file_header(prog: &str) -> Result<String, InitError> {
    let exe = std::env::current_exe().map_err(InitError::Exe)?;
    let version = env!("CARGO_PKG_VERSION");
    let pid = std::process::id();
    Ok(format!("{prog} {version}: {} ({pid})", exe.display()))
}

/// How a full log file was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rotation {
    /// `FALLOC_FL_COLLAPSE_RANGE` removed the start of the file.
    Collapsed,
    /// The newer part was copied up and the file truncated.
    Moved,
}

/// The `-l` file. Writes go to explicit offsets (no `O_APPEND`), so cutting
/// the file needs no mode switches.
struct LogFile {
    file: File,
    header: String,
    /// The file stays below this size.
    cap: u64,
    /// Bytes cut per rotation: a multiple of the page size, as
    /// `FALLOC_FL_COLLAPSE_RANGE` wants multiples of the block size.
    cut: u64,
    /// Current file size.
    len: u64,
    /// Length of the first line (the header), newline included.
    top: u64,
    /// Working space for rotations, allocated up front.
    scratch: Box<[u8]>,
}

impl LogFile {
    fn create(path: &Path, header: &str, size: u64) -> Result<LogFile, InitError> {
        let open_err = |source| InitError::Open {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(open_err)?;
        file.write_all(format!("{header}\n").as_bytes())
            .map_err(InitError::Write)?;
        let cap = if size == 0 { DEFAULT_LOG_SIZE } else { size };
        let page = rustix::param::page_size() as u64;
        let top = header.len() as u64 + 1;
        Ok(LogFile {
            file,
            header: header.to_owned(),
            cap,
            cut: (cap * CUT_PERCENT / 100).div_ceil(page) * page,
            len: top,
            top,
            scratch: vec![0; (header.len() + 2 * LINE_MAX + 256).max(8192)].into_boxed_slice(),
        })
    }

    /// Appends `STAMP: PREFIX msg`, cutting the file first if it would
    /// reach the cap; drops the line if the file cannot be cut.
    fn append(&mut self, stamp: &[u8], level: Level, msg: &[u8]) {
        let parts = [stamp, b": ", file_prefix(level), msg];
        let n: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if self.len + n >= self.cap {
            let _ = self.rotate(stamp);
        }
        if self.len + n >= self.cap {
            return;
        }
        let iov = parts.map(IoSlice::new);
        if let Ok(written) = rustix::io::pwritev(&self.file, &iov, self.len) {
            self.len += written as u64;
        }
    }

    /// Cuts about [`CUT_PERCENT`] of the file, keeping the header on top.
    fn rotate(&mut self, stamp: &[u8]) -> io::Result<Rotation> {
        let collapsed = self.cut < self.len
            && fallocate(&self.file, FallocateFlags::COLLAPSE_RANGE, 0, self.cut).is_ok();
        if collapsed {
            self.len -= self.cut;
            self.restore_top(stamp)?;
            Ok(Rotation::Collapsed)
        } else {
            self.move_up(stamp)?;
            Ok(Rotation::Moved)
        }
    }

    /// After a collapse, the file starts in the middle of old lines: write
    /// the header note over them, padded with spaces up to the end of the
    /// line it lands in, so that whole lines follow.
    fn restore_top(&mut self, stamp: &[u8]) -> io::Result<()> {
        let buf = &mut self.scratch[..];
        let read = self.file.read_at(buf, 0)?;
        let note_len = self.header.len() + TRUNCATED.len() + stamp.len();
        let newline = buf[..read]
            .iter()
            .skip(note_len)
            .position(|&b| b == b'\n')
            .map(|i| i + note_len);
        let end = match newline {
            Some(nl) => nl,
            None => {
                // Less than a line left after the cut (lines are shorter
                // than the scratch space): keep just the note.
                self.len = note_len as u64 + 1;
                self.file.set_len(self.len)?;
                buf[note_len] = b'\n';
                note_len
            }
        };
        write_note(&self.header, stamp, buf);
        buf[note_len..end].fill(b' ');
        self.file.write_all_at(&buf[..=end], 0)?;
        self.top = end as u64 + 1;
        Ok(())
    }

    /// Without collapse support: skip `cut` bytes of body (to the next line
    /// start), copy the rest up below a fresh header note, truncate.
    fn move_up(&mut self, stamp: &[u8]) -> io::Result<()> {
        let buf = &mut self.scratch[..];
        let from = self.top + self.cut;
        let mut src = next_line_start(&self.file, from, self.len, buf)?;
        let note_len = write_note(&self.header, stamp, buf);
        buf[note_len] = b'\n';
        let mut dst = note_len as u64 + 1;
        src = src.max(dst);
        self.file.write_all_at(&buf[..=note_len], 0)?;
        while src < self.len {
            let n = self.file.read_at(buf, src)?;
            if n == 0 {
                break;
            }
            self.file.write_all_at(&buf[..n], dst)?;
            src += n as u64;
            dst += n as u64;
        }
        self.file.set_len(dst)?;
        self.len = dst;
        self.top = note_len as u64 + 1;
        Ok(())
    }
}

/// Writes `header - log truncated at STAMP` into `buf`, returns its length.
fn write_note(header: &str, stamp: &[u8], buf: &mut [u8]) -> usize {
    let mut n = 0;
    for part in [header.as_bytes(), TRUNCATED, stamp] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    n
}

/// The offset just past the first newline in `file` at or after `from`, or
/// `len` (the end) if there is none within `buf.len()` bytes.
fn next_line_start(file: &File, from: u64, len: u64, buf: &mut [u8]) -> io::Result<u64> {
    if from >= len {
        return Ok(len);
    }
    let n = file.read_at(buf, from)?;
    Ok(match buf[..n].iter().position(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None => len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A log file path removed on drop, unique per test.
    struct TempLog(PathBuf);

    impl TempLog {
        fn new(dir: &Path, name: &str) -> TempLog {
            static SEQ: AtomicUsize = AtomicUsize::new(0);
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            TempLog(dir.join(format!("passt-rs-log-{pid}-{seq}-{name}.log")))
        }

        fn read(&self) -> String {
            std::fs::read_to_string(&self.0).unwrap()
        }
    }

    impl Drop for TempLog {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn settings(file: &TempLog, size: u64) -> LogSettings {
        LogSettings {
            file: Some(file.0.clone()),
            file_size: size,
            ..LogSettings::default()
        }
    }

    /// A logger writing only to `cfg`'s file (stderr off).
    fn file_logger(cfg: &LogSettings) -> Logger {
        let logger = Logger::new("pasta", cfg).unwrap();
        logger.sinks().stderr = false;
        logger
    }

    fn log_at(logger: &Logger, level: Level, args: fmt::Arguments<'_>) {
        logger.log(&Record::builder().level(level).args(args).build());
    }

    fn log_all_levels(logger: &Logger) {
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            log_at(logger, level, format_args!("at {level}"));
        }
    }

    /// Lines after the header, without their timestamps.
    fn bodies(text: &str) -> Vec<&str> {
        text.lines()
            .skip(1)
            .map(|l| l.split_once(": ").unwrap().1)
            .collect()
    }

    fn header() -> String {
        file_header("pasta").unwrap()
    }

    #[test]
    fn logging_level_filtering() {
        let dir = std::env::temp_dir();
        type Case = (fn(&mut LogSettings), &'static [&'static str]);
        let cases: [Case; 4] = [
            (
                |c| c.quiet = true,
                &["ERROR:   at ERROR", "WARNING: at WARN"],
            ),
            (
                |_| {},
                &["ERROR:   at ERROR", "WARNING: at WARN", "info:    at INFO"],
            ),
            (
                |c| (c.debug, c.quiet) = (true, true),
                &[
                    "ERROR:   at ERROR",
                    "WARNING: at WARN",
                    "info:    at INFO",
                    "         at DEBUG",
                ],
            ),
            (
                |c| c.trace = true,
                &[
                    "ERROR:   at ERROR",
                    "WARNING: at WARN",
                    "info:    at INFO",
                    "         at DEBUG",
                    "         at TRACE",
                ],
            ),
        ];
        for (adjust, expected) in cases {
            let file = TempLog::new(&dir, "levels");
            let mut cfg = settings(&file, 0);
            adjust(&mut cfg);
            log_all_levels(&file_logger(&cfg));
            assert_eq!(bodies(&file.read()), expected, "{cfg:?}");
        }
    }

    #[test]
    fn logging_file_header_mode_and_truncation() {
        let file = TempLog::new(&std::env::temp_dir(), "header");
        drop(file_logger(&settings(&file, 0)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&file.0, "old contents\n".repeat(100)).unwrap();
        let logger = file_logger(&settings(&file, 0));
        log_at(&logger, Level::Info, format_args!("hello"));
        let text = file.read();
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, header());
        let exe = std::env::current_exe().unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let pid = std::process::id();
        assert_eq!(first, format!("pasta {version}: {} ({pid})", exe.display()));
        assert!(rest.ends_with(": info:    hello\n"), "{rest}");
        assert_eq!(rest.lines().count(), 1);
    }

    #[test]
    fn logging_open_error_names_the_file() {
        let cfg = LogSettings {
            file: Some(PathBuf::from("/nonexistent-dir/x.log")),
            ..LogSettings::default()
        };
        let err = Logger::new("pasta", &cfg).err().unwrap();
        assert!(
            err.to_string()
                .starts_with("Couldn't open log file /nonexistent-dir/x.log: "),
            "{err}"
        );
    }

    /// Checks the invariants of a rotated log: header note on top, then
    /// only whole, well-formed lines with non-decreasing timestamps.
    fn check_rotated(text: &str) {
        let (first, rest) = text.split_once('\n').unwrap();
        let note = format!("{} - log truncated at ", header());
        assert!(first.starts_with(&note), "{first}");
        let after = first[note.len()..].trim_end_matches(' ');
        assert!(after.parse::<f64>().is_ok(), "{first}");
        let mut last = (0u64, 0u64);
        for line in rest.lines() {
            let (stamp, body) = line.split_once(": ").unwrap_or_else(|| panic!("{line}"));
            let (s, f) = stamp.split_once('.').unwrap();
            assert_eq!(f.len(), 4, "{line}");
            let t = (s.parse().unwrap(), f.parse().unwrap());
            assert!(t >= last, "{line} after {last:?}");
            last = t;
            assert!(body.starts_with("info:    message "), "{line}");
            assert!(body.ends_with(" end"), "{line}");
        }
    }

    /// Floods a file capped at `cap` from several threads; returns how the
    /// logger cut it on a direct call at the end.
    fn flood(dir: &Path, name: &str, cap: u64) -> Rotation {
        let file = TempLog::new(dir, name);
        let logger = file_logger(&settings(&file, cap));
        let filler = "x".repeat(80);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (logger, file, filler) = (&logger, &file, &filler);
                s.spawn(move || {
                    for i in 0..1500 {
                        log_at(
                            logger,
                            Level::Info,
                            format_args!("message {t}/{i} {filler} end"),
                        );
                        if i % 50 == 0 {
                            let len = std::fs::metadata(&file.0).unwrap().len();
                            assert!(len < cap, "{len} >= {cap}");
                        }
                    }
                });
            }
        });
        let text = file.read();
        assert!((text.len() as u64) < cap);
        assert!(text.len() as u64 > cap / 2, "{} of {cap}", text.len());
        check_rotated(&text);
        // The newest line is one thread's last message.
        assert!(text.lines().last().unwrap().contains("/1499 "));

        let mut sinks = logger.sinks();
        let log_file = sinks.file.as_mut().unwrap();
        let how = log_file.rotate(b"99.0000").unwrap();
        assert_eq!(log_file.len, std::fs::metadata(&file.0).unwrap().len());
        drop(sinks);
        let text = file.read();
        assert!(text.starts_with(&format!("{} - log truncated at 99.0000", header())));
        check_rotated(&text);
        how
    }

    fn is_tmpfs(dir: &Path) -> bool {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        rustix::fs::statfs(dir).is_ok_and(|s| u64::try_from(s.f_type).ok() == Some(TMPFS_MAGIC))
    }

    #[test]
    fn logging_rotation_on_tmpfs() {
        let shm = Path::new("/dev/shm");
        if !is_tmpfs(shm) {
            eprintln!("skipped: /dev/shm is not a tmpfs");
            return;
        }
        assert_eq!(flood(shm, "tmpfs", 48 * 1024), Rotation::Moved);
    }

    #[test]
    fn logging_rotation_on_disk() {
        let dir = std::env::temp_dir();
        let how = flood(&dir, "disk", 64 * 1024);
        if !is_tmpfs(&dir) {
            // ext4 and xfs support FALLOC_FL_COLLAPSE_RANGE.
            assert_eq!(how, Rotation::Collapsed);
        }
    }

    #[test]
    fn logging_long_lines_are_cut() {
        let file = TempLog::new(&std::env::temp_dir(), "long");
        let logger = file_logger(&settings(&file, 0));
        let long = "é".repeat(LINE_MAX);
        log_at(&logger, Level::Warn, format_args!("{long}"));
        log_at(&logger, Level::Warn, format_args!("ends in newline\n"));
        let text = file.read();
        let lines = bodies(&text);
        assert_eq!(lines.len(), 2);
        let cut = lines[0].strip_prefix("WARNING: ").unwrap();
        assert!(cut.ends_with("é..."));
        assert!(cut.len() < LINE_MAX);
        assert_eq!(lines[1], "WARNING: ends in newline");
    }

    #[test]
    fn logging_stamp_format() {
        let stamp = |us| Stamp::new(Duration::from_micros(us)).as_bytes().to_vec();
        assert_eq!(stamp(0), b"0.0000");
        assert_eq!(stamp(3_012_345), b"3.0123");
        assert_eq!(stamp(86_400_999_999), b"86400.9999");
    }

    #[test]
    fn logging_syslog_datagrams() {
        let path = TempLog::new(&std::env::temp_dir(), "syslog");
        let server = UnixDatagram::bind(&path.0).unwrap();
        let logger = Logger::new("passt", &LogSettings::default()).unwrap();
        logger.sinks().stderr = false;
        logger.use_syslog(&path.0).unwrap();
        log_at(&logger, Level::Info, format_args!("hello {}", 42));
        log_at(&logger, Level::Debug, format_args!("filtered"));
        log_at(&logger, Level::Error, format_args!("bad\n"));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>passt: hello 42");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<27>passt: bad");
        server.set_nonblocking(true).unwrap();
        assert!(server.recv(&mut buf).is_err());
    }

    #[test]
    fn logging_global_init_once() {
        let file = TempLog::new(&std::env::temp_dir(), "global");
        let cfg = LogSettings {
            quiet: true,
            ..settings(&file, 0)
        };
        init("pasta", &cfg).unwrap();
        stderr_off();
        assert!(matches!(
            init("pasta", &cfg),
            Err(InitError::AlreadyInitialised)
        ));
        log::warn!("through the facade");
        log::info!("filtered by --quiet");
        let text = file.read();
        assert!(text.starts_with(&header()));
        assert!(text.contains(": WARNING: through the facade\n"));
        assert!(!text.contains("filtered by --quiet"));
        // With a log file, syslog is never written; connecting is harmless.
        let _ = use_syslog();
    }
}
