"""The `linkcall` command: serve, db, tokens, backup, restore, demo."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from api.cli_recordings import recordings_app
from api.cli_units import units_app
from api.logs import configure_logging
from api.settings import CONFIG_FILE_ENV, ConfigFileMissing, Settings, unknown_settings
from storage import audit, migrate
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.errors import NotFound
from storage.models.auth import Role
from storage.models.registry import Unit
from storage.tokens import (
    create_token,
    list_tokens,
    parse_lifetime,
    revoke_token,
    token_id_of,
)

app = typer.Typer(
    help="linkcall: SIP telephony for a county 110 command center.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tokens_app, name="tokens")
app.add_typer(units_app, name="units")
app.add_typer(recordings_app, name="recordings")


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, settings.node)
    config = os.environ.get(CONFIG_FILE_ENV)
    for problem in unknown_settings(os.environ, Path(config) if config else None):
        logging.getLogger("api.settings").warning("%s: ignored", problem)
    return settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8080,
) -> None:
    """Run the service: API, SIP user agent, media engine and scheduled jobs.

    HTTPS when LINKCALL_TLS_CERT and LINKCALL_TLS_KEY are set (docs/operations.md); otherwise
    plain HTTP, meant for loopback or behind a TLS-terminating proxy."""
    import uvicorn

    from api.app import create_app

    settings = _settings()
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and host not in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger("api.cli").warning(
            "serving plain HTTP on %s: tokens cross the network in clear; set "
            "LINKCALL_TLS_CERT/LINKCALL_TLS_KEY or put a TLS proxy in front (docs/operations.md)",
            host,
        )
    app = create_app(settings)
    # Everything built so far (the modules, the app, the settings) lives as long as the process:
    # moved out of the collector's reach, a full collection no longer walks ~170,000 objects
    # while every call's audio waits (pauses of 100-160 ms at 100 calls, 16-40 ms after; issue
    # 17, docs/benchmarks.md). Only here: tests build many apps in one process.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        migrate.upgrade(settings.resolved_database_url, revision)
    except CommandError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    # Alembic's upgrade never goes down: name the revision the database is at, not the one asked.
    engine = make_engine(settings.resolved_database_url)
    try:
        typer.echo(f"database at {migrate.current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database."""
    settings = _settings()
    url = make_url(settings.resolved_database_url)
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        typer.echo(f"error: no database at {file}", err=True)  # asking must not create it
        raise typer.Exit(2)
    engine = make_engine(settings.resolved_database_url)
    try:
        typer.echo(migrate.current_revision(engine) or "empty")
    finally:
        engine.dispose()


def _session_factory(settings: Settings):  # type: ignore[no-untyped-def]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    return make_session_factory(make_engine(settings.resolved_database_url))


@tokens_app.command("create")
def tokens_create(
    role: Annotated[Role, typer.Option(help="dispatcher, unit, supervisor or admin")],
    unit: Annotated[str | None, typer.Option("--unit", help="unit code (role unit only)")] = None,
    name: Annotated[str | None, typer.Option(help="who or what uses the token")] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="lifetime: 90d, 12h, 30m or never; default LINKCALL_TOKEN_TTL_DAYS"),
    ] = None,
) -> None:
    """Create a token; its secret is printed once, as the last line."""
    settings = _settings()
    try:
        lifetime = parse_lifetime(expires) if expires else settings.token_lifetime
        expires_at = utcnow() + lifetime if lifetime else None
        with session_scope(_session_factory(settings)) as session:
            if unit and session.scalar(select(Unit.id).where(Unit.code == unit)) is None:
                raise ValueError(
                    f"no unit {unit!r}: add it first (linkcall units add / units import)"
                )
            token_name = name or f"{role.value}{'-' + unit if unit else ''}"
            secret = create_token(
                session,
                name=token_name,
                role=role,
                unit_code=unit,
                expires_at=expires_at,
            )
            audit.record(
                session,
                None,
                "token.create",
                "token",
                token_id_of(session, secret),
                detail={  # as the API's entry (api/routers/admin.py)
                    "name": token_name,
                    "role": role.value,
                    "unit_code": unit,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
                client="cli",
            )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    until = f"expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never expires"
    typer.echo(
        f"created {role.value} token, {until} (store it now; it is not shown again):", err=True
    )
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (ids, roles, units; never secrets)."""
    settings = _settings()
    with session_scope(_session_factory(settings)) as session:
        now = utcnow()
        for t in list_tokens(session):
            expired = t.expires_at is not None and t.expires_at <= now
            state = "revoked" if t.revoked_at else "expired" if expired else "active"
            until = f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "no-expiry"
            typer.echo(
                f"{t.id}  {t.role.value:<10} {t.unit_code or '-':<10} {state:<8} {until:<10} "
                f"{t.name}"
            )


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by id."""
    settings = _settings()
    try:
        with session_scope(_session_factory(settings)) as session:
            revoke_token(session, token_id)
            audit.record(session, None, "token.revoke", "token", token_id, client="cli")
    except NotFound as exc:
        typer.echo(
            f"error: no token with id {token_id!r} (`linkcall tokens list` shows the ids)",
            err=True,
        )
        raise typer.Exit(2) from exc
    typer.echo(f"revoked {token_id}")


@app.command()
def backup(
    directory: Annotated[Path, typer.Argument(help="a new (or empty) directory for the copy")],
) -> None:
    """Copy the database and every recording, with SHA256SUMS, while the service runs."""
    from api.backup import backup as run_backup
    from storage.backup import BackupError

    settings = _settings()
    try:
        report = run_backup(settings, directory)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"backup in {report.directory}: {report.database_file} (schema {report.schema_revision}) "
        f"and {report.files - 2} recording file(s), {report.bytes / 1e6:.1f} MB, "
        f"{report.seconds:.1f} s; check it with: cd {report.directory} && sha256sum -c SHA256SUMS"
    )


