"""sync clients and views

Revision ID: 5e7f8a9b0c1d
Revises: 3c1d2e4f5a6b
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from api.core.types import UTCDateTime
from alembic import op

revision: str = '5e7f8a9b0c1d'
down_revision: str | None = '3c1d2e4f5a6b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sync_client',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('last_mutation_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('pushed_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_sync_client_org_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_sync_client_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'client_id', name=op.f('pk_sync_client'))
    )
    op.create_table('sync_view',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('window_start', UTCDateTime(), nullable=False),
    sa.Column('entries', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_sync_view_org_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_sync_view_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_view'))
    )
    with op.batch_alter_table('sync_view', schema=None) as batch_op:
        batch_op.create_index('ix_sync_view_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_sync_view_user_id_client_id_created_at', ['user_id', 'client_id', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sync_view', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_view_user_id_client_id_created_at')
        batch_op.drop_index('ix_sync_view_created_at')

    op.drop_table('sync_view')
    op.drop_table('sync_client')
