"""idempotency keys

Revision ID: 3c1d2e4f5a6b
Revises: 79cbb5b022e0
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from api.core.types import JSONType, UTCDateTime

revision: str = '3c1d2e4f5a6b'
down_revision: str | None = '79cbb5b022e0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('idempotency_key',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('principal', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('headers', JSONType, nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_idempotency_key_org_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_key')),
    sa.UniqueConstraint('principal', 'key', name=op.f('uq_idempotency_key_principal_key'))
    )
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_key_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_table('idempotency_key')
