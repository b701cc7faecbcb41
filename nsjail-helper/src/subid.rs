//! Subordinate id ranges from `/etc/subuid` and `/etc/subgid`, read the
//! way shadow-utils writes them: `name:start:count` or `uid:start:count`,
//! several lines per user allowed, `#` comments and blank lines ignored. A
//! malformed line is skipped with a warning, never fatal and never a panic:
//! one bad line must not lock every user out.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Smallest range we accept: a full 16-bit id space, so every id a
/// distribution uses (nobody is 65534) can be mapped.
pub const MIN_RANGE: u64 = 65536;

/// Longest excerpt of a malformed line quoted in a warning.
const MAX_QUOTED: usize = 80;

/// A subordinate range: host ids `start .. start + count`. u64 so that
/// `start + count` of any line in the file can be computed without
/// overflow; a usable range fits in u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubRange {
    pub start: u64,
    pub count: u64,
}

/// One well-formed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubEntry {
    /// 1-based line number.
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
    /// `subuid` or `subgid`.
    pub fn file_name(self) -> &'static str {
        match self {
            Which::Uid => "subuid",
            Which::Gid => "subgid",
        }
    }
}

/// The user's sub-id file entries cannot be used, or the file cannot be
/// read.
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

/// Parses the text of a subuid/subgid file; returns the entries in file
/// order and one warning per malformed line.
pub fn parse(path: &Path, text: &str) -> (Vec<SubEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some((owner, range)) => entries.push(SubEntry {
                line: i + 1,
                owner: owner.to_owned(),
                range,
            }),
            None => warnings.push(format!(
                "{}:{}: malformed entry skipped: {:?} (expected NAME:START:COUNT or UID:START:COUNT)",
                path.display(),
                i + 1,
                excerpt(raw)
            )),
        }
    }
    (entries, warnings)
}

/// `owner:start:count` with decimal numbers (no sign, no spaces).
fn parse_line(line: &str) -> Option<(&str, SubRange)> {
    let mut fields = line.split(':');
    let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
    let number = |s: &str| {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u64>().ok()
        } else {
            None
        }
    };
    if fields.next().is_some() || owner.is_empty() {
        return None;
    }
    Some((
        owner,
        SubRange {
            start: number(start)?,
            count: number(count)?,
        },
    ))
}

/// At most `MAX_QUOTED` characters of `raw`, for a warning.
fn excerpt(raw: &str) -> String {
    let mut out: String = raw.chars().take(MAX_QUOTED).collect();
    if raw.chars().nth(MAX_QUOTED).is_some() {
        out.push_str("...");
    }
    out
}

