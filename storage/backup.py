"""A consistent copy of the database while the service runs, and bringing it back.

SQLite: the online backup API (`sqlite3.Connection.backup`) copies a consistent snapshot page by
page while other connections keep writing. PostgreSQL: `pg_dump` (custom format; one snapshot
transaction), restored with `pg_restore --clean --if-exists --single-transaction`. When the URL
sets a `search_path` (`options=-csearch_path=…`), only that schema is dumped and restored.
The connection goes to pg_dump/pg_restore through PG* environment variables, so no password
appears on a command line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url

SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
PG_TIMEOUT_S = 3600


class BackupError(RuntimeError):
    """The database could not be copied or brought back."""


def backend(url: str) -> str:
    """`sqlite` or `postgresql`; BackupError for anything else."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"no backup method for {name} databases")
    return name


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _pg_env(url: URL) -> tuple[dict[str, str], str | None]:
    """libpq environment for a SQLAlchemy PostgreSQL URL, and the schema its search_path names."""
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value:
            env[key] = str(value)
    schema = None
    options = url.query.get("options")
    if isinstance(options, tuple):
        options = " ".join(options)
    if options:
        options = unquote(options)
        env["PGOPTIONS"] = options
        for part in options.split():
            if part.startswith("-csearch_path="):
                schema = part.split("=", 1)[1].split(",")[0].strip()
    return env, schema


def _run(cmd: list[str], env: dict[str, str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise BackupError(f"{cmd[0]} is not installed (Debian: apt-get install postgresql-client)")
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{cmd[0]} took longer than {PG_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise BackupError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[:2000]}")


def dump_database(url: str, dest_dir: Path) -> Path:
    """Write a consistent copy of the database into `dest_dir`; returns the file."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if backend(url) == "sqlite":
        source = sqlite_path(url)
        if not source.is_file():
            raise BackupError(f"no SQLite database at {source}")
        target = dest_dir / SQLITE_FILE
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(target)
        try:
            with dst:
                src.backup(dst, pages=1024)
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
        finally:
            dst.close()
            src.close()
        return target
    env, schema = _pg_env(make_url(url))
    target = dest_dir / PG_FILE
    cmd = ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}"]
    if schema:
        cmd.append(f"--schema={schema}")
    _run(cmd, env)
    return target


def restore_database(url: str, source: Path) -> None:
    """Bring the database back from a dump made by `dump_database` (the service stopped)."""
    if backend(url) == "sqlite":
        target = sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        return
    env, _schema = _pg_env(make_url(url))
    env.pop("PGOPTIONS", None)  # the dump names its schema itself
    _run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={env.get('PGDATABASE', 'postgres')}",
            str(source),
        ],
        env,
    )
