"""A Batch run sent to the provider's Batch API (issue 31): the provider's batch id and the state it last
reported, and when a replica last asked for it (any replica polls it: the one whose claim of `polled_at`
lands asks, the others wait)."""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batch_runs", sa.Column("remote_id", sa.String(80), nullable=True))
    op.add_column("batch_runs", sa.Column("remote_status", sa.String(20), nullable=True))
    op.add_column("batch_runs", sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_batch_runs_remote_status", "batch_runs", ["remote_status"])


def downgrade() -> None:
    op.drop_index("ix_batch_runs_remote_status", "batch_runs")
    for column in ("polled_at", "remote_status", "remote_id"):
        op.drop_column("batch_runs", column)
