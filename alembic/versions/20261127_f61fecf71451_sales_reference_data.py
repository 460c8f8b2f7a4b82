"""sales reference data

Revision ID: f61fecf71451
Revises: ab07a931085a
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from api.core.types import UTCDateTime

revision: str = 'f61fecf71451'
down_revision: str | None = 'ab07a931085a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lost_reason',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deleted_at', UTCDateTime(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_lost_reason_org_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lost_reason'))
    )
    with op.batch_alter_table('lost_reason', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lost_reason_org_id'), ['org_id'], unique=False)

    op.create_table('product',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deleted_at', UTCDateTime(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name_folded', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('sku', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_product_price_not_negative')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_product_org_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product'))
    )
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_org_id'), ['org_id'], unique=False)
        batch_op.create_index('ix_product_org_id_name_folded_id', ['org_id', 'name_folded', 'id'], unique=False)

    op.create_table('pipeline',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deleted_at', UTCDateTime(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('team_id', sa.Uuid(), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_pipeline_org_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_pipeline_team_id_team')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipeline'))
    )
    with op.batch_alter_table('pipeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipeline_org_id'), ['org_id'], unique=False)

    op.create_table('stage',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deleted_at', UTCDateTime(), nullable=True),
    sa.Column('pipeline_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('probability', sa.Integer(), nullable=False),
    sa.Column('rotten_days', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('open', 'won', 'lost')", name=op.f('ck_stage_kind')),
    sa.CheckConstraint('probability BETWEEN 0 AND 100', name=op.f('ck_stage_probability')),
    sa.CheckConstraint('rotten_days IS NULL OR rotten_days > 0', name=op.f('ck_stage_rotten_days')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_stage_org_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipeline.id'], name=op.f('fk_stage_pipeline_id_pipeline')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage'))
    )
    with op.batch_alter_table('stage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stage_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_pipeline_id'), ['pipeline_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_pipeline_id'))
        batch_op.drop_index(batch_op.f('ix_stage_org_id'))

    op.drop_table('stage')
    with op.batch_alter_table('pipeline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipeline_org_id'))

    op.drop_table('pipeline')
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_index('ix_product_org_id_name_folded_id')
        batch_op.drop_index(batch_op.f('ix_product_org_id'))

    op.drop_table('product')
    with op.batch_alter_table('lost_reason', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lost_reason_org_id'))

    op.drop_table('lost_reason')
