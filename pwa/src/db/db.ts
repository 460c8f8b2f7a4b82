// The device's database: the working set the sync engine pulls, the outbox of local changes, conflicts, and meta.
import Dexie, { type EntityTable } from 'dexie'
import type {
  Activity,
  Company,
  Contact,
  CustomField,
  Deal,
  FeedItem,
  LostReason,
  MutationName,
  Pipeline,
  Product,
  Stage,
  Team,
  User,
} from '../api/client'

/** A local change waiting to be pushed; `id` is the mutation id the server counts (increasing, never reused). */
export interface OutboxRow {
  id?: number
  name: MutationName
  /** What the REST call takes; `id` names the record, except for a share (which is not one). */
  args: Record<string, unknown> & { id?: string }
  base_version?: number | null
  at: string
}

/** A pushed change the server did not take as sent: a conflict on some fields, or a rejection. */
export interface Issue {
  id: number
  mutation: OutboxRow
  status: 'conflict' | 'rejected'
  conflicts: string[]
  record: Record<string, unknown> | null
  problem: Record<string, unknown> | null
  at: string
  /** A rejected change whose record the device has not read back from the server yet. */
  unread?: boolean
}

/** Feed pages, deal stories and insights read while online, kept to be read again offline. */
export interface CachedPage {
  key: string
  items: FeedItem[]
  at: string
  /** An insight's answer, or what a win story tells about its deal (no new index: the store is keyed by `key`). */
  data?: unknown
}

export const ENTITIES = [
  'user',
  'team',
  'pipeline',
  'stage',
  'lost_reason',
  'product',
  'custom_field',
  'company',
  'contact',
  'deal',
  'activity',
] as const
export type Entity = (typeof ENTITIES)[number]

export interface Records {
  user: User
  team: Team
  pipeline: Pipeline
  stage: Stage
  lost_reason: LostReason
  product: Product
  custom_field: CustomField
  company: Company
  contact: Contact
  deal: Deal
  activity: Activity
}

export class FieldbookDB extends Dexie {
  user!: EntityTable<User, 'id'>
  team!: EntityTable<Team, 'id'>
  pipeline!: EntityTable<Pipeline, 'id'>
  stage!: EntityTable<Stage, 'id'>
  lost_reason!: EntityTable<LostReason, 'id'>
  product!: EntityTable<Product, 'id'>
  custom_field!: EntityTable<CustomField, 'id'>
  company!: EntityTable<Company, 'id'>
  contact!: EntityTable<Contact, 'id'>
  deal!: EntityTable<Deal, 'id'>
  activity!: EntityTable<Activity, 'id'>
  outbox!: EntityTable<OutboxRow, 'id'>
  issue!: EntityTable<Issue, 'id'>
  page!: EntityTable<CachedPage, 'key'>
  meta!: EntityTable<{ key: string; value: unknown }, 'key'>

  constructor(name = 'fieldbook') {
    super(name)
    this.version(1).stores({
      user: 'id',
      team: 'id',
      pipeline: 'id',
      stage: 'id, pipeline_id',
      lost_reason: 'id',
      product: 'id',
      custom_field: 'id',
      company: 'id, owner_id, name',
      contact: 'id, company_id, owner_id, name',
      deal: 'id, stage_id, company_id, contact_id, owner_id',
      activity: 'id, company_id, contact_id, deal_id, assignee_id, due_at, done_at',
      outbox: '++id',
      issue: 'id',
      page: 'key',
      meta: 'key',
    })
  }

  records<E extends Entity>(entity: E): EntityTable<Records[E], 'id'> {
    return this[entity] as unknown as EntityTable<Records[E], 'id'>
  }

  async getMeta<T>(key: string): Promise<T | undefined> {
    return (await this.meta.get(key))?.value as T | undefined
  }

  async setMeta(key: string, value: unknown): Promise<void> {
    await this.meta.put({ key, value })
  }
}

export const db = new FieldbookDB()
