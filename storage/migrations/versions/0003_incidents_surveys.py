"""incidents and surveys: incidents, their transitions, callback surveys and attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 04:15:56.301342
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("reporter_number", sa.String(length=40), nullable=False),
        sa.Column(
            "category",
            sa.Enum("police", "non_police", name="incidentcategory", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("received_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "received",
                "diverted",
                "accepted",
                "closed",
                "surveyed",
                name="incidentstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("unit_code", sa.String(length=40), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("closed_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rework", sa.Boolean(), nullable=False),
        sa.Column("rework_reason", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_received_at", "incidents", ["received_at"], unique=False)
    op.create_index("ix_incidents_state", "incidents", ["state"], unique=False)
    op.create_index("ix_incidents_unit_code", "incidents", ["unit_code"], unique=False)

    op.create_table(
        "incident_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column(
            "from_state",
            sa.Enum(
                "received",
                "diverted",
                "accepted",
                "closed",
                "surveyed",
                name="incidentstate",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_state",
            sa.Enum(
                "received",
                "diverted",
                "accepted",
                "closed",
                "surveyed",
                name="incidentstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_transitions_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_transitions")),
    )
    op.create_index(
        op.f("ix_incident_transitions_incident_id"),
        "incident_transitions",
        ["incident_id"],
        unique=False,
    )

    op.create_table(
        "surveys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "calling",
                "answered",
                "unreached",
                "cancelled",
                name="surveystatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("not_before", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("answer_key", sa.String(length=4), nullable=True),
        sa.Column("answer", sa.String(length=40), nullable=True),
        sa.Column("last_outcome", sa.String(length=20), nullable=True),
        sa.Column("end_reason", sa.String(length=60), nullable=True),
        sa.Column("claimed_by", sa.String(length=120), nullable=True),
        sa.Column("claimed_until", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_surveys_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
    )
    op.create_index("ix_surveys_finished_at", "surveys", ["finished_at"], unique=False)
    op.create_index(op.f("ix_surveys_incident_id"), "surveys", ["incident_id"], unique=False)
    op.create_index("ix_surveys_number_status", "surveys", ["number", "status"], unique=False)
    op.create_index(
        "ix_surveys_status_next_attempt_at", "surveys", ["status", "next_attempt_at"], unique=False
    )

    op.create_table(
        "survey_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("survey_id", sa.String(length=32), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=120), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("sip_reason", sa.String(length=60), nullable=True),
        sa.Column("key", sa.String(length=4), nullable=True),
        sa.Column("digits", sa.String(length=40), nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_attempts_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_attempts")),
    )
    op.create_index(
        op.f("ix_survey_attempts_survey_id"), "survey_attempts", ["survey_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_survey_attempts_survey_id"), table_name="survey_attempts")

    op.drop_table("survey_attempts")
    op.drop_index("ix_surveys_status_next_attempt_at", table_name="surveys")
    op.drop_index("ix_surveys_number_status", table_name="surveys")
    op.drop_index(op.f("ix_surveys_incident_id"), table_name="surveys")
    op.drop_index("ix_surveys_finished_at", table_name="surveys")

    op.drop_table("surveys")
    op.drop_index(op.f("ix_incident_transitions_incident_id"), table_name="incident_transitions")

    op.drop_table("incident_transitions")
    op.drop_index("ix_incidents_unit_code", table_name="incidents")
    op.drop_index("ix_incidents_state", table_name="incidents")
    op.drop_index("ix_incidents_received_at", table_name="incidents")

    op.drop_table("incidents")
