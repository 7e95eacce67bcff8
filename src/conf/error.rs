//! [`ConfError`]: everything that stops the program before it starts.
//!
//! The `Display` of each variant is the one line the user sees, worded as
//! upstream prints it (callers and scripts match on some of them). The
//! caller prints it as it is, without a program-name prefix: upstream's
//! `die()` messages have none. The getopt-style errors (unknown option,
//! missing argument...) carry the program name themselves, as glibc's
//! `getopt_long` prints them, and upstream follows them with the usage text
//! on stderr: [`ConfError::wants_usage`] tells the caller to do the same
//! (with [`super::usage::usage`]). Every error means exit status 1.

use super::ports::PortError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A long option that matches nothing, or a prefix of none.
    #[error("{prog}: unrecognized option '{option}'")]
    UnrecognizedOption { prog: &'static str, option: String },
    /// A short option letter that is not in the table.
    #[error("{prog}: invalid option -- '{letter}'")]
    InvalidShort { prog: &'static str, letter: char },
    /// A long-option prefix shared by several options.
    #[error("{prog}: option '{option}' is ambiguous; possibilities:{candidates}")]
    Ambiguous {
        prog: &'static str,
        option: String,
        /// `" '--a' '--b'"`, as glibc lists them.
        candidates: String,
    },
    #[error("{prog}: option '--{long}' requires an argument")]
    MissingLongValue {
        prog: &'static str,
        long: &'static str,
    },
    #[error("{prog}: option requires an argument -- '{letter}'")]
    MissingShortValue { prog: &'static str, letter: char },
    #[error("{prog}: option '--{long}' doesn't allow an argument")]
    UnexpectedValue {
        prog: &'static str,
        long: &'static str,
    },
    /// An option of the other program (`--config-net is for pasta mode only`).
    #[error("{option} is for {modes} mode only")]
    WrongMode {
        /// As upstream names it: `-I`, `--config-net`.
        option: String,
        modes: &'static str,
    },
    /// An option whose behaviour is not implemented yet (`--dns-forward`).
    #[error("{option}: not supported yet")]
    NotSupported { option: String },
    /// A malformed or out-of-range value: `Invalid MTU: 70000`.
    #[error("Invalid {what}: {value}")]
    InvalidValue { what: &'static str, value: String },
    /// Options or arguments that cannot go together, or a value the host
    /// cannot satisfy: the whole message.
    #[error("{0}")]
    Unusable(String),
    #[error(transparent)]
    Ports(#[from] PortError),
}

impl ConfError {
    /// Upstream prints the usage text (on stderr) after getopt's own errors.
    pub fn wants_usage(&self) -> bool {
        matches!(
            self,
            ConfError::UnrecognizedOption { .. }
                | ConfError::InvalidShort { .. }
                | ConfError::Ambiguous { .. }
                | ConfError::MissingLongValue { .. }
                | ConfError::MissingShortValue { .. }
                | ConfError::UnexpectedValue { .. }
        )
    }

    pub(crate) fn invalid(what: &'static str, value: impl Into<String>) -> ConfError {
        ConfError::InvalidValue {
            what,
            value: value.into(),
        }
    }

    pub(crate) fn unusable(message: impl Into<String>) -> ConfError {
        ConfError::Unusable(message.into())
    }
}
