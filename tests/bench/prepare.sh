# Sourced by the sandboxed benchmarks (net.sh, services.sh) before they
# enter their sandbox. bench_prepare PKG...: on the host (not yet in the
# sandbox), as root: installs the Debian packages that are missing, builds
# the release binaries, and makes docs/ for the results.
bench_prepare() {
    [ -z "${NSJAIL_SANDBOX:-}" ] || return 0
    [ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
    local pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || {
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
        }
    done
    cargo build --release --locked --quiet
    mkdir -p docs
}
