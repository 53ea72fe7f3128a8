"""A document chunk keeps its page's printed label (issue 32): an answer cites "p.xiv" as the book prints
it, rather than the PDF's sheet number."""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("document_chunks", sa.Column("label", sa.String(24), nullable=True))


def downgrade() -> None:
    op.drop_column("document_chunks", "label")
