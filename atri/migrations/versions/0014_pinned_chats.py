"""Pinned chats (issue 30): listed first, whatever their age."""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would rebuild the table on SQLite, and dropping the old conversations
    # table deletes every message through the foreign key's ON DELETE CASCADE.
    op.add_column("conversations", sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.text("false")))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("pinned")
