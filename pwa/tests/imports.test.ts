// What the Import screen and the lists' Export work out themselves: the step and progress of a job, field names in
// both languages, the suggestions the admin confirms, the reconciliation sentence, the column a refusal names, the
// name of a downloaded file and the address of an export.
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ImportJob, ImportValue } from '../src/screens/imports-logic'

async function inLanguage(languages: string[]) {
  vi.stubGlobal('navigator', { languages })
  vi.resetModules()
  return import('../src/screens/imports-logic')
}

afterEach(() => {
  vi.unstubAllGlobals()
  vi.resetModules()
})

const job = (over: Partial<ImportJob>): ImportJob =>
  ({
    status: 'mapping',
    rows_total: 10,
    rows_done: 0,
    planned: {},
    counts: {},
    ...over,
  }) as ImportJob

describe('a job', () => {
  it('opens at the step where it stopped, and says which phase a closed page interrupted', async () => {
    const { stepOf, runningPhase, discardable } = await inLanguage(['en-GB'])
    expect(stepOf('mapping')).toBe('mapping')
    expect(stepOf('previewing')).toBe('preview')
    expect(stepOf('previewed')).toBe('preview')
    expect(stepOf('importing')).toBe('import')
    for (const status of ['imported', 'undoing', 'undone'] as const) expect(stepOf(status)).toBe('result')
    expect(runningPhase('previewing')).toBe('preview')
    expect(runningPhase('importing')).toBe('commit')
    expect(runningPhase('undoing')).toBe('undo')
    expect(runningPhase('previewed')).toBeNull()
    // Only a job that wrote nothing (or was undone) can be discarded.
    expect(['mapping', 'previewed', 'undone'].every((s) => discardable(s as ImportJob['status']))).toBe(true)
    expect(['previewing', 'importing', 'imported', 'undoing'].some((s) => discardable(s as ImportJob['status']))).toBe(
      false,
    )
  })

  it("counts the dry run's totals before the import and the import's after", async () => {
    const { totalsOf } = await inLanguage(['en-GB'])
    const planned = { create: 6, reject: 4 }
    const counts = { create: 5, update: 1, reject: 4 }
    expect(totalsOf(job({ status: 'previewed', planned, counts }))).toEqual({
      create: 6,
      update: 0,
      merge: 0,
      reject: 4,
      skip: 0,
    })
    expect(totalsOf(job({ status: 'imported', planned, counts }))).toMatchObject({ create: 5, update: 1, reject: 4 })
    expect(totalsOf(job({ status: 'undone', planned, counts }))).toMatchObject({ create: 5, update: 1 })
  })

  it('measures an undo against the rows that wrote something, not every row', async () => {
    const { progressOf } = await inLanguage(['en-GB'])
    expect(progressOf(job({ status: 'previewing', rows_done: 200, rows_total: 1000 }))).toEqual({
      done: 200,
      total: 1000,
    })
    const counts = { create: 3, update: 2, merge: 1, reject: 4 }
    expect(progressOf(job({ status: 'undoing', rows_done: 2, counts }))).toEqual({ done: 2, total: 6 })
    expect(progressOf(job({ status: 'undone', rows_done: 6, counts }))).toEqual({ done: 6, total: 6 })
    // Without the import's counts, the dry run's say how many rows wrote something.
    const planned = { create: 4, update: 1, reject: 5 }
    expect(progressOf(job({ status: 'undoing', rows_done: 1, planned }))).toEqual({ done: 1, total: 5 })
  })
})

describe('field names', () => {
  it('are translated for the built-in keys, by kind of record where a key means something else', async () => {
    const { fieldLabel } = await inLanguage(['es-ES'])
    expect(fieldLabel('contact', { key: 'emails', label: 'E-mail' })).toBe('Correo')
    expect(fieldLabel('contact', { key: 'name', label: 'Full name' })).toBe('Nombre completo')
    expect(fieldLabel('company', { key: 'name', label: 'Name' })).toBe('Nombre')
    expect(fieldLabel('contact', { key: 'title', label: 'Job title' })).toBe('Cargo')
    expect(fieldLabel('deal', { key: 'title', label: 'Title' })).toBe('Título')
    expect(fieldLabel('contact', { key: 'title', label: 'Job title' }, 'en')).toBe('Job title')
  })

  it("keep a custom field's own label, and the server's for a key the app does not know", async () => {
    const { fieldLabel } = await inLanguage(['es-ES'])
    expect(fieldLabel('company', { key: 'custom.region', label: 'Zona comercial' })).toBe('Zona comercial')
    expect(fieldLabel('company', { key: 'vat_number', label: 'VAT number' })).toBe('VAT number')
  })
})

describe('sample values', () => {
  it('are the first non-empty cells of each column, numbers in the locale and errors as they came', async () => {
    const { samples } = await inLanguage(['es-ES'])
    const rows = [
      { cells: ['Ana', null, 1234.5] },
      { cells: ['', 'ana@example.com', { error: '#DIV/0!' }] },
      { cells: ['Luis', 'luis@example.com', true] },
      { cells: ['Eva', 'eva@example.com', 3] },
    ]
    expect(samples(rows, 3)).toEqual([
      ['Ana', 'Luis', 'Eva'],
      ['ana@example.com', 'luis@example.com', 'eva@example.com'],
      ['1234,5', '#DIV/0!', 'true'],
    ])
  })
})

