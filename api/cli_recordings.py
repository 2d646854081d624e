"""`linkcall recordings check` and `purge`: verify every stored recording against its files;
apply the retention period (never to a recording under legal hold)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.settings import Settings
from calls.evidence import purge_expired, verify_recordings
from storage.engine import make_engine, make_session_factory

recordings_app = typer.Typer(help="Recordings (evidence).", no_args_is_help=True)


@recordings_app.command("check")
def check_recordings(
    limit: Annotated[int, typer.Option(help="check at most this many, newest first")] = 10000,
) -> None:
    """Re-hash every sealed recording and flag missing, altered, silent or short ones.

    The result is stored with each recording (`health`) and written to the audit log; the
    command exits 1 when any recording has a problem. The service runs the same check daily.
    """
    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        result = verify_recordings(
            make_session_factory(engine), settings.recordings_dir, limit=limit
        )
    finally:
        engine.dispose()
    for rec_id, call_id, problems in result.bad:
        typer.echo(f"PROBLEM {rec_id} (call {call_id}): {problems}")
    typer.echo(f"{len(result.bad)} recording(s) with problems")
    if result.bad:
        raise typer.Exit(1)


@recordings_app.command("purge")
def purge_recordings() -> None:
    """Delete recordings older than LINKCALL_RECORDING_RETENTION_DAYS, except those under
    legal hold (the service runs this daily; each purge is audited)."""
    settings = Settings()
    if settings.recording_retention_days <= 0:
        typer.echo("LINKCALL_RECORDING_RETENTION_DAYS is 0: recordings are kept forever")
        return
    engine = make_engine(settings.resolved_database_url)
    try:
        result = purge_expired(
            make_session_factory(engine),
            settings.recordings_dir,
            settings.recording_retention_days,
        )
    finally:
        engine.dispose()
    typer.echo(f"{len(result.purged)} purged, {len(result.held)} kept under legal hold")
    for rec_id, err in result.failed:
        typer.echo(f"FAILED {rec_id}: {err}", err=True)
    if result.failed:
        raise typer.Exit(1)
