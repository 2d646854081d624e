"""`linkcall recordings check`: verify every stored recording against its files."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from api.settings import Settings
from recordings import check
from storage import audit
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Recording, RecordingState

recordings_app = typer.Typer(help="Recordings (evidence).", no_args_is_help=True)


@recordings_app.command("check")
def check_recordings(
    limit: Annotated[int, typer.Option(help="check at most this many, newest first")] = 10000,
) -> None:
    """Re-hash every sealed recording and flag missing, altered, silent or short ones.

    The result is stored with each recording (`health`) and written to the audit log; the
    command exits 1 when any recording has a problem.
    """
    settings = Settings()
    root = settings.recordings_dir.resolve()
    engine = make_engine(settings.resolved_database_url)
    bad = 0
    try:
        with session_scope(make_session_factory(engine)) as session:
            stmt = select(Recording).order_by(Recording.started_at.desc()).limit(limit)
            for rec in session.scalars(stmt):
                if rec.state is RecordingState.RECORDING:
                    continue
                expected = None
                call = rec.call
                if call.connected_at is not None and call.ended_at is not None:
                    expected = (call.ended_at - call.connected_at).total_seconds()
                report = check(root / rec.directory, expected)
                rec.health = {
                    "ok": report.ok,
                    "findings": [
                        {"problem": f.problem.value, "track": f.track, "detail": f.detail}
                        for f in report.findings
                    ],
                }
                audit.record(
                    session, None, "recording.check", "recording", rec.id, detail={"ok": report.ok}
                )
                if not report.ok:
                    bad += 1
                    problems = "; ".join(
                        f"{f.problem.value} {f.track or ''} {f.detail}" for f in report.findings
                    )
                    typer.echo(f"PROBLEM {rec.id} (call {rec.call_id}): {problems}")
    finally:
        engine.dispose()
    typer.echo(f"{bad} recording(s) with problems")
    if bad:
        raise typer.Exit(1)