@app.command()
def restore(
    directory: Annotated[Path, typer.Argument(help="a directory made by `linkcall backup`")],
    force: Annotated[
        bool, typer.Option(help="restore even though the SIP address is in use")
    ] = False,
) -> None:
    """Bring a backup back (service stopped) and verify every hash; exit 1 on any mismatch."""
    from api.backup import restore as run_restore
    from storage.backup import BackupError

    settings = _settings()
    try:
        report = run_restore(settings, directory, force=force)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if report.database_moved_aside is not None:
        typer.echo(f"the database that was replaced kept in {report.database_moved_aside}")
    if report.moved_aside is not None:
        typer.echo(f"recordings that were present moved to {report.moved_aside}")
    for problem in report.problems:
        typer.echo(f"PROBLEM {problem}")
    typer.echo(
        f"restored: database at schema {report.schema_revision}, {report.files} recording "
        f"file(s), {report.recordings_checked} recording(s) checked against the database, "
        f"{len(report.problems)} problem(s)"
    )
    if report.problems:
        raise typer.Exit(1)


@app.command()
def demo(
    seconds: Annotated[
        float, typer.Option(help="keep the service running this long after the demo call")
    ] = 0,
) -> None:
    """Run the demonstration: lab peers, the service, a recorded three-way call.

    The demo lives with the SIP lab (lab/demo.py), which a source checkout has and the installed
    wheel does not ship; the product never imports the lab, so it is loaded by name here."""
    try:
        lab_demo = importlib.import_module("lab.demo")
    except ModuleNotFoundError as exc:
        typer.echo(
            "the demo needs the SIP lab of a source checkout: run ./scripts/demo there", err=True
        )
        raise typer.Exit(3) from exc
    settings = _settings()
    raise typer.Exit(lab_demo.run_demo(settings, seconds=seconds))


def _database_named() -> str:
    """The configured database URL with its password hidden (or the setting's name)."""
    try:
        url = Settings().resolved_database_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # only to word an error message
        return "LINKCALL_DATABASE_URL"


def main() -> None:
    """Entry point of the console script. A setting that is wrong (environment or the
    LINKCALL_CONFIG file) is an error naming it, exit 2; a database that cannot be reached
    (server down, wrong URL, SQLite file not openable) one error line, exit 1; no traceback."""
    try:
        app()
    except ValidationError as exc:
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            name = f"LINKCALL_{err['loc'][0]}".upper() if err["loc"] else ""
            where = f"{name}: " if name and name not in msg else ""
            typer.echo(f"error: configuration: {where}{msg}", err=True)
        raise SystemExit(2) from None
    except ConfigFileMissing as exc:
        typer.echo(f"error: configuration: {exc}", err=True)
        raise SystemExit(2) from None
    except tomllib.TOMLDecodeError as exc:
        path = os.environ.get(CONFIG_FILE_ENV, "")
        typer.echo(f"error: configuration: {path} is not valid TOML: {exc}", err=True)
        raise SystemExit(2) from None
    except OperationalError as exc:
        reason = " ".join(str(exc.orig or exc).split())
        typer.echo(f"error: database unavailable ({_database_named()}): {reason}", err=True)
        raise SystemExit(1) from None
