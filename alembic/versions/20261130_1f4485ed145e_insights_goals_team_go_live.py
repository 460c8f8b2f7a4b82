"""insights: goals, team go-live

Revision ID: 1f4485ed145e
Revises: 5e7f8a9b0c1d
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from api.core.types import UTCDateTime

revision: str = '1f4485ed145e'
down_revision: str | None = '5e7f8a9b0c1d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('goal',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deleted_at', UTCDateTime(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('target', sa.BigInteger(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('reward', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('team_id', sa.Uuid(), nullable=True),
    sa.CheckConstraint("metric IN ('deals_won', 'amount_won', 'activities', 'calls', 'new_clients', 'well_developed_clients')", name=op.f('ck_goal_metric')),
    sa.CheckConstraint('ends_on >= starts_on', name=op.f('ck_goal_dates')),
    sa.CheckConstraint('target > 0', name=op.f('ck_goal_target_positive')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_goal_org_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_goal_team_id_team')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goal'))
    )
    with op.batch_alter_table('goal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_goal_org_id'), ['org_id'], unique=False)
        batch_op.create_index('ix_goal_org_id_ends_on', ['org_id', 'ends_on'], unique=False)

    op.create_table('goal_achievement',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('goal_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('reached_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['goal_id'], ['goal.id'], name=op.f('fk_goal_achievement_goal_id_goal'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_goal_achievement_org_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_goal_achievement_user_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goal_achievement')),
    sa.UniqueConstraint('goal_id', 'user_id', name=op.f('uq_goal_achievement_goal_id_user_id'))
    )
    with op.batch_alter_table('goal_achievement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_goal_achievement_org_id'), ['org_id'], unique=False)

    with op.batch_alter_table('change', schema=None) as batch_op:
        batch_op.create_index('ix_change_org_id_actor_id_at', ['org_id', 'actor_id', 'at'], unique=False)

    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.add_column(sa.Column('go_live_on', sa.Date(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('team', schema=None) as batch_op:
        batch_op.drop_column('go_live_on')

    with op.batch_alter_table('change', schema=None) as batch_op:
        batch_op.drop_index('ix_change_org_id_actor_id_at')

    with op.batch_alter_table('goal_achievement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_goal_achievement_org_id'))

    op.drop_table('goal_achievement')
    with op.batch_alter_table('goal', schema=None) as batch_op:
        batch_op.drop_index('ix_goal_org_id_ends_on')
        batch_op.drop_index(batch_op.f('ix_goal_org_id'))

    op.drop_table('goal')
