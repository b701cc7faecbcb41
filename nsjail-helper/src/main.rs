//! `nsjail-helper`: the admin CLI and the set-creation helper of pam_nsjail.
//! Parsing and dispatch live in the library; this only maps the outcome to
//! an exit status.
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nsjail::cli::main(&args));
}
