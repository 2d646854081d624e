"""Every action the service writes to the audit log has a Chinese label in the console's audit
view (api/static/console/audit.js, ACTION): an entry without one shows its bare code
(`recording.backup`) to supervisors reading the log. Read from the source, no browser."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTION = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
RECORDERS = {"record", "_refuse"}  # storage.audit.record, api.audit_ctx.record, recordings' _refuse


def _recorded_actions() -> set[str]:
    found: set[str] = set()
    for package in ("api", "calls", "storage", "recordings", "registry"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name not in RECORDERS:
                    continue
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                            and ACTION.match(arg.value):  # fmt: skip
                        found.add(arg.value)
    return found


def _labelled() -> set[str]:
    source = (ROOT / "api/static/console/audit.js").read_text(encoding="utf-8")
    block = source.split("const ACTION = {", 1)[1].split("};", 1)[0]
    return set(re.findall(r'"([a-z_.]+)":', block))


def test_every_audited_action_has_a_label_in_the_audit_view() -> None:
    actions = _recorded_actions()
    assert {"recording.audio", "recording.backup", "backup.restore", "bridge.create"} <= actions
    assert sorted(actions - _labelled()) == []


def test_the_end_reasons_the_service_stores_have_a_label() -> None:
    """A call or leg ended by the service itself (a stop, a failed runner, a restart, a lost
    node, a silent peer) shows its reason in Chinese, not the code (`runner_failed`)."""
    from calls import shutdown

    source = (ROOT / "api/static/console/console.js").read_text(encoding="utf-8")
    block = source.split("const RESULT = {", 1)[1].split("};", 1)[0]
    labelled = set(re.findall(r"([a-z_]+):", block))
    stored = {shutdown.SHUTDOWN, shutdown.CANCELLED, shutdown.RUNNER_FAILED}
    stored |= {"interrupted", "node_lost", "media_timeout"}  # calls/resume.py, nodes.py, runner.py
    assert sorted(stored - labelled) == []
