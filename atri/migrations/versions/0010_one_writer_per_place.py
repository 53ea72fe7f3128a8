"""One active message per place in a conversation, whatever replica writes it (issue 34): a unique index
on (conversation, position) over the active rows. Places two replicas both took before it are mended
first: the earliest row stays active, the others become its variants. Batch runs get the stamp their
process touches while they go on, so that a run whose process died reads as interrupted."""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE messages SET active = false WHERE active AND id NOT IN "
               "(SELECT min(id) FROM messages WHERE active GROUP BY conversation_id, position)")
    op.create_index("ux_messages_active_position", "messages", ["conversation_id", "position"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))
    with op.batch_alter_table("batch_runs") as batch:
        batch.add_column(sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
