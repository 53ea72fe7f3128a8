"""Quota counters (issue 9): requests and tokens per scope (a visitor, a client address, the host's whole
budget) and period, so that every tab and replica on one database counts against the same limits."""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_counters",
        sa.Column("scope", sa.String(120), primary_key=True),
        sa.Column("period", sa.BigInteger(), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
    )
