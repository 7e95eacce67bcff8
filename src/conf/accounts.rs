//! `--runas UID[:GID] | LOGIN[:GROUP]` to numeric ids.
//!
//! Names are looked up in `/etc/passwd` and `/etc/group` read as text (no
//! NSS, no libc: a static binary behaves the same, and tests pass the file
//! contents in [`Accounts::Text`]). As upstream: a numeric UID without a
//! GID also gives that number as GID; a login without a group gives the
//! login's primary group. Numbers follow `strtol(..., 0)`. Neighbour:
//! [`super::resolve()`] calls [`resolve_runas`].

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;

use super::RunAs;
use super::error::ConfError;
use super::values::parse_c_number;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";
/// Bytes read from each file at most.
const MAX_FILE: u64 = 4 << 20;

/// Where account names come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accounts {
    /// `/etc/passwd` and `/etc/group`, read when a name needs looking up.
    System,
    /// The contents of those two files.
    Text { passwd: String, group: String },
}

impl Accounts {
    /// (uid, primary gid) of a login.
    fn user(&self, name: &str) -> Option<(u32, u32)> {
        let passwd = self.text(PASSWD);
        let (uid, gid) = entry_ids(&passwd, name)?;
        Some((uid.parse().ok()?, gid?.parse().ok()?))
    }

    fn group(&self, name: &str) -> Option<u32> {
        let group = self.text(GROUP);
        entry_ids(&group, name)?.0.parse().ok()
    }

    fn text(&self, path: &str) -> Cow<'_, str> {
        match (self, path) {
            (Accounts::System, _) => Cow::Owned(read_bounded(path)),
            (Accounts::Text { passwd, .. }, PASSWD) => Cow::Borrowed(passwd),
            (Accounts::Text { group, .. }, _) => Cow::Borrowed(group),
        }
    }
}

fn read_bounded(path: &str) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(MAX_FILE).read_to_string(&mut text));
    text
}

/// The id fields of the entry `name:password:ID[:ID2...]`: the third
/// field and, if there is one, the fourth (passwd's primary gid).
fn entry_ids<'a>(text: &'a str, name: &str) -> Option<(&'a str, Option<&'a str>)> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?, fields.next()))
    })
}

fn numeric_id(text: &str) -> Option<u32> {
    parse_c_number(text).and_then(|n| u32::try_from(n).ok())
}

/// Resolves the raw `--runas` value.
pub fn resolve_runas(raw: &str, accounts: &Accounts) -> Result<RunAs, ConfError> {
    let invalid = || ConfError::invalid("--runas option", raw);
    let (user, group) = match raw.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (raw, None),
    };
    let (uid, primary_gid) = match numeric_id(user) {
        Some(uid) => (uid, uid),
        None => accounts.user(user).ok_or_else(invalid)?,
    };
    let gid = match group {
        None => primary_gid,
        Some(group) => numeric_id(group)
            .or_else(|| accounts.group(group))
            .ok_or_else(invalid)?,
    };
    Ok(RunAs { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::Text {
            passwd: "root:x:0:0:root:/root:/bin/sh\n\
                     nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                     alice:x:1000:1001::/home/alice:/bin/sh\n\
                     broken:x\n"
                .into(),
            group: "root:x:0:\nusers:x:100:alice\nnogroup:x:65534:\n".into(),
        }
    }

    fn runas(raw: &str) -> Result<(u32, u32), String> {
        resolve_runas(raw, &accounts())
            .map(|r| (r.uid, r.gid))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers() {
        assert_eq!(runas("1234"), Ok((1234, 1234)));
        assert_eq!(runas("1234:99"), Ok((1234, 99)));
        assert_eq!(runas("0"), Ok((0, 0)));
    }

    #[test]
    fn names() {
        assert_eq!(runas("nobody"), Ok((65534, 65534)));
        assert_eq!(runas("alice"), Ok((1000, 1001)));
        assert_eq!(runas("alice:users"), Ok((1000, 100)));
        assert_eq!(runas("1000:nogroup"), Ok((1000, 65534)));
    }

    #[test]
    fn unknown_names_are_errors() {
        for bad in ["nosuchuser", "1000:nosuchgroup", "broken", "alice:"] {
            assert_eq!(runas(bad), Err(format!("Invalid --runas option: {bad}")));
        }
    }
}
