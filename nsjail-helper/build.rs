//! Builds the namespace-set holder (`holder/holder.rs`): a freestanding
//! static binary of about 1 kB that the helper embeds and execs as pid 1
//! of every set. It is compiled by the same rustc, but without std and
//! with panic=abort, which a workspace crate cannot mix with the unwinding
//! the PAM module needs. On targets it does not support, an empty file is
//! embedded and the helper's own (larger) holder loop is used instead.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("nsjail-holder");
    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("holder/holder.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target = env::var("TARGET").unwrap_or_default();
    if arch == "x86_64" && os == "linux" {
        let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let status = Command::new(rustc)
            .args([
                "--edition",
                "2021",
                "--crate-type",
                "bin",
                "--target",
                &target,
            ])
            .args([
                "-C",
                "panic=abort",
                "-C",
                "opt-level=s",
                "-C",
                "relocation-model=static",
            ])
            .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
            .args([
                "-C",
                "link-arg=-nostartfiles",
                "-C",
                "link-arg=-nostdlib",
                "-C",
                "link-arg=-static",
            ])
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run rustc for the holder");
        assert!(status.success(), "building holder/holder.rs failed");
    } else {
        std::fs::write(&out, b"").expect("write empty holder");
    }
}
