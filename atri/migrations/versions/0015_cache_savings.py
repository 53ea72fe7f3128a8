"""What the provider's cache did for each answer (issue 31): input written to an explicit cache, whether
the cache was the explicit one, and what the cache took off the cost at the prices of the day."""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("cache_written_tokens", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("cache_explicit", sa.Boolean(), nullable=True))
    op.add_column("messages", sa.Column("saved", sa.Float(), nullable=True))


def downgrade() -> None:
    for column in ("saved", "cache_explicit", "cache_written_tokens"):
        op.drop_column("messages", column)
