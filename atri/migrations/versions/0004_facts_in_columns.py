"""Each fact stored once: what totals, quotas and the usage dashboard add up (model, provider, tokens,
cost, times, error kind) moves from the JSON blob into indexed columns; the stored raw response,
which repeated the answer and its reasoning, is dropped (the raw view rebuilds it); the rolling
summary moves out of the settings blob into its own columns."""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("provider", sa.String(40), nullable=True))
        batch.add_column(sa.Column("model", sa.String(200), nullable=True))
        for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(sa.Column("usage_estimated", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("cost", sa.Float(), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(8), nullable=True))
        batch.add_column(sa.Column("ttft_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("total_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("error_kind", sa.String(40), nullable=True))
        batch.create_index("ix_messages_model", ["model"])
        batch.create_index("ix_messages_error_kind", ["error_kind"])
        batch.create_index("ix_messages_created_at", ["created_at"])
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("summary_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("summary_through", sa.Integer(), nullable=True))
    _move_message_facts()
    _move_summaries()


def _number(value, kind):
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _facts_columns(data: dict) -> tuple[dict, dict]:
    """(columns, the data without them) for one message's JSON."""
    data = dict(data)
    facts = dict(data["facts"]) if isinstance(data.get("facts"), dict) else None
    options = dict(data["options"]) if isinstance(data.get("options"), dict) else None
    columns: dict = {}
    if options is not None:
        columns["provider"] = str(options.pop("provider_id", "") or "")[:40] or None
        data["options"] = options
    if facts is not None:
        usage = facts.pop("usage", None)
        usage = usage if isinstance(usage, dict) else {}
        columns.update({
            "model": str(facts.pop("model", "") or "")[:200] or None,
            "prompt_tokens": _number(usage.get("prompt_tokens"), int),
            "completion_tokens": _number(usage.get("completion_tokens"), int),
            "reasoning_tokens": _number(usage.get("reasoning_tokens"), int),
            "cached_tokens": _number(usage.get("cached_tokens"), int),
            "usage_estimated": usage.get("estimated") if isinstance(usage.get("estimated"), bool) else None,
            "ttft_s": _number(facts.pop("ttft_s", None), (int, float)),
            "total_s": _number(facts.pop("total_s", None), (int, float)),
            "error_kind": str(facts.pop("error_kind", "") or "")[:40] or None,
        })
        response = facts.pop("response", None)
        if isinstance(response, dict) and response.get("id"):
            facts["response_id"] = str(response["id"])[:200]
        data["facts"] = facts
    return columns, data


def _move_message_facts() -> None:
    connection = op.get_bind()
    messages = sa.table("messages", sa.column("id", sa.Integer), sa.column("data", sa.JSON),
                        *(sa.column(name) for name in ("provider", "model", "prompt_tokens", "completion_tokens",
                                                       "reasoning_tokens", "cached_tokens", "usage_estimated",
                                                       "ttft_s", "total_s", "error_kind")))
    last_id = 0
    while True:
        rows = connection.execute(sa.select(messages.c.id, messages.c.data).where(messages.c.id > last_id)
                                  .order_by(messages.c.id).limit(BATCH)).all()
        if not rows:
            return
        for row_id, data in rows:
            if isinstance(data, dict) and ("facts" in data or "options" in data):
                columns, rest = _facts_columns(data)
                connection.execute(sa.update(messages).where(messages.c.id == row_id).values(data=rest, **columns))
        last_id = rows[-1][0]


def _move_summaries() -> None:
    connection = op.get_bind()
    conversations = sa.table("conversations", sa.column("id", sa.String), sa.column("settings", sa.JSON),
                             sa.column("summary_text", sa.Text), sa.column("summary_through", sa.Integer))
    for row_id, settings in connection.execute(sa.select(conversations.c.id, conversations.c.settings)).all():
        if not isinstance(settings, dict) or "summary" not in settings:
            continue
        settings = dict(settings)
        summary = settings.pop("summary")
        text, through = (summary.get("text"), summary.get("through")) if isinstance(summary, dict) else (None, None)
        connection.execute(sa.update(conversations).where(conversations.c.id == row_id).values(
            settings=settings, summary_text=text if isinstance(text, str) else None,
            summary_through=through if isinstance(through, int) else None))
