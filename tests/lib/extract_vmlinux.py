#!/usr/bin/env python3
"""extract_vmlinux.py BZIMAGE OUT: writes the uncompressed ELF kernel inside a
bzImage (like the kernel's scripts/extract-vmlinux), so QEMU can boot it by
its PVH entry point. Tries each compressed-stream magic in turn; the first
stream that decompresses to an ELF file wins."""
import gzip
import lzma
import shutil
import subprocess
import sys

MAGICS = [
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


def decompress(kind, data):
    if kind == "gzip":
        return gzip.GzipFile(fileobj=__import__("io").BytesIO(data)).read()
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(data)
    if shutil.which("zstd") is None:
        raise RuntimeError("zstd is missing")
    # Trailing bytes after the frame make zstd complain; the output is whole.
    out = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True)
    return out.stdout


def main():
    src, dst = sys.argv[1], sys.argv[2]
    blob = open(src, "rb").read()
    for magic, kind in MAGICS:
        pos = blob.find(magic)
        while pos >= 0:
            try:
                elf = decompress(kind, blob[pos:])
            except Exception:
                elf = b""
            if elf[:4] == b"\x7fELF":
                open(dst, "wb").write(elf)
                return 0
            pos = blob.find(magic, pos + 1)
    print(f"extract_vmlinux: no compressed ELF kernel found in {src}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
