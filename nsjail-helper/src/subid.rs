//! Subordinate id ranges. Without a `subid:` line in nsswitch.conf, from
//! `/etc/subuid` and `/etc/subgid`, read the way shadow-utils writes them:
//! `name:start:count` or `uid:start:count`, several lines per user allowed,
//! `#` comments and blank lines ignored. A malformed line is skipped with a
//! warning, never fatal and never a panic: one bad line must not lock every
//! user out.
//!
//! With a `subid:` line, from shadow's libsubid (loaded at run time, ABI 5
//! or 4), which follows that line (`files`, or a plugin such as sssd's
//! `libsubid_sss.so`). Only the helper loads it: the PAM module runs
//! `nsjail-helper __subids USER` instead (see `ask_libsubid_through`).
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

    /// The user has no range from libsubid and policy requires one.
    fn missing_from(source: &Source, which: Which, user: &str) -> SubidError {
        SubidError(format!(
            "{}: no {} range for user {user} (subids = \"required\"); give her one in that source or set subids = \"optional\"",
            source.describe(Path::new(crate::paths::ETC)),
            which.file_name()
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

/// `origin:line`, or `origin` alone for line 0 (an entry libsubid gave).
fn at(origin: &Path, line: usize) -> String {
    if line == 0 {
        origin.display().to_string()
    } else {
        format!("{}:{line}", origin.display())
    }
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
                "{}: range {}+{} for {user} {why}",
                at(path, e.line),
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

/// Reads and parses a subuid/subgid file. A missing file means no entries.
fn read_file(path: &Path) -> Result<(Vec<SubEntry>, Vec<String>), SubidError> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(SubidError(format!("{}: {e}", path.display()))),
    };
    Ok(parse(path, &text))
}

/// Reads `etc/subuid` or `etc/subgid` (`etc` is injectable for tests) and
/// selects `user`'s range as `select` does. Returns the range and the
/// malformed-line warnings.
pub fn lookup(
    etc: &Path,
    which: Which,
    user: &str,
    uid: u32,
    own_ids: &[u32],
) -> Result<(Option<SubRange>, Vec<String>), SubidError> {
    let path: PathBuf = etc.join(which.file_name());
    let (entries, warnings) = read_file(&path)?;
    let range = select(&entries, &path, user, uid, own_ids)?;
    Ok((range, warnings))
}

// ---- the source: nsswitch.conf's subid line -----------------------------------

/// Where sub-id ranges come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// No `subid:` line in nsswitch.conf: `subuid` and `subgid`, read here.
    Files,
    /// nsswitch.conf's `subid:` sources, as written: asked through libsubid.
    Libsubid(Vec<String>),
}

impl Source {
    /// For `explain` and messages: the files, or the libsubid line.
    pub fn describe(&self, etc: &Path) -> String {
        match self {
            Source::Files => format!(
                "{} and {}",
                etc.join("subuid").display(),
                etc.join("subgid").display()
            ),
            Source::Libsubid(sources) => {
                format!("libsubid (nsswitch subid: {})", sources.join(" "))
            }
        }
    }
}

/// The sources of nsswitch.conf's `subid:` database, found as libsubid
/// finds it: the first line starting with `subid:` (any case) that names
/// a source. `#` starts a comment (libsubid itself does not strip one; a
/// comment after the sources is rejected by `unusable_source` there).
pub fn nsswitch_subid(text: &str) -> Option<Vec<String>> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let rest = line
            .get(..6)
            .filter(|head| head.eq_ignore_ascii_case("subid:"))
            .and_then(|_| line.get(6..))?;
        let sources: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
        (!sources.is_empty()).then_some(sources)
    })
}

/// Reads `etc/nsswitch.conf` (none means `Files`).
pub fn source(etc: &Path) -> Result<Source, SubidError> {
    let path = etc.join("nsswitch.conf");
    match fs::read(&path) {
        Ok(bytes) => Ok(nsswitch_subid(&String::from_utf8_lossy(&bytes))
            .map_or(Source::Files, Source::Libsubid)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Source::Files),
        Err(e) => Err(SubidError(format!("{}: {e}", path.display()))),
    }
}

