"""worklist reading: the worklist ranked by what the AI found (issue 59)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 12:00:00

The worklist put every study with a red flag in its clinical question first ("nefes darlığı"
on a chest film's request made all of them ACİL, normal films included) and said nothing of
what the AI found. It is now ranked by the database (``platform.reading_order``): an urgent
AI finding first, then a red flag in the question, then the rest, oldest first, with paging
over the whole list. Four plain columns on ``studies`` hold what it ranks and filters by:

* ``ai_state`` (decided | undecided | conflict | refused; NULL: no AI result yet),
* ``ai_urgent`` (the AI found one of the task's urgent labels, or left it undecided),
* ``red_flag`` (the clinical question raised a red flag),
* ``out_of_scope`` (the image was flagged unlike the model's training films).

Privacy: the clinical question, the stored result and ``urgent_because`` are sealed at rest
(migrations 0016, 0019); these columns are not. They hold codes and booleans only — never the
question's text, the red-flag rule's name, a finding's label or its probability, which stay
sealed and are read for the rows of one page. What a reader of the bare database learns is
what ``studies.urgent`` (plain since 0001) already told in part: that a study was urgent,
now split into "the AI found an urgent label" and "the question raised a red flag", and the
AI's overall state. That is the price of ranking and paging in SQL rather than opening every
sealed row on each worklist view.

Existing rows are backfilled: each study's newest imaging result (and the reading before it)
and its urgency reasons are opened with the server's keys and read by the same rule the
server uses (``reading_order.columns``); a row whose values cannot be opened keeps the
defaults (no AI state) until it is analysed again. The downgrade drops the columns (SQLite
3.35 or newer).
"""

import json
import logging

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

BATCH = 500
COLUMNS = ("ai_state", "ai_urgent", "red_flag", "out_of_scope")
log = logging.getLogger("alembic.runtime.migration")


def _opened(value):
    """A sealed JSON value (a Fernet token, or JSON stored before sealing) opened."""
    from medai.platform.records.sealed import open_text

    if value is None or not isinstance(value, str):
        return value
    return json.loads(open_text(value))


def _backfill() -> None:
    from medai.platform.worklist import reading_order

    bind = op.get_bind()
    studies = sa.table(
        "studies",
        sa.column("id", sa.Integer()),
        sa.column("task", sa.String()),
        sa.column("urgent_because", sa.JSON()),
        *(sa.column(c) for c in COLUMNS),
    )
    results = sa.table(
        "ai_results",
        sa.column("id", sa.Integer()),
        sa.column("study_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("reading", sa.String()),
        sa.column("payload", sa.JSON()),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(studies.c.id, studies.c.task, studies.c.urgent_because)
            .where(studies.c.id > last)
            .order_by(studies.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        for study_id, task, because in rows:
            try:
                reasons = _opened(because) or []
                found = []
                for reading, payload in bind.execute(
                    sa.select(results.c.reading, results.c.payload)
                    .where(results.c.study_id == study_id, results.c.kind == "imaging")
                    .order_by(results.c.id.desc())
                ):
                    if not found or reading != found[0][0]:
                        found.append((reading, payload))
                    if len(found) == 2:
                        break
                newest = _opened(found[0][1]) if found else None
                earlier = _opened(found[1][1]) if len(found) > 1 else None
                values = reading_order.columns(task or "", newest, earlier)
            except Exception as exc:  # keys that cannot open it: left for the next analysis
                log.warning(
                    "study %s: worklist columns not backfilled (%s)", study_id, type(exc).__name__
                )
                continue
            values["red_flag"] = any(
                isinstance(r, dict) and r.get("code") == reading_order.RED_FLAG for r in reasons
            )
            bind.execute(studies.update().where(studies.c.id == study_id).values(**values))


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("ai_state", sa.String(length=16), nullable=True))
        for name in COLUMNS[1:]:
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None, recreate="never") as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
