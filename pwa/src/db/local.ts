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

/** When an open deal goes rotten: its stage's `rotten_days` after `since` (as the server's rotting.py). */
async function rotsAt(store: FieldbookDB, stageId: string, since: string): Promise<string | null> {
  const days = (await store.stage.get(stageId))?.rotten_days
  return days ? new Date(new Date(since).getTime() + days * 86_400_000).toISOString() : null
}

/** Something happened on the deal: fresh again until its stage's limit passes (derived, so no new version). */
async function freshen(store: FieldbookDB, dealId: unknown, at: string): Promise<void> {
  const deal = typeof dealId === 'string' ? await store.deal.get(dealId) : undefined
  if (!deal || deal.status !== 'open' || (deal.last_activity_at && deal.last_activity_at >= at)) return
  const since = deal.stage_entered_at > at ? deal.stage_entered_at : at
  await store.deal.update(deal.id, { last_activity_at: at, rots_at: await rotsAt(store, deal.stage_id, since) })
}

/** The deal's won or lost stage, as fields to set (none when the device does not know it). */
async function closingStage(store: FieldbookDB, dealId: string, kind: 'won' | 'lost'): Promise<Row> {
  const deal = await store.deal.get(dealId)
  const stages = deal ? await store.stage.where('pipeline_id').equals(deal.pipeline_id).toArray() : []
  const stage = stages.find((s) => s.kind === kind)
  return stage ? { stage_id: stage.id } : {}
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
      return patch(store, 'deal', id, {
        stage_id: fields.stage_id,
        stage_entered_at: at,
        rots_at: await rotsAt(store, String(fields.stage_id), at),
      })
    case 'deal.win':
      return patch(store, 'deal', id, {
        status: 'won',
        won_at: at,
        rots_at: null,
        ...(await closingStage(store, id, 'won')),
      })
    case 'deal.lose':
      return patch(store, 'deal', id, {
        status: 'lost',
        lost_at: at,
        lost_reason_id: fields.lost_reason_id,
        lost_note: fields.note ?? null,
        rots_at: null,
        ...(await closingStage(store, id, 'lost')),
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
      if (record.done_at) await freshen(store, record.deal_id, String(record.done_at))
      return
    }
    case 'task.complete': {
      const done = String(fields.done_at ?? at)
      await patch(store, 'activity', id, { done_at: done, ...(fields.outcome ? { outcome: fields.outcome } : {}) })
      return freshen(store, (await store.activity.get(id))?.deal_id, done)
    }
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
