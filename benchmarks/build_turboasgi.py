"""Build one commit of turboasgi (release profile) into a directory that ``run.py`` can serve from.

    python benchmarks/build_turboasgi.py REV DIR

exports REV's tracked files (``git archive``: exactly what is committed, whatever the working tree holds),
builds a release wheel for this interpreter with maturin, installs it without dependencies into DIR
(``pip install --target``) and writes ``DIR/turboasgi-build.json`` (commit, subject, version, time),
which ``run.py`` puts in its report. Then

    python benchmarks/run.py --baseline DIR            # DIR served as "turboasgi-base" beside turboasgi
    python benchmarks/run.py --turboasgi-path DIR2 --baseline DIR   # two named commits side by side

The build reuses this repository's cargo target directory (``--target-dir``), so only the turboasgi
crate itself is recompiled; a fat-LTO release link still takes minutes. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_INFO = "turboasgi-build.json"  # run.py reads it (run.BUILD_INFO)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def prepare_destination(dest: Path) -> None:
    """An empty DEST, or one holding an earlier build of this script (replaced); never anything else."""
    if dest.exists():
        entries = list(dest.iterdir())
        if entries and not (dest / BUILD_INFO).exists():
            sys.exit(f"{dest} is not empty and holds no {BUILD_INFO}: refusing to overwrite it")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    dest.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/build_turboasgi.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("rev", help="a commit, branch or tag of this repository")
    parser.add_argument("dest", type=Path, help="directory to install the build into")
    parser.add_argument(
        "--target-dir",
        type=Path,
        default=REPO / "target",
        help="cargo target directory (default: the repository's, so dependencies are reused)",
    )
    args = parser.parse_args(argv)
    try:
        commit = git("rev-parse", "--verify", f"{args.rev}^{{commit}}")
    except subprocess.CalledProcessError:
        parser.error(f"{args.rev!r} is not a commit of {REPO}")
    short, subject = git("rev-parse", "--short", commit), git("show", "-s", "--format=%s", commit)
    dest = args.dest.resolve()
    prepare_destination(dest)
    with tempfile.TemporaryDirectory(prefix=f"turboasgi-{short}-") as tmpdir:
        src, wheels = Path(tmpdir) / "src", Path(tmpdir) / "wheels"
        src.mkdir()
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True)
        if archive.returncode != 0:
            sys.exit(f"git archive {short} failed: {archive.stderr.decode(errors='replace').strip()}")
        tar_path = Path(tmpdir) / "src.tar"
        tar_path.write_bytes(archive.stdout)
        with tarfile.open(tar_path) as tar:
            tar.extractall(src, filter="data")
        # git archive dates files at the commit: cargo's fingerprint (shared through --target-dir, and
        # not keyed by the source path) would call an older commit's files fresh and ship the last
        # build. Dated now, they are always rebuilt.
        for path in src.rglob("*"):
            os.utime(path, None)
        print(f"building {short} ({subject[:60]}) in release mode: this takes minutes", file=sys.stderr)
        build = [sys.executable, "-m", "maturin", "build", "--release", "--interpreter", sys.executable]
        build += ["--out", str(wheels), "--target-dir", str(args.target_dir.resolve())]
        if subprocess.run(build, cwd=src).returncode != 0:
            sys.exit(f"maturin build of {short} failed")
        built = sorted(wheels.glob("turboasgi-*.whl"))
        if len(built) != 1:
            sys.exit(f"expected one wheel in {wheels}, found {[w.name for w in built]}")
        install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(dest)]
        if subprocess.run([*install, str(built[0])]).returncode != 0:
            sys.exit(f"pip install --target {dest} failed")
        version = built[0].name.split("-")[1]
    info = {
        "commit": short,
        "full_commit": commit,
        "subject": subject,
        "version": version,
        "built": dt.datetime.now().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "profile": "release",
    }
    (dest / BUILD_INFO).write_text(json.dumps(info, indent=1) + "\n")
    print(f"{short} installed in {dest}; serve it with: python benchmarks/run.py --baseline {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
