// Local writes: each change is applied to the device's records and queued in the outbox in one IndexedDB
// transaction, so a change is never shown without being queued, nor queued twice. The same `apply` replays
// pending changes over freshly pulled records (sync/engine.ts), so the screens always show the user's own edits.
import { v7 as uuid7 } from 'uuid'
import type { MutationName } from '../api/client'
import { db, type FieldbookDB, type OutboxRow } from './db'

type Args = OutboxRow['args']
type Row = Record<string, unknown>

export const newId = (): string => uuid7()

const NOW = (): string => new Date().toISOString()

const COMPANY = {
  address: null,
  city: null,
  country: null,
  domain: null,
  industry: null,
  phone: null,
  segment: null,
  size: null,
  source: null,
  tags: [],
  custom: {},
}
const CONTACT = {
  company_id: null,
  email_consent: false,
  phone_consent: false,
  emails: [],
  phones: [],
  segment: null,
  source: null,
  tags: [],
  title: null,
  custom: {},
}
const ACTIVITY = {
  body: null,
  company_id: null,
  contact_id: null,
  deal_id: null,
  direction: null,
  done_at: null,
  due_at: null,
  duration_seconds: null,
  mentioned_ids: [],
  next_step_id: null,
  outcome: null,
  overdue: false,
}

/** Fields a create carries that are not part of the record. */
const NOT_STORED = ['confirm_duplicate', 'next_step', 'lines']

function created(defaults: Row, args: Args, me: string, at: string): Row {
  const record: Row = { ...defaults, ...args, version: 0, created_at: at, updated_at: at, deleted_at: null }
  for (const key of NOT_STORED) delete record[key]
  record.owner_id = args.owner_id ?? me
  return record
}

function activity(args: Args, me: string, at: string): Row {
  const record = created(ACTIVITY, args, me, at)
  record.assignee_id = args.assignee_id ?? record.owner_id
  record.subject = args.subject ?? ''
  if (!args.due_at && !args.done_at && args.kind !== 'task') record.done_at = at
  return record
}

async function closingStage(store: FieldbookDB, dealId: string, kind: 'won' | 'lost'): Promise<string | undefined> {
  const deal = await store.deal.get(dealId)
  if (!deal) return undefined
  const stages = await store.stage.where('pipeline_id').equals(deal.pipeline_id).toArray()
  return stages.find((s) => s.kind === kind)?.id
}

async function patch(store: FieldbookDB, entity: 'company' | 'contact' | 'deal' | 'activity', id: string, fields: Row) {
  await store.records(entity).update(id, { ...fields, updated_at: NOW() } as never)
}

/** A mutation's effect on the device's records (what the server will do, as far as the device can tell). */
export async function apply(store: FieldbookDB, row: OutboxRow, me: string): Promise<void> {
  const { id = '', ...fields } = row.args
  const at = row.at
  switch (row.name) {
    case 'company.create':
      await store.company.put(created(COMPANY, row.args, me, at) as never)
      return
    case 'contact.create':
      await store.contact.put(created(CONTACT, row.args, me, at) as never)
      return
    case 'company.update':
      return patch(store, 'company', id, fields)
    case 'contact.update':
      return patch(store, 'contact', id, fields)
    case 'deal.update':
      return patch(store, 'deal', id, fields)
    case 'deal.create': {
      const stage = await store.stage.get(String(row.args.stage_id))
      const record = created({ amount_minor: 0, custom: {}, lost_at: null, won_at: null }, row.args, me, at)
      await store.deal.put({
        ...record,
        pipeline_id: stage?.pipeline_id,
        status: 'open',
        stage_entered_at: at,
        rotten: false,
        rots_at: null,
        last_activity_at: null,
        lost_reason_id: null,
        lost_note: null,
        previous_deal_id: null,
        expected_close_on: row.args.expected_close_on ?? null,
      } as never)
      return
    }
    case 'deal.move':
      return patch(store, 'deal', id, { stage_id: fields.stage_id, stage_entered_at: at, rotten: false })
    case 'deal.win':
      return patch(store, 'deal', id, { status: 'won', won_at: at, stage_id: await closingStage(store, id, 'won') })
    case 'deal.lose':
      return patch(store, 'deal', id, {
        status: 'lost',
        lost_at: at,
        lost_reason_id: fields.lost_reason_id,
        lost_note: fields.note ?? null,
        stage_id: await closingStage(store, id, 'lost'),
      })
    case 'activity.log':
    case 'task.create': {
      const record = activity(row.args, me, at)
      const step = row.args.next_step as Row | null | undefined
      if (step?.id) {
        record.next_step_id = step.id
        await store.activity.put(
          activity(
            {
              id: String(step.id),
              kind: step.kind ?? 'task',
              subject: step.subject ?? '',
              due_at: step.due_at,
              assignee_id: step.assignee_id ?? null,
              owner_id: record.owner_id,
              company_id: record.company_id,
              contact_id: record.contact_id,
              deal_id: record.deal_id,
            },
            me,
            at,
          ) as never,
        )
      }
      await store.activity.put(record as never)
      return
    }
    case 'task.complete':
      return patch(store, 'activity', id, { done_at: fields.done_at ?? at, outcome: fields.outcome ?? null })
    case 'share.create':
      return
  }
}

/** The signed-in user's id, as stored with the session. */
async function myId(store: FieldbookDB = db): Promise<string> {
  const session = await store.getMeta<{ user: { id: string } }>('session')
  return session?.user.id ?? ''
}

const WRITTEN = (store: FieldbookDB) => [
  store.company,
  store.contact,
  store.deal,
  store.activity,
  store.stage,
  store.outbox,
  store.meta,
]

/** Make a change: shown at once, queued for the server, in one transaction. Returns the mutation id. */
export async function mutate(
  name: MutationName,
  args: Args,
  baseVersion?: number | null,
  store: FieldbookDB = db,
): Promise<number> {
  const row: OutboxRow = { name, args, base_version: baseVersion ?? null, at: NOW() }
  const mutationId = await store.transaction('rw', WRITTEN(store), async () => {
    await apply(store, row, await myId(store))
    return (await store.outbox.add(row)) as number
  })
  changed.dispatchEvent(new Event('queued'))
  return mutationId
}

/** Replays every queued change over the records (after a pull put the server's versions back). */
export async function replayOutbox(store: FieldbookDB): Promise<void> {
  const me = await myId(store)
  for (const row of await store.outbox.orderBy('id').toArray()) await apply(store, row, me)
}

/** Fired when something is queued: the sync engine pushes soon after. */
export const changed = new EventTarget()
