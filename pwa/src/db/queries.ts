// Reads the screens share, all from IndexedDB.
import type { Activity, Company, Contact, Deal, Stage } from '../api/client'
import { db } from './db'

export type ClientKind = 'company' | 'contact'

/** The client a deal or an activity is about: its contact when it has one, else its company. */
export async function clientOf(record: Pick<Activity | Deal, 'company_id' | 'contact_id'>): Promise<{
  kind: ClientKind
  id: string
  name: string
} | null> {
  if (record.contact_id) {
    const contact = await db.contact.get(record.contact_id)
    if (contact) return { kind: 'contact', id: contact.id, name: contact.name }
  }
  if (record.company_id) {
    const company = await db.company.get(record.company_id)
    if (company) return { kind: 'company', id: company.id, name: company.name }
  }
  return null
}

export const clientHref = (kind: ClientKind, id: string) => `/clients/${kind}/${id}`

/** A user's name by id (users are in the working set), for "who did it". */
export async function userNames(): Promise<Map<string, string>> {
  return new Map((await db.user.toArray()).map((user) => [user.id, user.name]))
}

/** The phone to call for a client: a contact's first, else its company's. */
export function phoneOf(client: Company | Contact): string | null {
  return 'phones' in client ? (client.phones[0] ?? null) : client.phone
}

/** Activities about a client, deal or contact, newest first. */
export async function activitiesOf(field: 'company_id' | 'contact_id' | 'deal_id', id: string): Promise<Activity[]> {
  const rows = await db.activity.where(field).equals(id).toArray()
  return rows.sort((a, b) =>
    (b.done_at ?? b.due_at ?? b.created_at).localeCompare(a.done_at ?? a.due_at ?? a.created_at),
  )
}

/** Remembers a client the user opened, for the Clients screen's "Recent". */
export async function rememberRecent(kind: ClientKind, id: string): Promise<void> {
  const recent = (await db.getMeta<{ kind: ClientKind; id: string }[]>('recent')) ?? []
  const next = [{ kind, id }, ...recent.filter((r) => r.id !== id)].slice(0, 20)
  await db.setMeta('recent', next)
}

/** A pipeline's open stages in board order (the won and lost stages are reached by Won and Lost, not by a move). */
export async function openStages(pipelineId: string) {
  const stages = await db.stage.where('pipeline_id').equals(pipelineId).toArray()
  return stages.filter((stage) => stage.kind === 'open').sort((a, b) => a.position - b.position)
}

/** "MG" for Marta García: who owns a deal, at a glance. */
export const initials = (name: string): string =>
  name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((word) => word[0].toUpperCase())
    .join('')

/** A client's open deals with their stage, the largest first. */
export async function openDealsOf(
  field: 'company_id' | 'contact_id',
  id: string,
): Promise<{ deal: Deal; stage: Stage | undefined }[]> {
  const deals = (await db.deal.where(field).equals(id).toArray()).filter((deal) => deal.status === 'open')
  const stages = await db.stage.bulkGet(deals.map((deal) => deal.stage_id))
  return deals.map((deal, i) => ({ deal, stage: stages[i] })).sort((a, b) => b.deal.amount_minor - a.deal.amount_minor)
}

/** Whether a deal has gone without a touch past its stage's limit, as of now (the stored flag is as of the pull). */
export const isRotten = (deal: Pick<Deal, 'status' | 'rots_at'>, now: number = Date.now()): boolean =>
  deal.status === 'open' && deal.rots_at !== null && new Date(deal.rots_at).getTime() <= now

/** Whether a planned activity is past due, as of now. */
export const isOverdue = (activity: Pick<Activity, 'done_at' | 'due_at'>, now: number = Date.now()): boolean =>
  !activity.done_at && activity.due_at !== null && new Date(activity.due_at).getTime() < now
