"""A conversation is a tree (issue 30): each message knows its parent, so that editing any question or
regenerating any answer makes a sibling and switching back brings that branch's continuation back.

Today's linear conversations become trees with nothing lost: each message's parent is the active message
one place before it; a row with no active message there (a tail retired by an edit) hangs under the last
active message before it. Variants stay variants: the rows of one place share a parent. The unique
"one active row per place" becomes "one active child per parent" (and one active first message)."""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PARENT = """
UPDATE messages SET parent_id = (
    SELECT before.id FROM messages AS before
    WHERE before.conversation_id = messages.conversation_id AND before.active
      AND before.position < messages.position
    ORDER BY before.position DESC LIMIT 1)
WHERE position > 0
"""


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
    op.execute(PARENT)
    op.create_index("ix_messages_conversation_position", "messages", ["conversation_id", "position"])
    op.drop_index("ux_messages_active_position", table_name="messages")
    op.create_index("ix_messages_parent_id", "messages", ["parent_id"])
    op.create_index("ux_messages_active_child", "messages", ["parent_id"], unique=True,
                    sqlite_where=sa.text("active AND parent_id IS NOT NULL"),
                    postgresql_where=sa.text("active AND parent_id IS NOT NULL"))
    op.create_index("ux_messages_active_root", "messages", ["conversation_id"], unique=True,
                    sqlite_where=sa.text("active AND parent_id IS NULL"),
                    postgresql_where=sa.text("active AND parent_id IS NULL"))


def downgrade() -> None:
    op.drop_index("ux_messages_active_root", table_name="messages")
    op.drop_index("ux_messages_active_child", table_name="messages")
    op.drop_index("ix_messages_parent_id", table_name="messages")
    op.drop_index("ix_messages_conversation_position", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("parent_id")
    op.create_index("ux_messages_active_position", "messages", ["conversation_id", "position"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))