/// Why a range cannot be used, if it cannot.
fn reject_reason(range: SubRange, own_ids: &[u32]) -> Option<String> {
    if range.count < MIN_RANGE {
        return Some(format!("is shorter than {MIN_RANGE} ids"));
    }
    if range.start == 0 {
        return Some("contains host root (id 0)".into());
    }
    // The last id is start + count - 1 and must be below the invalid id
    // 4294967295 ((uid_t) -1).
    let Some(end) = range
        .start
        .checked_add(range.count)
        .filter(|&end| end <= u64::from(u32::MAX))
    else {
        return Some("runs past the largest id (4294967294)".into());
    };
    let mut overlapping: Vec<u32> = own_ids
        .iter()
        .copied()
        .filter(|&id| (range.start..end).contains(&u64::from(id)))
        .collect();
    overlapping.sort_unstable();
    overlapping.dedup();
    match overlapping.as_slice() {
        [] => None,
        [id] => Some(format!("overlaps the user's own id {id}")),
        ids => Some(format!(
            "overlaps the user's own ids {}",
            ids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The first usable range of `user` (matched by name or by decimal `uid`)
/// in file order. A range is unusable if it is shorter than `MIN_RANGE`,
/// contains host root, runs past the largest id, or contains one of
/// `own_ids` (the ids the map keeps identity-mapped: the uid for subuid;
/// the primary, supplementary and tty gids for subgid).
///
/// `Ok(None)` if the user has no entry; an error naming file, line, user
/// and reason for every entry if none is usable.
pub fn select(
    entries: &[SubEntry],
    path: &Path,
    user: &str,
    uid: u32,
    own_ids: &[u32],
) -> Result<Option<SubRange>, SubidError> {
    let uid_text = uid.to_string();
    let mut reasons = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.owner == user || e.owner == uid_text)
    {
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

/// Reads `etc/subuid` or `etc/subgid` (`etc` is injectable for tests) and
/// selects `user`'s range as `select` does. A missing file means no
/// entries. Returns the range and the malformed-line warnings.
pub fn lookup(
    etc: &Path,
    which: Which,
    user: &str,
    uid: u32,
    own_ids: &[u32],
) -> Result<(Option<SubRange>, Vec<String>), SubidError> {
    let path: PathBuf = etc.join(which.file_name());
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
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

    fn range(start: u64, count: u64) -> Option<SubRange> {
        Some(SubRange { start, count })
    }

    fn rejected(text: &str, own: &[u32]) -> String {
        sel(text, "alice", 1001, own)
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn owners_by_name_or_numeric_uid() {
        let text = "alice:100000:65536\n1002:200000:65536\n";
        assert_eq!(sel(text, "alice", 1001, &[1001]), Ok(range(100000, 65536)));
        assert_eq!(sel(text, "bob", 1002, &[1002]), Ok(range(200000, 65536)));
        assert_eq!(sel(text, "carol", 1003, &[1003]), Ok(None));
        // A numeric owner matches by uid whatever the user is called...
        assert_eq!(
            sel(text, "renamed", 1002, &[1002]),
            Ok(range(200000, 65536))
        );
        assert_eq!(sel(text, "x", 5000, &[5000]), Ok(None));
        // ...and, as in shadow-utils, also a user literally named so.
        assert_eq!(sel(text, "1002", 5000, &[5000]), Ok(range(200000, 65536)));
    }

    #[test]
    fn comments_blanks_and_whitespace() {
        let text = "# managed by useradd\n\n   \n\t# indented comment\n  alice:100000:65536  \r\n";
        let (entries, warnings) = parse(Path::new(P), text);
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(
            entries,
            [SubEntry {
                line: 5,
                owner: "alice".into(),
                range: SubRange {
                    start: 100000,
                    count: 65536
                }
            }]
        );
    }

    #[test]
    fn malformed_lines_are_skipped_with_a_warning() {
        let text = "broken line\nalice:x:65536\nalice:1:2:3\n:5:6\nalice:-1:65536\nalice:+1:65536\nalice:1 :65536\nalice::65536\nalice:1:\nalice:99999999999999999999:1\nalice:100000:65536\n";
        let (entries, warnings) = parse(Path::new(P), text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 11);
        assert_eq!(warnings.len(), 10, "{warnings:#?}");
        assert_eq!(
            warnings[0],
            "/etc/subuid:1: malformed entry skipped: \"broken line\" (expected NAME:START:COUNT or UID:START:COUNT)"
        );
        for (i, w) in warnings.iter().enumerate() {
            assert!(
                w.starts_with(&format!("/etc/subuid:{}: malformed entry skipped: ", i + 1)),
                "{w}"
            );
        }
        // The good line still works after all that.
        assert_eq!(sel(text, "alice", 1001, &[1001]), Ok(range(100000, 65536)));
    }

    #[test]
    fn long_malformed_lines_are_quoted_briefly() {
        let long = "x".repeat(500);
        let (_, warnings) = parse(Path::new(P), &long);
        assert!(
            warnings[0].contains(&format!("\"{}...\"", "x".repeat(80))),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].len() < 200);
    }

    #[test]
    fn first_usable_of_several_lines_wins_in_file_order() {
        let text = "alice:100000:1000\nbob:300000:65536\n1001:400000:65536\nalice:500000:65536\n";
        assert_eq!(sel(text, "alice", 1001, &[1001]), Ok(range(400000, 65536)));
    }

    #[test]
    fn short_range() {
        assert_eq!(
            rejected("alice:100000:1000\n", &[1001]),
            "/etc/subuid:1: range 100000+1000 for alice is shorter than 65536 ids"
        );
        assert!(rejected("alice:100000:65535\n", &[1001]).contains("shorter than 65536"));
        assert_eq!(
            sel("alice:100000:65536\n", "alice", 1001, &[1001]),
            Ok(range(100000, 65536))
        );
    }

    #[test]
    fn range_containing_host_root() {
        assert_eq!(
            rejected("alice:0:65536\n", &[1001]),
            "/etc/subuid:1: range 0+65536 for alice contains host root (id 0)"
        );
    }

    #[test]
    fn range_overlapping_the_users_own_ids() {
        assert_eq!(
            rejected("alice:1000:65536\n", &[1001]),
            "/etc/subuid:1: range 1000+65536 for alice overlaps the user's own id 1001"
        );
        // subgid: gid, supplementary gids and tty gid; all overlaps listed.
        assert_eq!(
            rejected("alice:1:65536\n", &[1002, 5, 1001, 5]),
            "/etc/subuid:1: range 1+65536 for alice overlaps the user's own ids 5, 1001, 1002"
        );
        // Boundaries: start is inside, start + count is not.
        assert!(rejected("alice:1001:65536\n", &[1001]).contains("own id 1001"));
        assert!(rejected("alice:100000:65536\n", &[165535]).contains("own id 165535"));
        assert_eq!(
            sel("alice:100000:65536\n", "alice", 1001, &[165536, 99999]),
            Ok(range(100000, 65536))
        );
    }

    #[test]
    fn range_past_the_largest_id() {
        let max = u64::from(u32::MAX);
        assert_eq!(
            rejected(&format!("alice:{}:65536\n", max - 65535), &[1001]),
            format!(
                "/etc/subuid:1: range {}+65536 for alice runs past the largest id (4294967294)",
                max - 65535
            )
        );
        // Ending just below (uid_t) -1 is fine.
        assert_eq!(
            sel(
                &format!("alice:{}:65536\n", max - 65536),
                "alice",
                1001,
                &[1001]
            ),
            Ok(range(max - 65536, 65536))
        );
        // Values that overflow even u64 arithmetic.
        assert!(rejected("alice:18446744073709551615:65536\n", &[1001]).contains("largest id"));
        assert!(rejected("alice:1:18446744073709551615\n", &[1001]).contains("largest id"));
    }

    #[test]
    fn every_unusable_line_is_explained() {
        let e = rejected("alice:100000:1000\nalice:0:65536\n", &[1001]);
        assert_eq!(
            e,
            "/etc/subuid:1: range 100000+1000 for alice is shorter than 65536 ids; /etc/subuid:2: range 0+65536 for alice contains host root (id 0)"
        );
    }

    #[test]
    fn missing_error_names_file_and_user() {
        let e = SubidError::missing(Path::new("/etc/subgid"), "alice");
        assert!(
            e.to_string().starts_with(
                "/etc/subgid: no subordinate id range for user alice (subids = \"required\")"
            ),
            "{e}"
        );
    }

    #[test]
    fn lookup_reads_the_injected_etc() {
        let dir = std::env::temp_dir().join(format!("nsjail-subid-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(
            dir.join("subgid"),
            b"alice:100000:65536\nbad\n\xff\xfe:1:2\n",
        )
        .expect("write");
        fs::write(dir.join("subuid"), "alice:1000:65536\n").expect("write");
        let (found, warnings) = lookup(&dir, Which::Gid, "alice", 1001, &[1002]).expect("lookup");
        assert_eq!(found, range(100000, 65536));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with(&format!("{}:2: ", dir.join("subgid").display())));
        let e = lookup(&dir, Which::Uid, "alice", 1001, &[1001]).expect_err("overlap");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:1: ", dir.join("subuid").display())),
            "{e}"
        );
        fs::remove_file(dir.join("subuid")).expect("rm");
        let (none, warnings) =
            lookup(&dir, Which::Uid, "alice", 1001, &[1001]).expect("missing file");
        assert_eq!((none, warnings), (None, vec![]));
        // Unreadable (here: a directory) is an error, not "no entries".
        fs::create_dir(dir.join("subuid")).expect("mkdir");
        let e = lookup(&dir, Which::Uid, "alice", 1001, &[1001]).expect_err("a directory");
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", dir.join("subuid").display())),
            "{e}"
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