/// Why libsubid cannot use the source named `name`, if a look at the name
/// tells: it builds `libsubid_NAME.so` from it, knows no nsswitch actions
/// (`[NOTFOUND=return]`) and ignores names longer than 50 bytes.
fn unusable_source(name: &str) -> Option<String> {
    if name == "files" {
        None
    } else if name.starts_with('[') {
        Some(format!(
            "{name}: libsubid does not understand nsswitch actions"
        ))
    } else if name.len() > 50 {
        Some(format!("{name}: longer than the 50 bytes libsubid accepts"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some(format!(
            "{name}: not a module name (letters, digits, _ and - only)"
        ))
    } else {
        None
    }
}

/// Loads libsubid after checking that it can honour every source of the
/// line: it falls back to /etc/subuid, silently, for a source whose
/// plugin does not load. In the helper only.
fn libsubid_checked(sources: &[String]) -> Result<crate::sys::Libsubid, String> {
    let line = sources.join(" ");
    for name in sources {
        if let Some(why) = unusable_source(name) {
            return Err(format!("nsswitch.conf 'subid: {line}': {why}"));
        }
        if name != "files" {
            crate::sys::library_loads(&format!("libsubid_{name}.so")).map_err(|e| {
                format!("nsswitch.conf 'subid: {line}': source {name}: {e} (libsubid would use /etc/subuid instead, so it is not asked)")
            })?;
        }
    }
    crate::sys::Libsubid::load().map_err(|e| {
        format!("nsswitch.conf has 'subid: {line}' but shadow's libsubid cannot be loaded: {e} (install libsubid5, or libsubid4 on Debian 12, or remove the subid line)")
    })
}

/// Whether this host can honour `etc/nsswitch.conf`'s subid line (for
/// `check`): `Ok` with the source, or what is wrong. Loads libsubid.
pub fn honoured(etc: &Path) -> Result<Source, SubidError> {
    let source = source(etc)?;
    if let Source::Libsubid(sources) = &source {
        libsubid_checked(sources).map_err(SubidError)?;
    }
    Ok(source)
}

/// Where the PAM module asks libsubid: the helper, by path.
static LIBSUBID_HELPER: OnceLock<PathBuf> = OnceLock::new();

/// In the PAM module: libsubid (and the plugins it loads, sssd's client
/// among them) is never loaded into the login process (sshd's monitor);
/// `helper __subids USER` asks it. Without this call, the process loads
/// it itself (the helper's own commands).
pub fn ask_libsubid_through(helper: &Path) {
    let _ = LIBSUBID_HELPER.set(helper.to_owned());
}

/// How long `__subids` may take (libsubid's plugin may ask a daemon).
const SUBIDS_DEADLINE: Duration = Duration::from_secs(15);

type Ranges = (Vec<SubRange>, Vec<SubRange>);

/// `user`'s subuid and subgid ranges from libsubid, in this process.
fn libsubid_ranges(sources: &[String], user: &str) -> Result<Ranges, String> {
    let lib = libsubid_checked(sources)?;
    let get = |uid| {
        lib.ranges(uid, user).map(|v| {
            v.into_iter()
                .map(|(start, count)| SubRange { start, count })
                .collect()
        })
    };
    Ok((get(true)?, get(false)?))
}

/// `user`'s ranges from libsubid through `helper __subids`.
fn ranges_via_helper(helper: &Path, user: &str) -> Result<Ranges, String> {
    let exe = crate::trust::open_root_executable(helper)
        .map_err(|e| format!("check helper {}: {e}", helper.display()))?;
    let mut child = crate::trust::clean_command(&exe, "nsjail-helper")
        .args(["__subids", user])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("exec helper {}: {e}", helper.display()))?;
    drop(exe);
    let deadline = Instant::now() + SUBIDS_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} __subids {user}: no answer within {} s",
                    helper.display(),
                    SUBIDS_DEADLINE.as_secs()
                ));
            }
        }
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if !status.success() {
        let err = err.trim().trim_start_matches("nsjail-helper: ");
        return Err(if err.is_empty() {
            format!("{} __subids {user}: {status}", helper.display())
        } else {
            err.to_owned()
        });
    }
    parse_ranges_reply(&out).ok_or_else(|| {
        format!(
            "{} __subids {user}: unexpected reply {:?}",
            helper.display(),
            excerpt(&out)
        )
    })
}

/// `uid START COUNT` / `gid START COUNT` lines.
fn parse_ranges_reply(text: &str) -> Option<Ranges> {
    let (mut uids, mut gids) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split(' ');
        let (kind, start, count) = (f.next()?, f.next()?, f.next()?);
        let range = SubRange {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        };
        match (kind, f.next()) {
            ("uid", None) => uids.push(range),
            ("gid", None) => gids.push(range),
            _ => return None,
        }
    }
    Some((uids, gids))
}

