//! Running the standard tools (`ip`, `nft`, `conntrack`) as root: found
//! in the system directories only, opened and checked like the helper
//! itself (root-owned, not writable by others) and executed through that
//! fd, with a clean environment. Standard tools instead of hand-written
//! netlink: they are what admins read and trust, and running them costs
//! one fork+exec each, with no threads in the calling process.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

/// Where the tools are looked for, in order (Debian: /usr/sbin).
const DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The Debian package that ships each tool, for error messages.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "nft" => "nftables",
        "conntrack" => "conntrack",
        _ => "iproute2",
    }
}

/// The first system path of `tool`, if installed.
pub fn find(tool: &str) -> Option<std::path::PathBuf> {
    DIRS.iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// Runs `tool args…` with `input` on stdin; its stdout, or an error
/// naming the tool, the command and what it printed on stderr.
pub fn run(tool: &str, args: &[&str], input: &str) -> Result<String, String> {
    let path = find(tool).ok_or_else(|| {
        format!(
            "{tool} is not installed (apt-get install {})",
            package_of(tool)
        )
    })?;
    let exe = crate::trust::open_root_executable(&path).map_err(|e| e.to_string())?;
    let mut child = crate::trust::clean_command(&exe, tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    drop(exe);
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that exits early closes its stdin: its status says why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    Err(format!(
        "{tool} {} failed ({}): {}",
        args.join(" "),
        out.status,
        first.trim()
    ))
}
