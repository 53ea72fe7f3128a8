"""Deleting a conversation keeps the accounts (issue 30): the conversation's row stays, marked deleted, with
its answers' tokens and cost; its text is erased. Conversations deleted before this revision are gone."""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("deleted_at")
