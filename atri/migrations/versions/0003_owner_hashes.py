"""The app's own secrets (the key that signs owner cookies), and anonymous owners stored as a hash of
their cookie token: whoever can read the database must not be able to act as every visitor.
Also drops the version table that came before Alembic."""
import hashlib
import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HASHED = re.compile(r"[0-9a-f]{64}")


def upgrade() -> None:
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
    )
    connection = op.get_bind()
    conversations = sa.table("conversations", sa.column("owner", sa.String))
    owners = connection.execute(sa.select(conversations.c.owner).where(conversations.c.owner.like("anon:%"))
                                .distinct()).scalars().all()
    for owner in owners:
        token = owner.removeprefix("anon:")
        if not HASHED.fullmatch(token):
            hashed = "anon:" + hashlib.sha256(token.encode()).hexdigest()
            connection.execute(sa.update(conversations).where(conversations.c.owner == owner).values(owner=hashed))
    if sa.inspect(connection).has_table("atri_schema_version"):
        op.drop_table("atri_schema_version")