/// `nsjail-helper __subids USER`: USER's ranges from libsubid, one
/// `uid START COUNT` or `gid START COUNT` line each; exit 1 with the
/// reason on stderr if nsswitch.conf has no subid line or libsubid cannot
/// honour it.
pub fn subids_main(args: &[String]) -> i32 {
    let [user] = args else {
        eprintln!("nsjail-helper: usage: nsjail-helper __subids USER");
        return 2;
    };
    let result = match source(Path::new(crate::paths::ETC)) {
        Ok(Source::Libsubid(sources)) => libsubid_ranges(&sources, user),
        Ok(Source::Files) => Err("nsswitch.conf has no subid line".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok((uids, gids)) => {
            for (kind, list) in [("uid", uids), ("gid", gids)] {
                for r in list {
                    println!("{kind} {} {}", r.start, r.count);
                }
            }
            0
        }
        Err(e) => {
            eprintln!("nsjail-helper: {e}");
            1
        }
    }
}

/// A user's sub-id entries of both kinds from the configured source.
#[derive(Debug)]
pub struct UserEntries {
    pub source: Source,
    uid: (PathBuf, Vec<SubEntry>),
    gid: (PathBuf, Vec<SubEntry>),
    /// Malformed lines of the files.
    pub warnings: Vec<String>,
}

impl UserEntries {
    /// `user`'s usable range of one kind (see `select`), and the error
    /// `subids = "required"` gives for none.
    pub fn select(
        &self,
        which: Which,
        user: &str,
        uid: u32,
        own_ids: &[u32],
        required: bool,
    ) -> Result<Option<SubRange>, SubidError> {
        let (origin, entries) = match which {
            Which::Uid => &self.uid,
            Which::Gid => &self.gid,
        };
        match select(entries, origin, user, uid, own_ids)? {
            None if required => Err(match &self.source {
                Source::Files => SubidError::missing(origin, user),
                source => SubidError::missing_from(source, which, user),
            }),
            found => Ok(found),
        }
    }
}

/// Reads `user`'s entries from the source `etc/nsswitch.conf` names.
pub fn entries(etc: &Path, user: &str) -> Result<UserEntries, SubidError> {
    match source(etc)? {
        Source::Files => {
            let (uid_path, gid_path) = (etc.join("subuid"), etc.join("subgid"));
            let (uids, mut warnings) = read_file(&uid_path)?;
            let (gids, more) = read_file(&gid_path)?;
            warnings.extend(more);
            Ok(UserEntries {
                source: Source::Files,
                uid: (uid_path, uids),
                gid: (gid_path, gids),
                warnings,
            })
        }
        Source::Libsubid(sources) => {
            let (uids, gids) = match LIBSUBID_HELPER.get() {
                Some(helper) => ranges_via_helper(helper, user),
                None => libsubid_ranges(&sources, user),
            }
            .map_err(SubidError)?;
            let source = Source::Libsubid(sources);
            let origin = PathBuf::from(source.describe(etc));
            let as_entries = |v: Vec<SubRange>| {
                v.into_iter()
                    .map(|range| SubEntry {
                        line: 0,
                        owner: user.to_owned(),
                        range,
                    })
                    .collect()
            };
            Ok(UserEntries {
                uid: (origin.clone(), as_entries(uids)),
                gid: (origin, as_entries(gids)),
                source,
                warnings: Vec::new(),
            })
        }
    }
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

    #[test]
    fn nsswitch_subid_line_as_libsubid_finds_it() {
        let sources = |t: &str| nsswitch_subid(t);
        let v = |a: &[&str]| Some(a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(sources("passwd: files\ngroup: files\n"), None);
        assert_eq!(sources("subid: files\n"), v(&["files"]));
        assert_eq!(sources("passwd: files sss\nsubid:\tsss\n"), v(&["sss"]));
        assert_eq!(
            sources("SUBID: sss files # comment\n"),
            v(&["sss", "files"])
        );
        // Commented out, empty, or indented: not a subid line (libsubid
        // reads the first non-empty one from the start of a line).
        assert_eq!(sources("#subid: sss\n"), None);
        assert_eq!(sources("subid:\nsubid: sss\n"), v(&["sss"]));
        assert_eq!(sources("  subid: sss\n"), None);
        assert_eq!(sources("subids: sss\n"), None);
        assert_eq!(sources("subid: files\nsubid: sss\n"), v(&["files"]));
        // Not a panic on multi-byte text at the cut.
        assert_eq!(sources("subiä: x\né\n"), None);
    }

    #[test]
    fn source_reads_the_injected_nsswitch_conf() {
        let dir = std::env::temp_dir().join(format!("nsjail-nss-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(source(&dir), Ok(Source::Files), "no nsswitch.conf");
        fs::write(dir.join("nsswitch.conf"), "passwd: files\n").expect("write");
        assert_eq!(source(&dir), Ok(Source::Files));
        fs::write(dir.join("nsswitch.conf"), "passwd: files\nsubid: sss\n").expect("write");
        let s = source(&dir).expect("source");
        assert_eq!(s, Source::Libsubid(vec!["sss".into()]));
        assert_eq!(s.describe(&dir), "libsubid (nsswitch subid: sss)");
        assert_eq!(
            Source::Files.describe(Path::new("/etc")),
            "/etc/subuid and /etc/subgid"
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn sources_libsubid_cannot_use_are_named() {
        assert_eq!(unusable_source("files"), None);
        assert_eq!(unusable_source("sss"), None);
        assert_eq!(unusable_source("my_db-2"), None);
        assert!(unusable_source("[NOTFOUND=return]")
            .expect("action")
            .contains("does not understand nsswitch actions"));
        assert!(unusable_source(&"x".repeat(51))
            .expect("long")
            .contains("50 bytes"));
        assert!(unusable_source("../../tmp/evil")
            .expect("path")
            .contains("not a module name"));
    }

    #[test]
    fn a_source_whose_plugin_does_not_load_is_refused_not_replaced_by_files() {
        let e = libsubid_checked(&["nosuch".into()])
            .err()
            .expect("no libsubid_nosuch.so");
        assert!(
            e.starts_with("nsswitch.conf 'subid: nosuch': source nosuch: libsubid_nosuch.so: "),
            "{e}"
        );
        assert!(e.contains("would use /etc/subuid instead"), "{e}");
        let e = libsubid_checked(&["files".into(), "[NOTFOUND=return]".into()])
            .err()
            .expect("action");
        assert!(e.contains("nsswitch actions"), "{e}");
    }

    #[test]
    fn helper_reply_is_parsed_strictly() {
        let r = |start, count| SubRange { start, count };
        assert_eq!(
            parse_ranges_reply("uid 100000 65536\ngid 200000 65536\ngid 300000 65536\n"),
            Some((
                vec![r(100000, 65536)],
                vec![r(200000, 65536), r(300000, 65536)]
            ))
        );
        assert_eq!(parse_ranges_reply(""), Some((vec![], vec![])));
        assert_eq!(parse_ranges_reply("uid 1 2 3\n"), None);
        assert_eq!(parse_ranges_reply("uid -1 2\n"), None);
        assert_eq!(parse_ranges_reply("pid 1 2\n"), None);
        assert_eq!(parse_ranges_reply("uid 1\n"), None);
    }

    #[test]
    fn libsubid_entries_have_no_line_and_name_the_source() {
        let origin = Path::new("libsubid (nsswitch subid: sss)");
        let entries = [SubEntry {
            line: 0,
            owner: "alice".into(),
            range: SubRange {
                start: 0,
                count: 65536,
            },
        }];
        let e = select(&entries, origin, "alice", 1001, &[1001]).expect_err("root");
        assert_eq!(
            e.to_string(),
            "libsubid (nsswitch subid: sss): range 0+65536 for alice contains host root (id 0)"
        );
        let e =
            SubidError::missing_from(&Source::Libsubid(vec!["sss".into()]), Which::Gid, "alice");
        assert!(
            e.to_string()
                .starts_with("libsubid (nsswitch subid: sss): no subgid range for user alice"),
            "{e}"
        );
    }

    /// libsubid's own files backend, loaded here, must give what this
    /// module reads from /etc/subuid (where the host has libsubid).
    #[test]
    fn libsubid_files_backend_agrees_with_the_files() {
        if crate::sys::Libsubid::load().is_err() {
            eprintln!("skipped: no libsubid.so.5 or .so.4 on this host");
            return;
        }
        let etc = Path::new("/etc");
        let Ok((entries, _)) = read_file(&etc.join("subuid")) else {
            return;
        };
        for owner in entries.iter().map(|e| e.owner.clone()).take(3) {
            if owner.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let (uids, _) = libsubid_ranges(&["files".into()], &owner).expect("libsubid");
            let ours: Vec<SubRange> = entries
                .iter()
                .filter(|e| e.owner == owner)
                .map(|e| e.range)
                .collect();
            assert_eq!(uids, ours, "{owner}");
        }
        let (uids, gids) =
            libsubid_ranges(&["files".into()], "nsjail-no-such-user").expect("libsubid");
        assert_eq!((uids, gids), (vec![], vec![]));
    }
}
