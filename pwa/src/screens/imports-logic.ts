// What the Import screen works out by itself, apart from drawing it: which step a job is at, how far its running
// phase is, field names in the user's language, the suggested decisions, the reconciliation sentence and the
// column a refusal names.
import type { Schemas } from '../api/client'
import { defineMessages, fmt, lang, plural, type Lang, type Params } from '../i18n'

export type ImportJob = Schemas['ImportJobRead']
export type ImportValue = Schemas['ImportValueRead']
export type ImportRow = Schemas['ImportRowRead']
export type ImportMapping = Schemas['ImportMappingRead']
export type Entity = Schemas['ImportEntity']
export type JobStatus = Schemas['JobStatus']
export type FieldInfo = Schemas['FieldInfo']

export const ENTITIES: readonly Entity[] = ['company', 'contact', 'deal', 'activity']
export const OUTCOMES = ['create', 'update', 'merge', 'reject', 'skip'] as const
export type Outcome = (typeof OUTCOMES)[number]
/** What an undo puts back: the rows that wrote something. */
const WRITTEN: readonly Outcome[] = ['create', 'update', 'merge']

export type Step = 'upload' | 'mapping' | 'values' | 'preview' | 'import' | 'result'
export const STEPS: readonly Step[] = ['upload', 'mapping', 'values', 'preview', 'import', 'result']
export type Phase = 'preview' | 'commit' | 'undo'

/** The step a job opens at: where it stopped. */
export function stepOf(status: JobStatus): Step {
  switch (status) {
    case 'mapping':
      return 'mapping'
    case 'previewing':
    case 'previewed':
      return 'preview'
    case 'importing':
      return 'import'
    default:
      return 'result'
  }
}

/** The phase a request interrupted (the page closed) and a call resumes; null when none is running. */
export function runningPhase(status: JobStatus): Phase | null {
  return status === 'previewing' ? 'preview' : status === 'importing' ? 'commit' : status === 'undoing' ? 'undo' : null
}

/** A job that has written nothing (or whose import was undone) can be thrown away. */
export const discardable = (status: JobStatus): boolean =>
  status === 'mapping' || status === 'previewed' || status === 'undone'

/** The rows per outcome that count now: the import's once it ran, the dry run's before. */
export function totalsOf(job: Pick<ImportJob, 'status' | 'counts' | 'planned'>): Record<Outcome, number> {
  const ran = job.status === 'imported' || job.status === 'undoing' || job.status === 'undone'
  const source = (ran || job.status === 'importing' ? job.counts : job.planned) ?? {}
  return Object.fromEntries(OUTCOMES.map((o) => [o, source[o] ?? 0])) as Record<Outcome, number>
}

const written = (totals: Record<string, number>) => WRITTEN.reduce((sum, o) => sum + (totals[o] ?? 0), 0)

/** How far the running (or last) phase is, as rows done of rows to do. An undo goes through the rows that wrote
 *  something only: the import's count of them, else the dry run's (a job whose counts were cleared). */
export function progressOf(job: Pick<ImportJob, 'status' | 'counts' | 'planned' | 'rows_done' | 'rows_total'>): {
  done: number
  total: number
} {
  const undo = job.status === 'undoing' || job.status === 'undone'
  const total = undo ? written(job.counts) || written(job.planned) || job.rows_total : job.rows_total
  return { done: Math.min(job.rows_done, total), total }
}

// Field names in both languages: the built-in keys (a key can mean something else for another kind of record:
// a contact's "title" is a job title). Custom fields (`custom.*`) keep the label their organisation gave them.
const FIELD_LABELS: Record<Lang, Record<string, string>> = {
  en: {
    id: 'Fieldbook id',
    name: 'Name',
    'contact.name': 'Full name',
    first_name: 'First name',
    last_name: 'Last name',
    title: 'Title',
    'contact.title': 'Job title',
    domain: 'Website',
    industry: 'Industry',
    size: 'Employees',
    phone: 'Phone',
    phones: 'Phone',
    address: 'Address',
    city: 'City',
    country: 'Country',
    tags: 'Tags',
    segment: 'Segment',
    source: 'Source',
    owner: 'Owner (name or e-mail)',
    company: 'Company',
    emails: 'E-mail',
    email_consent: 'E-mail consent',
    phone_consent: 'Phone consent',
    contact: 'Contact (e-mail or name)',
    pipeline: 'Pipeline',
    stage: 'Stage',
    amount: 'Amount',
    currency: 'Currency',
    product: 'Product',
    quantity: 'Quantity',
    expected_close_on: 'Expected close date',
    created_on: 'Created on',
    closed_on: 'Won or lost on',
    lost_reason: 'Lost reason',
    kind: 'Type',
    subject: 'Subject',
    body: 'Notes',
    done_at: 'Done at',
    due_at: 'Due',
    deal: 'Deal',
    duration: 'Duration (minutes)',
    direction: 'Call direction',
    outcome: 'Call outcome',
  },
  es: {
    id: 'Id de Fieldbook',
    name: 'Nombre',
    'contact.name': 'Nombre completo',
    first_name: 'Nombre de pila',
    last_name: 'Apellidos',
    title: 'Título',
    'contact.title': 'Cargo',
    domain: 'Sitio web',
    industry: 'Sector',
    size: 'Empleados',
    phone: 'Teléfono',
    phones: 'Teléfono',
    address: 'Dirección',
    city: 'Ciudad',
    country: 'País',
    tags: 'Etiquetas',
    segment: 'Segmento',
    source: 'Origen',
    owner: 'Responsable (nombre o correo)',
    company: 'Empresa',
    emails: 'Correo',
    email_consent: 'Acepta correos',
    phone_consent: 'Acepta llamadas',
    contact: 'Contacto (correo o nombre)',
    pipeline: 'Embudo',
    stage: 'Etapa',
    amount: 'Importe',
    currency: 'Moneda',
    product: 'Producto',
    quantity: 'Cantidad',
    expected_close_on: 'Fecha prevista de cierre',
    created_on: 'Creado el',
    closed_on: 'Ganado o perdido el',
    lost_reason: 'Motivo de pérdida',
    kind: 'Tipo',
    subject: 'Asunto',
    body: 'Notas',
    done_at: 'Hecha el',
    due_at: 'Vence',
    deal: 'Negocio',
    duration: 'Duración (minutos)',
    direction: 'Sentido de la llamada',
    outcome: 'Resultado de la llamada',
  },
}

