// "Export" on the lists: the list's records, with its current filters, as a CSV or Excel file from the server
// (GET /exports/{entity}), for the roles allowed to export. Spanish users get `;` as the CSV separator, which Excel
// in Spain expects, and column titles in their language.
import { useState } from 'preact/hooks'
import { API, ORIGIN, type Schemas } from '../api/client'
import { download } from '../api/transfer'
import { useOnline, useSession } from '../hooks'
import { defineMessages, lang, type Lang } from '../i18n'
import './export.css'

const m = defineMessages({
  en: {
    export: 'Export',
    what: 'What to export',
    companies: 'Companies',
    contacts: 'Contacts',
    deals: 'Deals',
    activities: 'Activities',
    separator: 'CSV separator',
    comma: 'Comma (,)',
    semicolon: 'Semicolon (;), for Excel in Spanish',
    csv: 'CSV',
    xlsx: 'Excel',
    preparing: 'Preparing the file…',
    saved: 'Downloaded {name}.',
    failed: 'Could not export: {error}',
    offline: 'Exporting needs a connection.',
  },
  es: {
    export: 'Exportar',
    what: 'Qué exportar',
    companies: 'Empresas',
    contacts: 'Contactos',
    deals: 'Negocios',
    activities: 'Actividades',
    separator: 'Separador CSV',
    comma: 'Coma (,)',
    semicolon: 'Punto y coma (;), para Excel en español',
    csv: 'CSV',
    xlsx: 'Excel',
    preparing: 'Preparando el archivo…',
    saved: 'Descargado {name}.',
    failed: 'No se pudo exportar: {error}',
    offline: 'Para exportar hace falta conexión.',
  },
})

export type ExportEntity = 'companies' | 'contacts' | 'deals' | 'activities'
export type ExportFormat = 'csv' | 'xlsx'
export type Delimiter = ',' | ';'
type Role = Schemas['Role']

/** Who may export what (the server says the same: api/exports/routes.py); reps may not. */
export function canExport(role: Role | undefined, entity: ExportEntity): boolean {
  if (role === 'admin' || role === 'manager') return true
  return role === 'marketing' && entity !== 'activities'
}

/** Excel in Spanish (and other decimal-comma locales) splits CSV columns on `;`. */
export const defaultDelimiter = (language: Lang): Delimiter => (language === 'es' ? ';' : ',')

/** The export's address: the file's format and language, and the list's filters (empty ones left out). */
export function exportUrl(
  entity: ExportEntity,
  format: ExportFormat,
  options: { delimiter: Delimiter; language: Lang },
  filters: Record<string, string | null | undefined> = {},
): string {
  const query = new URLSearchParams({ format, lang: options.language })
  if (format === 'csv') query.set('delimiter', options.delimiter)
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value)
  return `${API}/exports/${entity}?${query}`
}

export function ExportMenu(props: {
  /** What can be exported from this list (several: the user picks one). */
  entities: ExportEntity[]
  filters: Record<string, string | null | undefined>
  /** What the filters mean, in words ("Your clients"). */
  scope?: string
}) {
  const role = useSession()?.user.role
  const online = useOnline()
  const allowed = props.entities.filter((entity) => canExport(role, entity))
  const [chosen, setChosen] = useState<ExportEntity | null>(null)
  const [delimiter, setDelimiter] = useState<Delimiter>(defaultDelimiter(lang))
  const [busy, setBusy] = useState(false)
  const [status, setStatus] = useState('')
  const [failed, setFailed] = useState('')
  if (!allowed.length) return null
  const entity = chosen && allowed.includes(chosen) ? chosen : allowed[0]

  const save = (format: ExportFormat) => {
    setBusy(true)
    setFailed('')
    setStatus(m('preparing'))
    const url = new URL(exportUrl(entity, format, { delimiter, language: lang }, props.filters), ORIGIN)
    download(url, `${entity}.${format}`)
      .then((name) => setStatus(m('saved', { name })))
      .catch((e: unknown) => {
        setStatus('')
        setFailed(m('failed', { error: e instanceof Error ? e.message : String(e) }))
      })
      .finally(() => setBusy(false))
  }

  return (
    <details class="export card" data-testid="export">
      <summary>{m('export')}</summary>
      {props.scope && <p class="muted">{props.scope}</p>}
      {allowed.length > 1 && (
        <fieldset class="chips">
          <legend>{m('what')}</legend>
          {allowed.map((option) => (
            <button type="button" class="chip" aria-pressed={option === entity} onClick={() => setChosen(option)}>
              {m(option)}
            </button>
          ))}
        </fieldset>
      )}
      <label class="field">
        <span>{m('separator')}</span>
        <select value={delimiter} onChange={(e) => setDelimiter(e.currentTarget.value as Delimiter)}>
          <option value=",">{m('comma')}</option>
          <option value=";">{m('semicolon')}</option>
        </select>
      </label>
      <div class="actions">
        <button type="button" disabled={busy || !online} onClick={() => save('csv')}>
          {m('csv')}
        </button>
        <button type="button" disabled={busy || !online} onClick={() => save('xlsx')}>
          {m('xlsx')}
        </button>
      </div>
      <p role="status" class="muted">
        {online ? status : m('offline')}
      </p>
      {failed && (
        <p role="alert" class="danger-text">
          {failed}
        </p>
      )}
    </details>
  )
}
