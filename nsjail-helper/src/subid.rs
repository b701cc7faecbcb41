//! Subordinate id ranges from `/etc/subuid` and `/etc/subgid`, read the
//! way shadow-utils reads them: `name:start:count` or `uid:start:count`,
//! several lines per user, `#` comments and blank lines ignored. A
//! malformed line is skipped with a warning, never fatal.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Smallest range we accept: a full 16-bit id space, so every id a
/// distribution uses (nobody is 65534) can be mapped.
pub const MIN_RANGE: u64 = 65536;

/// A subordinate range: host ids `start .. start + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubRange {
    pub start: u64,
    pub count: u64,
}

/// One well-formed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubEntry {
    pub line: usize,
    /// User name or decimal uid, as written.
    pub owner: String,
    pub range: SubRange,
}

/// Which file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Uid,
    Gid,
}

impl Which {
    pub fn file_name(self) -> &'static str {
        match self {
            Which::Uid => "subuid",
            Which::Gid => "subgid",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct SubidError(String);

impl SubidError {
    /// The user has no range at all and policy requires one.
    pub fn missing(path: &Path, user: &str) -> SubidError {
        SubidError(format!(
            "{}: no subordinate id range for user {user} (subids = \"required\"); add one with 'usermod --add-subuids/--add-subgids' or set subids = \"optional\"",
            path.display()
        ))
    }
}

impl fmt::Display for SubidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SubidError {}

/// Parses the text of a subuid/subgid file; returns the entries and a
/// warning per malformed line.
pub fn parse(path: &Path, text: &str) -> (Vec<SubEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let parsed = match fields[..] {
            [owner, start, count] if !owner.is_empty() => start
                .parse::<u64>()
                .ok()
                .zip(count.parse::<u64>().ok())
                .map(|(start, count)| (owner, start, count)),
            _ => None,
        };
        match parsed {
            Some((owner, start, count)) => entries.push(SubEntry {
                line: i + 1,
                owner: owner.to_owned(),
                range: SubRange { start, count },
            }),
            None => warnings.push(format!(
                "{}:{}: malformed entry skipped (expected NAME:START:COUNT): {raw:?}",
                path.display(),
                i + 1
            )),
        }
    }
    (entries, warnings)
}

/// Why a range cannot be used, if it cannot.
fn reject_reason(range: SubRange, own_ids: &[u32]) -> Option<String> {
    let end = range.start.checked_add(range.count);
    if range.count < MIN_RANGE {
        return Some(format!("is shorter than {MIN_RANGE} ids"));
    }
    if range.start == 0 {
        return Some("contains host root (id 0)".into());
    }
    if end.is_none_or(|e| e > u64::from(u32::MAX)) {
        return Some("runs past the largest id (4294967294)".into());
    }
    let end = end.unwrap_or(0);
    if let Some(id) = own_ids
        .iter()
        .find(|&&id| (range.start..end).contains(&u64::from(id)))
    {
        return Some(format!("overlaps the user's own id {id}"));
    }
    None
}

/// The first usable range of `user` (matched by name or numeric uid).
/// `Ok(None)` if the user has no entry; an error if every entry is
/// unusable, naming file, line and reason.
pub fn select(
    entries: &[SubEntry],
    path: &Path,
    user: &str,
    uid: u32,
    own_ids: &[u32],
) -> Result<Option<SubRange>, SubidError> {
    let uid_text = uid.to_string();
    let mine: Vec<&SubEntry> = entries
        .iter()
        .filter(|e| e.owner == user || e.owner == uid_text)
        .collect();
    let mut reasons = Vec::new();
    for e in &mine {
        match reject_reason(e.range, own_ids) {
            None => return Ok(Some(e.range)),
            Some(why) => reasons.push(format!(
                "{}:{}: range {}+{} for {user} {why}",
                path.display(),
                e.line,
                e.range.start,
                e.range.count
            )),
        }
    }
    if reasons.is_empty() {
        Ok(None)
    } else {
        Err(SubidError(reasons.join("; ")))
    }
}

/// Reads `etc/subuid` or `etc/subgid` and selects `user`'s range. A
/// missing file means no entries. Returns the range and the warnings.
pub fn lookup(
    etc: &Path,
    which: Which,
    user: &str,
    uid: u32,
    own_ids: &[u32],
) -> Result<(Option<SubRange>, Vec<String>), SubidError> {
    let path: PathBuf = etc.join(which.file_name());
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(SubidError(format!("{}: {e}", path.display()))),
    };
    let (entries, warnings) = parse(&path, &text);
    let range = select(&entries, &path, user, uid, own_ids)?;
    Ok((range, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/etc/subuid";

    fn sel(text: &str, user: &str, uid: u32, own: &[u32]) -> Result<Option<SubRange>, SubidError> {
        let (entries, _) = parse(Path::new(P), text);
        select(&entries, Path::new(P), user, uid, own)
    }

    #[test]
    fn name_and_numeric_owners() {
        let text = "alice:100000:65536\n1002:200000:65536\n";
        assert_eq!(
            sel(text, "alice", 1001, &[1001]),
            Ok(Some(SubRange {
                start: 100000,
                count: 65536
            }))
        );
        assert_eq!(
            sel(text, "bob", 1002, &[1002]),
            Ok(Some(SubRange {
                start: 200000,
                count: 65536
            }))
        );
        assert_eq!(sel(text, "carol", 1003, &[1003]), Ok(None));
    }

    #[test]
    fn comments_blanks_and_malformed_lines() {
        let text =
            "# comment\n\n  \nbroken line\nalice:x:65536\nalice:1:2:3\n:5:6\nalice:100000:65536\n";
        let (entries, warnings) = parse(Path::new(P), text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 8);
        assert_eq!(warnings.len(), 4);
        assert!(
            warnings[0].starts_with("/etc/subuid:4: malformed entry skipped"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn first_usable_of_several_lines_wins() {
        let text = "alice:100000:1000\nalice:300000:65536\nalice:400000:65536\n";
        assert_eq!(
            sel(text, "alice", 1001, &[1001]),
            Ok(Some(SubRange {
                start: 300000,
                count: 65536
            }))
        );
    }

    #[test]
    fn unusable_ranges_are_explained() {
        let short = sel("alice:100000:1000\n", "alice", 1001, &[1001]).expect_err("short");
        assert_eq!(
            short.to_string(),
            "/etc/subuid:1: range 100000+1000 for alice is shorter than 65536 ids"
        );
        let root = sel("alice:0:65536\n", "alice", 1001, &[1001]).expect_err("root");
        assert!(root.to_string().contains("host root"), "{root}");
        let own = sel("alice:1000:65536\n", "alice", 1001, &[1001]).expect_err("own");
        assert!(
            own.to_string().contains("overlaps the user's own id 1001"),
            "{own}"
        );
        let big = sel("alice:4294967000:65536\n", "alice", 1001, &[1001]).expect_err("overflow");
        assert!(big.to_string().contains("largest id"), "{big}");
        let huge = sel("alice:18446744073709551615:65536\n", "alice", 1001, &[1001])
            .expect_err("u64 overflow");
        assert!(huge.to_string().contains("largest id"), "{huge}");
    }

    #[test]
    fn missing_error_names_file_and_user() {
        let e = SubidError::missing(Path::new("/etc/subuid"), "alice");
        assert!(
            e.to_string()
                .starts_with("/etc/subuid: no subordinate id range for user alice"),
            "{e}"
        );
    }

    #[test]
    fn lookup_reads_the_injected_etc() {
        let dir = std::env::temp_dir().join(format!("nsjail-subid-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("subgid"), "alice:100000:65536\nbad\n").expect("write");
        let (range, warnings) = lookup(&dir, Which::Gid, "alice", 1001, &[1002]).expect("lookup");
        assert_eq!(
            range,
            Some(SubRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(warnings.len(), 1);
        let (none, _) = lookup(&dir, Which::Uid, "alice", 1001, &[1001]).expect("missing file");
        assert_eq!(none, None);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
