"""A version number per conversation, raised by every write to it, so that a process can keep a
conversation it has read and read it again only when it changed (a long chat is drawn on every click)."""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
