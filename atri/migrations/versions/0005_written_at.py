"""When each message was last written: an answer being written ("streaming") is touched every few
seconds by the process writing it, so any replica can tell a live answer from one left behind."""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