describe('values that match nothing', () => {
  const value = (over: Partial<ImportValue>): ImportValue =>
    ({
      field: 'company',
      value: 'Acme Corp.',
      rows: 1,
      candidates: [],
      action: null,
      target_id: null,
      ...over,
    }) as ImportValue
  const acme = { id: 'c1', label: 'Acme Corp', score: 95 }
  const other = { id: 'c2', label: 'Acme Tools', score: 80 }

  it('suggest their closest record, and nothing when there is none', async () => {
    const { suggestion } = await inLanguage(['en-GB'])
    expect(suggestion(value({ candidates: [acme, other] }))).toEqual({
      field: 'company',
      value: 'Acme Corp.',
      action: 'map',
      target_id: 'c1',
    })
    expect(suggestion(value({}))).toBeNull()
  })

  it("are confirmed with the admin's own choices first, the suggestions for the rest, and decided ones left alone", async () => {
    const { confirmedDecisions, valueKey } = await inLanguage(['en-GB'])
    const values = [
      value({ value: 'Acme Corp.', candidates: [acme, other] }),
      value({ value: 'Acme Tool', candidates: [other, acme] }),
      value({ value: 'Nowhere Ltd', candidates: [] }),
      value({ value: 'Decided SA', candidates: [acme], action: 'reject' }),
    ]
    const own = { field: 'company', value: 'Acme Tool', action: 'create' as const, target_id: null }
    expect(confirmedDecisions(values, new Map([[valueKey(values[1]), own]]))).toEqual([
      { field: 'company', value: 'Acme Corp.', action: 'map', target_id: 'c1' },
      own,
    ])
  })
})

describe('the reconciliation sentence', () => {
  const totals = { create: 1200, update: 2, merge: 1, reject: 1, skip: 0 }

  it('adds the outcomes up to the rows read, in English', async () => {
    const { reconciliation, adds } = await inLanguage(['en-GB'])
    expect(reconciliation(1204, totals)).toBe(
      '1,204 rows in = 1,200 created + 2 updated + 1 merged + 1 rejected + 0 skipped',
    )
    expect(adds(1204, totals)).toBe(true)
    expect(adds(1205, totals)).toBe(false)
  })

  it('and in Spanish, with its number format', async () => {
    const { reconciliation } = await inLanguage(['es-ES'])
    expect(reconciliation(1204, totals)).toBe(
      '1204 filas leídas = 1200 creadas + 2 actualizadas + 1 fusionadas + 1 rechazadas + 0 omitidas',
    )
    expect(reconciliation(12040, { ...totals, create: 12036 })).toMatch(/^12\.040 filas leídas = 12\.036 creadas/)
    expect(reconciliation(1, { create: 1, update: 0, merge: 0, reject: 0, skip: 0 })).toMatch(/^1 fila leída =/)
  })
})

describe('a refused mapping', () => {
  it('names its column through the pointer, unescaped', async () => {
    const { columnOfPointer } = await inLanguage(['en-GB'])
    expect(columnOfPointer('#/columns/Correo')).toBe('Correo')
    expect(columnOfPointer('#/columns/Fecha ~1 hora')).toBe('Fecha / hora')
    expect(columnOfPointer('#/columns/a~0b')).toBe('a~b')
    expect(columnOfPointer('#/columns')).toBeNull()
    expect(columnOfPointer('#/match_key')).toBeNull()
    expect(columnOfPointer(undefined)).toBeNull()
  })
})

describe('a downloaded file', () => {
  it("takes the server's name: the UTF-8 one first, then the plain one, else the fallback", async () => {
    const { filenameOf } = await import('../src/api/transfer')
    expect(
      filenameOf(
        `attachment; filename="contactos-informe-2026-03-01.csv"; filename*=UTF-8''contactos%20%C3%B1-informe.csv`,
        'x.csv',
      ),
    ).toBe('contactos ñ-informe.csv')
    expect(filenameOf('attachment; filename="report.xlsx"', 'x.xlsx')).toBe('report.xlsx')
    expect(filenameOf('attachment; filename=report.csv', 'x.csv')).toBe('report.csv')
    expect(filenameOf(null, 'x.csv')).toBe('x.csv')
    expect(filenameOf('attachment', 'x.csv')).toBe('x.csv')
  })
})

describe('an export', () => {
  it('is for admins, managers and marketing (not activities for marketing), never reps', async () => {
    const { canExport } = await import('../src/components/export')
    expect(canExport('admin', 'activities')).toBe(true)
    expect(canExport('manager', 'deals')).toBe(true)
    expect(canExport('marketing', 'contacts')).toBe(true)
    expect(canExport('marketing', 'activities')).toBe(false)
    expect(canExport('rep', 'companies')).toBe(false)
    expect(canExport(undefined, 'companies')).toBe(false)
  })

  it("asks for the list's filters, the language, and the separator Excel expects in Spanish", async () => {
    const { defaultDelimiter, exportUrl } = await import('../src/components/export')
    expect(defaultDelimiter('es')).toBe(';')
    expect(defaultDelimiter('en')).toBe(',')
    const url = new URL(
      exportUrl('deals', 'csv', { delimiter: ';', language: 'es' }, { pipeline_id: 'p1', owner_id: 'me', q: '' }),
      'http://localhost',
    )
    expect(url.pathname).toBe('/api/v1/exports/deals')
    expect(Object.fromEntries(url.searchParams)).toEqual({
      format: 'csv',
      lang: 'es',
      delimiter: ';',
      pipeline_id: 'p1',
      owner_id: 'me',
    })
    const xlsx = new URL(exportUrl('companies', 'xlsx', { delimiter: ';', language: 'en' }), 'http://localhost')
    expect(Object.fromEntries(xlsx.searchParams)).toEqual({ format: 'xlsx', lang: 'en' })
  })
})