/** A field's name in the user's language; the server's label for custom fields and keys this app does not know. */
export function fieldLabel(entity: Entity, field: Pick<FieldInfo, 'key' | 'label'>, language: Lang = lang): string {
  if (field.key.startsWith('custom.')) return field.label
  const labels = FIELD_LABELS[language]
  return labels[`${entity}.${field.key}`] ?? labels[field.key] ?? field.label
}

/** A cell as text: errors (a formula that failed in Excel) as the error, empty cells as nothing. */
export function cellText(cell: unknown): string {
  if (cell === null || cell === undefined) return ''
  if (typeof cell === 'object' && 'error' in cell) return String((cell as { error: unknown }).error)
  if (typeof cell === 'number') return fmt.number(cell)
  return String(cell)
}

/** The first `count` values each column has in these rows, skipping empty cells. */
export function samples(rows: Pick<ImportRow, 'cells'>[], columns: number, count = 3): string[][] {
  return Array.from({ length: columns }, (_, index) =>
    rows
      .map((row) => cellText(row.cells[index]))
      .filter((text) => text.trim() !== '')
      .slice(0, count),
  )
}

export type Decision = Schemas['Decision']
export interface Candidate {
  id: string
  label: string
  score: number
}

export const candidatesOf = (value: Pick<ImportValue, 'candidates'>): Candidate[] =>
  (value.candidates as unknown as Candidate[]).filter((c) => c && typeof c.id === 'string')

/** The suggested decision for a value: its closest record, which the admin confirms (never applied unasked). */
export function suggestion(value: Pick<ImportValue, 'field' | 'value' | 'candidates'>): Decision | null {
  const best = candidatesOf(value)[0]
  return best ? { field: value.field, value: value.value, action: 'map', target_id: best.id } : null
}

/** "Confirm suggestions": the admin's own choices, then the suggestion for every value still waiting on one. */
export function confirmedDecisions(
  values: Pick<ImportValue, 'field' | 'value' | 'candidates' | 'action'>[],
  chosen: Map<string, Decision>,
): Decision[] {
  const decisions: Decision[] = []
  for (const value of values) {
    const own = chosen.get(valueKey(value))
    if (own) decisions.push(own)
    else if (value.action === null) {
      const suggested = suggestion(value)
      if (suggested) decisions.push(suggested)
    }
  }
  return decisions
}

export const valueKey = (value: Pick<ImportValue, 'field' | 'value'>): string => `${value.field}\u0000${value.value}`

/** The column a 422 from the mapping names (`#/columns/<header>`, JSON-pointer escaped), if any. */
export function columnOfPointer(pointer: string | undefined): string | null {
  const prefix = '#/columns/'
  if (!pointer?.startsWith(prefix)) return null
  return pointer.slice(prefix.length).replace(/~1/g, '/').replace(/~0/g, '~')
}

export interface Problem {
  detail?: string
  title?: string
  status?: number
  errors?: { pointer?: string; detail?: string }[]
}

export const asProblem = (body: unknown): Problem =>
  body && typeof body === 'object' ? (body as Problem) : { detail: String(body ?? '') }

const m = defineMessages({
  en: {
    sentence: (p: Params) =>
      `${plural(Number(p.total), { one: '{n} row in', other: '{n} rows in' })} = ${p.create} created + ${p.update} updated + ${p.merge} merged + ${p.reject} rejected + ${p.skip} skipped`,
  },
  es: {
    sentence: (p: Params) =>
      `${plural(Number(p.total), { one: '{n} fila leída', other: '{n} filas leídas' })} = ${p.create} creadas + ${p.update} actualizadas + ${p.merge} fusionadas + ${p.reject} rechazadas + ${p.skip} omitidas`,
  },
})

/** "10 rows in = 6 created + 2 updated + 1 merged + 1 rejected + 0 skipped", numbers in the user's locale. */
export function reconciliation(rowsTotal: number, totals: Record<Outcome, number>): string {
  const parts = Object.fromEntries(OUTCOMES.map((o) => [o, fmt.number(totals[o])]))
  return m('sentence', { total: rowsTotal, ...parts })
}

/** Whether the outcomes add up to the rows read (the server says so too, as `balanced`). */
export const adds = (rowsTotal: number, totals: Record<Outcome, number>): boolean =>
  OUTCOMES.reduce((sum, o) => sum + totals[o], 0) === rowsTotal
