// Import (admins): a CSV or Excel file into Fieldbook in six steps. Upload it (with progress) and say what its rows
// are; map its columns to fields; decide on the values that name no record (an owner, a company); a dry run that
// says what each row would become; the import; and the result, which adds up, with its report and an undo. Below,
// the imports done so far, to reopen, resume when a page closed mid-run, or discard.
// Everything is on the server (imports are not kept on the device): the screen needs a connection.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { API, ORIGIN, SignedOut, TransportError, api, problemText } from '../api/client'
import { download, upload } from '../api/transfer'
import { BarChart, COLORS } from '../components/chart'
import { Sheet } from '../components/sheet'
import { userNames } from '../db/queries'
import { useLive, useOnline, useSession } from '../hooks'
import { defineMessages, fmt, locale, plural, type Params } from '../i18n'
import {
  ENTITIES,
  OUTCOMES,
  STEPS,
  adds,
  asProblem,
  candidatesOf,
  columnOfPointer,
  confirmedDecisions,
  discardable,
  fieldLabel,
  progressOf,
  reconciliation,
  runningPhase,
  samples,
  stepOf,
  suggestion,
  totalsOf,
  valueKey,
  type Decision,
  type Entity,
  type ImportJob,
  type ImportMapping,
  type ImportRow,
  type ImportValue,
  type Outcome,
  type Phase,
  type Step,
} from './imports-logic'
import '../components/insights.css'
import './imports.css'

/** The server's limit (FIELDBOOK_MAX_UPLOAD_BYTES, 25 MB by default): a bigger file is refused before it is sent. */
const MAX_BYTES = 25 * 1_048_576

const m = defineMessages({
  en: {
    title: 'Import',
    adminsOnly: 'Imports are for admins.',
    intro:
      'Bring companies, contacts, deals or activities from a spreadsheet. Nothing changes in Fieldbook until the import step, and an import can be undone.',
    steps: 'Steps',
    done: '(done)',
    'step-upload': 'Choose a file',
    'step-mapping': 'Map the columns',
    'step-values': 'Values that match nothing',
    'step-preview': 'Dry run',
    'step-import': 'Import',
    'step-result': 'Result',
    offline: 'Imports need a connection.',
    // Upload
    file: 'File (CSV or Excel .xlsx, up to 25 MB)',
    what: 'What are the rows?',
    company: 'Companies',
    contact: 'Contacts',
    deal: 'Deals',
    activity: 'Activities',
    upload: 'Upload',
    cancel: 'Cancel',
    uploading: (p: Params) => `Uploading ${p.name}: ${p.percent}`,
    reading: 'Reading the file…',
    noFile: 'Choose a file.',
    noEntity: 'Say what the rows are.',
    tooLarge: 'The file is larger than 25 MB: split it, or save it as CSV.',
    badFile: 'The file could not be read: {detail}',
    failed: 'Something went wrong: {detail}',
    cancelled: 'The upload was cancelled.',
    signedOut: 'Your session ended: sign in again.',
    saved: 'Saved mappings',
    savedNote: 'A file with the same column titles gets its saved mapping when it is uploaded.',
    noSaved: 'No mapping saved yet.',
    savedColumns: (p: Params) => plural(Number(p.n), { one: '{n} column', other: '{n} columns' }),
    forget: 'Forget',
    // Mapping
    fileRead: (p: Params) => `${p.name} · ${plural(Number(p.rows), { one: '{n} row', other: '{n} rows' })} · ${p.what}`,
    csvRead: 'Read as {encoding}, columns separated by “{delimiter}”, titles in row {row}.',
    xlsxRead: 'Titles in row {row}.',
    sheet: 'Sheet',
    sheetNote: 'To read another sheet, upload the file again.',
    columns: 'Columns',
    column: 'Column',
    examples: 'First values',
    noExamples: 'Empty in the first rows',
    field: 'Field',
    leaveOut: 'Leave out',
    required: '(required)',
    suggested: 'Suggested from the column title.',
    duplicateField: 'Another column is already mapped to {field}.',
    matchKey: 'Existing records',
    matchNone: 'Do not update: create every row',
    matchOn: 'Update the ones with the same {field}',
    matchExplainNone:
      'Every row creates a record; a row that is a duplicate (the same e-mail, phone, website or company name) is merged into the record it duplicates.',
    matchExplain:
      'Update existing records that have the same {field}; otherwise duplicates are merged (the same e-mail, phone, website or company name).',
    reading2: 'How the file is read',
    detected: 'Detected from the file; change it if it reads wrong.',
    dateOrder: 'Dates',
    dmy: 'Day first (31/12/2025)',
    mdy: 'Month first (12/31/2025)',
    decimalMark: 'Amounts',
    comma: 'Decimal comma (1.234,56)',
    point: 'Decimal point (1,234.56)',
    threshold: 'How alike company names must be to count as the same (70–100 %)',
    saveAs: 'Save this mapping as (optional)',
    continue: 'Continue',
    saving: 'Saving…',
    // Values
    valuesIntro:
      'These values name no record exactly. Confirm the suggested record, pick another, or say what to do. Rows wait for every decision.',
    valuesCount: (p: Params) => plural(Number(p.n), { one: '{n} value', other: '{n} values' }),
    rowsCount: (p: Params) => plural(Number(p.n), { one: '{n} row', other: '{n} rows' }),
    valueLegend: '“{value}” · {rows}',
    score: 'match {score}',
    suggestion: 'suggested',
    create: 'Create the company “{value}”',
    reject: 'Reject these rows',
    waiting: 'Waiting for your decision',
    others: 'For all the others',
    othersAsk: 'Ask me for each one',
    othersCreate: 'Create them',
    othersReject: 'Reject their rows',
    confirmAll: (p: Params) => plural(Number(p.n), { one: 'Confirm the suggestion', other: 'Confirm {n} suggestions' }),
    confirmed: (p: Params) => plural(Number(p.n), { one: '{n} decision saved.', other: '{n} decisions saved.' }),
    moreValues: 'Show more values',
    toPreview: 'Continue to the dry run',
    undecided: (p: Params) =>
      plural(Number(p.n), {
        one: '{n} value still waits for a decision.',
        other: '{n} values still wait for a decision.',
      }),
    noValues: 'Every value names a record: nothing to decide.',
    // Phases
    previewProgress: 'Dry run: {done} of {total} rows',
    commitProgress: 'Importing: {done} of {total} rows',
    undoProgress: 'Undoing: {done} of {total} rows',
    run: 'Run the dry run',
    resume: 'Resume',
    previewIntro: 'What each row would become. Nothing has been written yet.',
    outcome: 'Outcome',
    rows: 'Rows',
    create_: 'Create',
    update_: 'Update',
    merge_: 'Merge',
    reject_: 'Reject',
    skip_: 'Skip',
    totalsChart: 'Bar chart of the rows per outcome. The table below has the same numbers.',
    all: 'All',
    filter: 'Show rows',
    row: 'Row',
    reason: 'Reason',
    values: 'Values',
    moreRows: 'Show more rows',
    noRows: 'No row here.',
    back: 'Back to the mapping',
    toValues: 'Back to the values',
    importRows: (p: Params) => plural(Number(p.n), { one: 'Import {n} row', other: 'Import {n} rows' }),
    importIntro: 'Rows are written in batches; each row is written whole or not at all.',
    // Result
    imported: 'Imported',
    undone: 'Undone',
    undoing: 'Undoing',
    unbalanced:
      'These numbers do not add up to the rows read: some rows are unaccounted for. Check the report before relying on the import.',
    report: 'Reconciliation report',
    reportCsv: 'Download CSV',
    reportXlsx: 'Download Excel',
    reportSaved: 'Downloaded {name}.',
    undo: 'Undo the import',
    undoTitle: 'Undo this import?',
    undoCreated: (p: Params) =>
      plural(Number(p.n), {
        one: 'The record it created is deleted.',
        other: 'The {n} records it created are deleted.',
      }),
    undoChanged: (p: Params) =>
      plural(Number(p.n), {
        one: 'The record it updated or merged is put back as it was.',
        other: 'The {n} records it updated or merged are put back as they were.',
      }),
    undoSafe: 'If someone has changed any of them since, nothing is undone.',
    undoConfirm: 'Undo the import',
    undoneNote: 'This import was undone: what it wrote is gone.',
    again: 'Import another file',
    // History
    history: 'Imports so far',
    noHistory: 'No import yet.',
    by: 'by {name}',
    open: 'Open',
    discard: 'Discard',
    discardTitle: 'Discard “{name}”?',
    discardText: 'Its rows and decisions are deleted. Nothing in Fieldbook changes.',
    moreHistory: 'Show older imports',
    'status-mapping': 'Being mapped',
    'status-previewing': 'Dry run stopped',
    'status-previewed': 'Dry run done',
    'status-importing': 'Import stopped',
    'status-imported': 'Imported',
    'status-undoing': 'Undo stopped',
    'status-undone': 'Undone',
    part: '{n} {outcome}',
    'part-create': 'created',
    'part-update': 'updated',
    'part-merge': 'merged',
    'part-reject': 'rejected',
    'part-skip': 'skipped',
    loading: 'Loading…',
  },
  es: {
    title: 'Importar',
    adminsOnly: 'Las importaciones son para administradores.',
    intro:
      'Trae empresas, contactos, negocios o actividades desde una hoja de cálculo. Nada cambia en Fieldbook hasta el paso de importar, y una importación se puede deshacer.',
    steps: 'Pasos',
    done: '(hecho)',
    'step-upload': 'Elige un archivo',
    'step-mapping': 'Asigna las columnas',
    'step-values': 'Valores sin coincidencia',
    'step-preview': 'Prueba',
    'step-import': 'Importar',
    'step-result': 'Resultado',
    offline: 'Para importar hace falta conexión.',
    file: 'Archivo (CSV o Excel .xlsx, hasta 25 MB)',
    what: '¿Qué son las filas?',
    company: 'Empresas',
    contact: 'Contactos',
    deal: 'Negocios',
    activity: 'Actividades',
    upload: 'Subir',
    cancel: 'Cancelar',
    uploading: (p: Params) => `Subiendo ${p.name}: ${p.percent}`,
    reading: 'Leyendo el archivo…',
    noFile: 'Elige un archivo.',
    noEntity: 'Indica qué son las filas.',
    tooLarge: 'El archivo pasa de 25 MB: divídelo o guárdalo como CSV.',
    badFile: 'No se pudo leer el archivo: {detail}',
    failed: 'Algo falló: {detail}',
    cancelled: 'Se canceló la subida.',
    signedOut: 'Tu sesión terminó: vuelve a iniciar sesión.',
    saved: 'Asignaciones guardadas',
    savedNote: 'Un archivo con los mismos títulos de columna recibe su asignación guardada al subirlo.',
    noSaved: 'Aún no hay asignaciones guardadas.',
    savedColumns: (p: Params) => plural(Number(p.n), { one: '{n} columna', other: '{n} columnas' }),
    forget: 'Olvidar',
    fileRead: (p: Params) =>
      `${p.name} · ${plural(Number(p.rows), { one: '{n} fila', other: '{n} filas' })} · ${p.what}`,
    csvRead: 'Leído como {encoding}, columnas separadas por «{delimiter}», títulos en la fila {row}.',
    xlsxRead: 'Títulos en la fila {row}.',
    sheet: 'Hoja',
    sheetNote: 'Para leer otra hoja, vuelve a subir el archivo.',
    columns: 'Columnas',
    column: 'Columna',
    examples: 'Primeros valores',
    noExamples: 'Vacía en las primeras filas',
    field: 'Campo',
    leaveOut: 'No importar',
    required: '(obligatorio)',
    suggested: 'Sugerido por el título de la columna.',
    duplicateField: 'Otra columna ya está asignada a {field}.',
    matchKey: 'Registros existentes',
    matchNone: 'No actualizar: crear cada fila',
    matchOn: 'Actualizar los que tengan el mismo {field}',
    matchExplainNone:
      'Cada fila crea un registro; una fila duplicada (mismo correo, teléfono, web o nombre de empresa) se fusiona con el registro que duplica.',
    matchExplain:
      'Actualiza los registros existentes con el mismo {field}; si no, los duplicados se fusionan (mismo correo, teléfono, web o nombre de empresa).',
    reading2: 'Cómo se lee el archivo',
    detected: 'Detectado en el archivo; cámbialo si se lee mal.',
    dateOrder: 'Fechas',
    dmy: 'Día primero (31/12/2025)',
    mdy: 'Mes primero (12/31/2025)',
    decimalMark: 'Importes',
    comma: 'Coma decimal (1.234,56)',
    point: 'Punto decimal (1,234.56)',
    threshold: 'Cuánto deben parecerse dos nombres de empresa para ser la misma (70–100 %)',
    saveAs: 'Guardar esta asignación como (opcional)',
    continue: 'Continuar',
    saving: 'Guardando…',
    valuesIntro:
      'Estos valores no nombran exactamente ningún registro. Confirma el registro sugerido, elige otro o di qué hacer. Las filas esperan a cada decisión.',
    valuesCount: (p: Params) => plural(Number(p.n), { one: '{n} valor', other: '{n} valores' }),
    rowsCount: (p: Params) => plural(Number(p.n), { one: '{n} fila', other: '{n} filas' }),
    valueLegend: '«{value}» · {rows}',
    score: 'coincide un {score}',
    suggestion: 'sugerido',
    create: 'Crear la empresa «{value}»',
    reject: 'Rechazar estas filas',
    waiting: 'Espera tu decisión',
    others: 'Para todos los demás',
    othersAsk: 'Preguntarme por cada uno',
    othersCreate: 'Crearlos',
    othersReject: 'Rechazar sus filas',
    confirmAll: (p: Params) =>
      plural(Number(p.n), { one: 'Confirmar la sugerencia', other: 'Confirmar {n} sugerencias' }),
    confirmed: (p: Params) =>
      plural(Number(p.n), { one: '{n} decisión guardada.', other: '{n} decisiones guardadas.' }),
    moreValues: 'Ver más valores',
    toPreview: 'Continuar a la prueba',
    undecided: (p: Params) =>
      plural(Number(p.n), {
        one: '{n} valor aún espera una decisión.',
        other: '{n} valores aún esperan una decisión.',
      }),
    noValues: 'Todos los valores nombran un registro: no hay nada que decidir.',
    previewProgress: 'Prueba: {done} de {total} filas',
    commitProgress: 'Importando: {done} de {total} filas',
    undoProgress: 'Deshaciendo: {done} de {total} filas',
    run: 'Hacer la prueba',
    resume: 'Reanudar',
    previewIntro: 'En qué se convertiría cada fila. Aún no se ha escrito nada.',
    outcome: 'Resultado',
    rows: 'Filas',
    create_: 'Crear',
    update_: 'Actualizar',
    merge_: 'Fusionar',
    reject_: 'Rechazar',
    skip_: 'Omitir',
    totalsChart: 'Gráfico de barras de las filas por resultado. La tabla de abajo tiene las mismas cifras.',
    all: 'Todas',
    filter: 'Mostrar filas',
    row: 'Fila',
    reason: 'Motivo',
    values: 'Valores',
    moreRows: 'Ver más filas',
    noRows: 'No hay filas aquí.',
    back: 'Volver a la asignación',
    toValues: 'Volver a los valores',
    importRows: (p: Params) => plural(Number(p.n), { one: 'Importar {n} fila', other: 'Importar {n} filas' }),
    importIntro: 'Las filas se escriben por lotes; cada fila se escribe entera o nada.',
    imported: 'Importada',
    undone: 'Deshecha',
    undoing: 'Deshaciendo',
    unbalanced:
      'Estas cifras no suman las filas leídas: faltan filas por explicar. Revisa el informe antes de fiarte de la importación.',
    report: 'Informe de conciliación',
    reportCsv: 'Descargar CSV',
    reportXlsx: 'Descargar Excel',
    reportSaved: 'Descargado {name}.',
    undo: 'Deshacer la importación',
    undoTitle: '¿Deshacer esta importación?',
    undoCreated: (p: Params) =>
      plural(Number(p.n), {
        one: 'Se borra el registro que creó.',
        other: 'Se borran los {n} registros que creó.',
      }),
    undoChanged: (p: Params) =>
      plural(Number(p.n), {
        one: 'El registro que actualizó o fusionó vuelve a estar como antes.',
        other: 'Los {n} registros que actualizó o fusionó vuelven a estar como antes.',
      }),
    undoSafe: 'Si alguien ha cambiado alguno desde entonces, no se deshace nada.',
    undoConfirm: 'Deshacer la importación',
    undoneNote: 'Esta importación se deshizo: lo que escribió ya no está.',
    again: 'Importar otro archivo',
    history: 'Importaciones hechas',
    noHistory: 'Aún no hay importaciones.',
    by: 'por {name}',
    open: 'Abrir',
    discard: 'Descartar',
    discardTitle: '¿Descartar «{name}»?',
    discardText: 'Se borran sus filas y decisiones. Nada cambia en Fieldbook.',
    moreHistory: 'Ver importaciones anteriores',
    'status-mapping': 'Asignando columnas',
    'status-previewing': 'Prueba detenida',
    'status-previewed': 'Prueba hecha',
    'status-importing': 'Importación detenida',
    'status-imported': 'Importada',
    'status-undoing': 'Deshacer detenido',
    'status-undone': 'Deshecha',
    part: '{n} {outcome}',
    'part-create': 'creadas',
    'part-update': 'actualizadas',
    'part-merge': 'fusionadas',
    'part-reject': 'rechazadas',
    'part-skip': 'omitidas',
    loading: 'Cargando…',
  },
})

const OUTCOME_COLORS: Record<Outcome, string> = {
  create: COLORS.brand,
  update: COLORS.mine,
  merge: COLORS.other,
  reject: COLORS.danger,
  skip: COLORS.warn,
}

const outcomeName = (outcome: Outcome) => m(`${outcome}_`)
const percent = (ratio: number) =>
  new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 0 }).format(ratio)

/** What went wrong, in words: the connection, the session, or the server's problem. */
function failure(error: unknown): string {
  if (error instanceof TransportError) return m('offline')
  if (error instanceof SignedOut) return m('signedOut')
  return m('failed', { detail: error instanceof Error ? error.message : problemText(error) })
}

/** An error's own words when it has them (a refusal's detail, already put in words), else what `failure` says. */
const reason = (error: unknown): string =>
  error instanceof Error && !(error instanceof TransportError) && !(error instanceof SignedOut) && error.message
    ? error.message
    : failure(error)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Uploads the file as a new import, reporting its progress; the job, or an Error saying why not. */
async function sendFile(
  file: File,
  entity: Entity,
  sheet: string | null,
  progress: (sent: number, total: number) => void,
  signal: AbortSignal,
): Promise<ImportJob> {
  if (file.size > MAX_BYTES) throw new Error(m('tooLarge'))
  const form = new FormData()
  form.append('entity', entity)
  if (sheet) form.append('sheet', sheet)
  form.append('file', file, file.name)
  const answer = await upload(`${ORIGIN}${API}/imports`, form, progress, signal)
  if (answer.status === 201) return answer.body as ImportJob
  const problem = asProblem(answer.body)
  if (answer.status === 413) throw new Error(m('tooLarge'))
  const detail = problem.errors?.[0]?.detail ?? problem.detail ?? problem.title ?? String(answer.status)
  throw new Error(answer.status === 422 ? m('badFile', { detail }) : m('failed', { detail }))
}

/** Runs a phase (dry run, import, undo) to its end: each call works ~1.5 s and answers the job, 202 while rows
 *  remain. Stops when the screen goes away (the job then waits, and resumes when the phase is called again). */
function usePhase(onJob: (job: ImportJob) => void) {
  const alive = useRef(true)
  useEffect(
    () => () => {
      alive.current = false
    },
    [],
  )
  const [running, setRunning] = useState<Phase | null>(null)
  const [error, setError] = useState('')

  const call = (jobId: string, phase: Phase) => {
    const params = { params: { path: { job_id: jobId } } }
    if (phase === 'preview') return api.POST('/api/v1/imports/{job_id}/preview', params)
    if (phase === 'commit') return api.POST('/api/v1/imports/{job_id}/commit', params)
    return api.POST('/api/v1/imports/{job_id}/undo', params)
  }

  const run = async (jobId: string, phase: Phase): Promise<ImportJob | null> => {
    setRunning(phase)
    setError('')
    try {
      while (alive.current) {
        const { data, error: problem, response } = await call(jobId, phase)
        // Another request holds the job (a step still running from before): it says when to ask again.
        const retry = Number(response.headers.get('retry-after'))
        if (response.status === 409 && retry > 0) {
          await sleep(retry * 1000)
          continue
        }
        if (!data) throw new Error(problemText(problem))
        if (alive.current) onJob(data)
        if (response.status !== 202) return data
      }
      return null
    } catch (e) {
      if (alive.current) setError(reason(e))
      return null
    } finally {
      if (alive.current) setRunning(null)
    }
  }
  return { run, running, error }
}

function PhaseProgress({ job, phase }: { job: ImportJob; phase: Phase }) {
  const { done, total } = progressOf(job)
  return (
    <div class="phase-progress" data-testid="phase-progress">
      <progress max={Math.max(total, 1)} value={done} aria-labelledby="phase-text" />
      <p id="phase-text" role="status">
        {m(`${phase}Progress`, { done: fmt.number(done), total: fmt.number(total) })}
      </p>
    </div>
  )
}

function Steps({ current }: { current: Step }) {
  const at = STEPS.indexOf(current)
  return (
    <ol class="steps" aria-label={m('steps')}>
      {STEPS.map((step, index) => (
        <li class={index < at ? 'done' : undefined} aria-current={step === current ? 'step' : undefined}>
          {m(`step-${step}`)}
          {index < at && <span class="visually-hidden"> {m('done')}</span>}
        </li>
      ))}
    </ol>
  )
}

// Step 1 ----------------------------------------------------------------------------------------------------------

function SavedMappings() {
  const [saved, setSaved] = useState<ImportMapping[] | null>(null)
  const [error, setError] = useState('')
  const load = () =>
    api
      .GET('/api/v1/imports/mappings')
      .then(({ data, error: problem }) => (data ? setSaved(data) : setError(problemText(problem))))
      .catch((e: unknown) => setError(failure(e)))
  useEffect(() => void load(), [])
  const forget = (id: string) =>
    api
      .DELETE('/api/v1/imports/mappings/{mapping_id}', { params: { path: { mapping_id: id } } })
      .then(load)
      .catch((e: unknown) => setError(failure(e)))
  if (!saved?.length && !error) return null
  return (
    <details class="saved-mappings" data-testid="saved-mappings">
      <summary>{m('saved')}</summary>
      <p class="muted">{m('savedNote')}</p>
      {error && <p class="danger-text">{error}</p>}
      <ul class="list">
        {saved?.map((mapping) => (
          <li class="item">
            <span class="grow">
              <span class="title">{mapping.name}</span>
              <span class="sub">
                {m(mapping.entity)} · {m('savedColumns', { n: Object.keys(mapping.columns).length })}
              </span>
            </span>
            <button type="button" onClick={() => void forget(mapping.id)}>
              {m('forget')}
              <span class="visually-hidden"> {mapping.name}</span>
            </button>
          </li>
        ))}
      </ul>
    </details>
  )
}

function UploadStep({ onUploaded }: { onUploaded: (job: ImportJob, file: File) => void }) {
  const online = useOnline()
  const [file, setFile] = useState<File | null>(null)
  const [entity, setEntity] = useState<Entity | null>(null)
  const [progress, setProgress] = useState<number | null>(null)
  const [error, setError] = useState<{ field: 'file' | 'entity' | 'form'; text: string } | null>(null)
  const abort = useRef<AbortController | null>(null)
  useEffect(() => () => abort.current?.abort(), [])

  const submit = async (event: Event) => {
    event.preventDefault()
    if (!file) {
      setError({ field: 'file', text: m('noFile') })
      document.getElementById('import-file')?.focus()
      return
    }
    if (!entity) {
      setError({ field: 'entity', text: m('noEntity') })
      document.getElementById(`import-entity-${ENTITIES[0]}`)?.focus()
      return
    }
    setError(null)
    abort.current = new AbortController()
    setProgress(0)
    try {
      const job = await sendFile(file, entity, null, (sent, total) => setProgress(sent / total), abort.current.signal)
      onUploaded(job, file)
    } catch (e) {
      const cancelled = e instanceof DOMException && e.name === 'AbortError'
      setError({ field: 'form', text: cancelled ? m('cancelled') : reason(e) })
      setProgress(null)
    }
  }

  const busy = progress !== null
  return (
    <form onSubmit={submit} noValidate data-testid="upload-form">
      <label class="field">
        <span>{m('file')}</span>
        <input
          id="import-file"
          type="file"
          accept=".csv,.xlsx,.txt,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
          aria-invalid={error?.field === 'file'}
          aria-describedby={error?.field === 'file' ? 'import-upload-error' : undefined}
          disabled={busy}
          onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
        />
      </label>
      <fieldset
        class="choices"
        aria-invalid={error?.field === 'entity'}
        aria-describedby={error?.field === 'entity' ? 'import-upload-error' : undefined}
      >
        <legend>{m('what')}</legend>
        {ENTITIES.map((option) => (
          <label class="choice">
            <input
              id={`import-entity-${option}`}
              type="radio"
              name="import-entity"
              value={option}
              checked={entity === option}
              disabled={busy}
              onChange={() => setEntity(option)}
            />
            {m(option)}
          </label>
        ))}
      </fieldset>
      {busy && (
        <div class="phase-progress">
          <progress max={1} value={progress} aria-labelledby="upload-text" />
          <p id="upload-text" role="status">
            {progress < 1 ? m('uploading', { name: file?.name ?? '', percent: percent(progress) }) : m('reading')}
          </p>
        </div>
      )}
      {error && (
        <p id="import-upload-error" role="alert" class="danger-text">
          {error.text}
        </p>
      )}
      {!online && <p class="muted">{m('offline')}</p>}
      <div class="actions">
        {busy && (
          <button type="button" onClick={() => abort.current?.abort()}>
            {m('cancel')}
          </button>
        )}
        <button type="submit" class="primary" disabled={busy || !online}>
          {m('upload')}
        </button>
      </div>
      <SavedMappings />
    </form>
  )
}

// Step 2 ----------------------------------------------------------------------------------------------------------

function MappingStep(props: {
  job: ImportJob
  file: File | null
  onJob: (job: ImportJob) => void
  onReplaced: (job: ImportJob) => void
  onDone: (next: Step) => void
}) {
  const { job } = props
  const entity = job.entity
  const [columns, setColumns] = useState<Record<string, string>>(() =>
    Object.fromEntries(job.headers.map((h) => [h, job.mapping[h] ?? ''])),
  )
  const [matchKey, setMatchKey] = useState(job.match_key ?? '')
  const [dateOrder, setDateOrder] = useState(String(job.options.date_order ?? 'dmy'))
  const [decimalMark, setDecimalMark] = useState(String(job.options.decimal_mark ?? '.'))
  const [threshold, setThreshold] = useState(String(job.options.fuzzy_threshold ?? 90))
  const [saveAs, setSaveAs] = useState('')
  const [rows, setRows] = useState<ImportRow[] | null>(null)
  const [busy, setBusy] = useState(false)
  const [errors, setErrors] = useState<{ columns: Record<string, string>; match?: string; form?: string }>({
    columns: {},
  })
  const [sheetProgress, setSheetProgress] = useState<number | null>(null)
  const abort = useRef<AbortController | null>(null)
  useEffect(() => () => abort.current?.abort(), [])

  // The first values of each column: from the first ten rows, so a blank row or two still leaves three.
  useEffect(() => {
    api
      .GET('/api/v1/imports/{job_id}/rows', { params: { path: { job_id: job.id }, query: { limit: 10 } } })
      .then(({ data }) => setRows(data?.items ?? []))
      .catch(() => setRows([]))
  }, [job.id])
  const examples = useMemo(() => samples(rows ?? [], job.headers.length), [rows, job.headers.length])

  const fields = job.fields
  const label = (key: string) => {
    const field = fields.find((f) => f.key === key)
    return field ? fieldLabel(entity, field) : key
  }
  const mapped = new Set(Object.values(columns).filter(Boolean))
  const matchOptions = job.match_keys.filter((key) => mapped.has(key))
  const match = matchOptions.includes(matchKey) ? matchKey : ''

  const changeSheet = async (sheet: string) => {
    if (!props.file) return
    abort.current = new AbortController()
    setSheetProgress(0)
    setErrors({ columns: {} })
    try {
      const next = await sendFile(props.file, entity, sheet, (s, t) => setSheetProgress(s / t), abort.current.signal)
      // The first sheet's import is dropped: it has written nothing.
      await api.DELETE('/api/v1/imports/{job_id}', { params: { path: { job_id: job.id } } }).catch(() => undefined)
      props.onReplaced(next)
    } catch (e) {
      setErrors({ columns: {}, form: reason(e) })
      setSheetProgress(null)
    }
  }

  const submit = async (event: Event) => {
    event.preventDefault()
    // Two columns for one field: said where it happens, before asking the server.
    const seen = new Map<string, string>()
    const found: Record<string, string> = {}
    for (const header of job.headers) {
      const key = columns[header]
      if (!key) continue
      if (seen.has(key)) found[header] = m('duplicateField', { field: label(key) })
      else seen.set(key, header)
    }
    if (Object.keys(found).length) {
      setErrors({ columns: found })
      document.getElementById(`map-${job.headers.indexOf(Object.keys(found)[0])}`)?.focus()
      return
    }
    setBusy(true)
    setErrors({ columns: {} })
    try {
      const number = Number(threshold)
      const { data, error } = await api.PUT('/api/v1/imports/{job_id}/mapping', {
        params: { path: { job_id: job.id } },
        body: {
          columns: Object.fromEntries(job.headers.map((h) => [h, columns[h] || null])),
          match_key: match || null,
          date_order: dateOrder as 'dmy' | 'mdy',
          decimal_mark: decimalMark as ',' | '.',
          fuzzy_threshold: Number.isFinite(number) && number >= 70 && number <= 100 ? Math.round(number) : undefined,
          save_as: saveAs.trim() || undefined,
        },
      })
      if (!data) {
        const problem = asProblem(error)
        const item = problem.errors?.[0]
        const column = columnOfPointer(item?.pointer)
        const text = item?.detail ?? problem.detail ?? problemText(error)
        if (column !== null && job.headers.includes(column)) {
          setErrors({ columns: { [column]: text } })
          document.getElementById(`map-${job.headers.indexOf(column)}`)?.focus()
        } else if (item?.pointer === '#/match_key') {
          setErrors({ columns: {}, match: text })
          document.getElementById('match-key')?.focus()
        } else setErrors({ columns: {}, form: text })
        return
      }
      props.onJob(data)
      const values = await api.GET('/api/v1/imports/{job_id}/values', {
        params: { path: { job_id: job.id }, query: { limit: 1 } },
      })
      props.onDone(values.data?.items.length ? 'values' : 'preview')
    } catch (e) {
      setErrors({ columns: {}, form: failure(e) })
    } finally {
      setBusy(false)
    }
  }

  const what = m(entity)
  return (
    <form onSubmit={submit} noValidate data-testid="mapping-form">
      <p>{m('fileRead', { name: job.file_name, rows: job.rows_total, what })}</p>
      <p class="muted">
        {job.file_format === 'csv'
          ? m('csvRead', {
              encoding: (job.encoding ?? 'utf-8').toUpperCase(),
              delimiter: job.delimiter ?? ',',
              row: job.header_row,
            })
          : m('xlsxRead', { row: job.header_row })}
      </p>
      {job.sheets.length > 1 && (
        <>
          <label class="field">
            <span>{m('sheet')}</span>
            <select
              value={job.sheet ?? ''}
              disabled={!props.file || sheetProgress !== null}
              onChange={(e) => void changeSheet(e.currentTarget.value)}
              data-testid="sheet"
            >
              {job.sheets.map((sheet) => (
                <option value={sheet}>{sheet}</option>
              ))}
            </select>
          </label>
          {!props.file && <p class="muted">{m('sheetNote')}</p>}
          {sheetProgress !== null && (
            <div class="phase-progress">
              <progress max={1} value={sheetProgress} aria-labelledby="sheet-text" />
              <p id="sheet-text" role="status">
                {sheetProgress < 1
                  ? m('uploading', { name: props.file?.name ?? '', percent: percent(sheetProgress) })
                  : m('reading')}
              </p>
            </div>
          )}
        </>
      )}

      <h3 id="map-columns">{m('columns')}</h3>
      <div class="map-head-row" aria-hidden="true">
        <span>{m('column')}</span>
        <span>{m('examples')}</span>
        <span>{m('field')}</span>
      </div>
      <ul class="map-list" aria-labelledby="map-columns" data-testid="mapping">
        {job.headers.map((header, index) => {
          const problem = errors.columns[header]
          const shown = examples[index] ?? []
          return (
            <li class="map-row" data-testid="map-row" data-header={header}>
              <label class="map-header" for={`map-${index}`}>
                {header || `#${index + 1}`}
              </label>
              <span class="samples" id={`map-${index}-samples`}>
                <span class="visually-hidden">{m('examples')}: </span>
                {shown.length ? shown.join(' · ') : rows ? <em>{m('noExamples')}</em> : '…'}
              </span>
              <span class="map-field">
                <select
                  id={`map-${index}`}
                  value={columns[header] ?? ''}
                  aria-invalid={Boolean(problem)}
                  aria-describedby={`map-${index}-samples${problem ? ` map-${index}-error` : ''}`}
                  onChange={(e) => setColumns({ ...columns, [header]: e.currentTarget.value })}
                >
                  <option value="">{m('leaveOut')}</option>
                  {fields.map((field) => (
                    <option value={field.key}>
                      {fieldLabel(entity, field)}
                      {field.required ? ` ${m('required')}` : ''}
                    </option>
                  ))}
                </select>
                {problem && (
                  <span id={`map-${index}-error`} role="alert" class="danger-text block">
                    {problem}
                  </span>
                )}
              </span>
            </li>
          )
        })}
      </ul>

      <label class="field">
        <span>{m('matchKey')}</span>
        <select
          id="match-key"
          value={match}
          aria-describedby="match-explain"
          aria-invalid={Boolean(errors.match)}
          onChange={(e) => setMatchKey(e.currentTarget.value)}
        >
          <option value="">{m('matchNone')}</option>
          {matchOptions.map((key) => (
            <option value={key}>{m('matchOn', { field: label(key) })}</option>
          ))}
        </select>
      </label>
      <p id="match-explain" class="muted">
        {match ? m('matchExplain', { field: label(match) }) : m('matchExplainNone')}
      </p>
      {errors.match && (
        <p role="alert" class="danger-text">
          {errors.match}
        </p>
      )}

      <fieldset class="reading">
        <legend>{m('reading2')}</legend>
        <p class="muted">{m('detected')}</p>
        <div class="reading-grid">
          <label class="field">
            <span>{m('dateOrder')}</span>
            <select value={dateOrder} onChange={(e) => setDateOrder(e.currentTarget.value)} data-testid="date-order">
              <option value="dmy">{m('dmy')}</option>
              <option value="mdy">{m('mdy')}</option>
            </select>
          </label>
          <label class="field">
            <span>{m('decimalMark')}</span>
            <select
              value={decimalMark}
              onChange={(e) => setDecimalMark(e.currentTarget.value)}
              data-testid="decimal-mark"
            >
              <option value=",">{m('comma')}</option>
              <option value=".">{m('point')}</option>
            </select>
          </label>
          <label class="field">
            <span>{m('threshold')}</span>
            <input
              type="number"
              min={70}
              max={100}
              step={1}
              inputMode="numeric"
              value={threshold}
              onInput={(e) => setThreshold(e.currentTarget.value)}
            />
          </label>
        </div>
      </fieldset>

      <label class="field">
        <span>{m('saveAs')}</span>
        <input value={saveAs} maxLength={100} autocomplete="off" onInput={(e) => setSaveAs(e.currentTarget.value)} />
      </label>
      {errors.form && (
        <p role="alert" class="danger-text">
          {errors.form}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy || sheetProgress !== null}>
          {busy ? m('saving') : m('continue')}
        </button>
      </div>
    </form>
  )
}

// Step 3 ----------------------------------------------------------------------------------------------------------

type DefaultAction = '' | 'create' | 'reject'

function ValueChoice(props: {
  value: ImportValue
  index: number
  chosen: Decision | undefined
  onChoose: (decision: Decision) => void
}) {
  const { value, index, chosen } = props
  const candidates = candidatesOf(value)
  const best = suggestion(value)
  const current: Pick<Decision, 'action' | 'target_id'> | null =
    chosen ?? (value.action ? { action: value.action as Decision['action'], target_id: value.target_id } : null)
  const name = `value-${index}`
  const pick = (action: Decision['action'], target_id: string | null = null) =>
    props.onChoose({ field: value.field, value: value.value, action, target_id })
  return (
    <fieldset
      class={`value card${current ? '' : ' undecided'}`}
      data-testid="value"
      data-value={value.value}
      data-field={value.field}
    >
      <legend>{m('valueLegend', { value: value.value, rows: m('rowsCount', { n: value.rows }) })}</legend>
      {!current && <p class="pill warn">{m('waiting')}</p>}
      {candidates.map((candidate) => (
        <label class="choice">
          <input
            type="radio"
            name={name}
            checked={current?.action === 'map' && current.target_id === candidate.id}
            onChange={() => pick('map', candidate.id)}
          />
          <span class="grow">
            {candidate.label} <span class="muted">{m('score', { score: percent(candidate.score / 100) })}</span>
            {best?.target_id === candidate.id && <span class="pill"> {m('suggestion')}</span>}
          </span>
        </label>
      ))}
      {value.field === 'company' && (
        <label class="choice">
          <input type="radio" name={name} checked={current?.action === 'create'} onChange={() => pick('create')} />
          <span class="grow">{m('create', { value: value.value })}</span>
        </label>
      )}
      <label class="choice">
        <input type="radio" name={name} checked={current?.action === 'reject'} onChange={() => pick('reject')} />
        <span class="grow">{m('reject')}</span>
      </label>
    </fieldset>
  )
}

function ValuesStep(props: { job: ImportJob; onJob: (job: ImportJob) => void; onDone: (next: Step) => void }) {
  const { job } = props
  const [values, setValues] = useState<ImportValue[] | null>(null)
  const [next, setNext] = useState<string | null>(null)
  const [chosen, setChosen] = useState<Map<string, Decision>>(new Map())
  const [defaults, setDefaults] = useState<Record<string, DefaultAction>>(
    () => job.defaults as Record<string, DefaultAction>,
  )
  const [busy, setBusy] = useState(false)
  const [status, setStatus] = useState('')
  const [error, setError] = useState('')

  const load = async (cursor: string | null = null) => {
    const { data, error: problem } = await api.GET('/api/v1/imports/{job_id}/values', {
      params: { path: { job_id: job.id }, query: { limit: 200, cursor: cursor ?? undefined } },
    })
    if (!data) throw new Error(problemText(problem))
    setValues((before) => (cursor ? [...(before ?? []), ...data.items] : data.items))
    setNext(data.next_cursor ?? null)
  }
  useEffect(() => {
    load().catch((e: unknown) => setError(failure(e)))
  }, [job.id])

  const groups = useMemo(() => {
    const byField = new Map<string, ImportValue[]>()
    for (const value of values ?? []) byField.set(value.field, [...(byField.get(value.field) ?? []), value])
    return [...byField]
  }, [values])
  const label = (key: string) => {
    const field = job.fields.find((f) => f.key === key)
    return field ? fieldLabel(job.entity, field) : key
  }
  const suggestions = confirmedDecisions(values ?? [], new Map()).length
  const pendingSuggestions = (values ?? []).filter(
    (v) => v.action === null && !chosen.has(valueKey(v)) && suggestion(v),
  ).length

  /** Sends decisions (at most 1,000 a request) and the defaults; the job as it then stands. */
  const send = async (decisions: Decision[]): Promise<ImportJob> => {
    const body = Object.fromEntries(Object.entries(defaults).map(([field, action]) => [field, action || null]))
    let result: ImportJob | null = null
    for (let start = 0; start === 0 || start < decisions.length; start += 1000) {
      const { data, error: problem } = await api.PUT('/api/v1/imports/{job_id}/values', {
        params: { path: { job_id: job.id } },
        body: { decisions: decisions.slice(start, start + 1000), defaults: start === 0 ? body : {} },
      })
      if (!data) throw new Error(problemText(problem))
      result = data
    }
    props.onJob(result as ImportJob)
    return result as ImportJob
  }

  const act = async (decisions: Decision[], then: (job: ImportJob) => void) => {
    setBusy(true)
    setError('')
    setStatus('')
    try {
      const updated = await send(decisions)
      setChosen(new Map())
      await load()
      then(updated)
    } catch (e) {
      setError(reason(e))
    } finally {
      setBusy(false)
    }
  }

  const confirmAll = () => {
    const decisions = confirmedDecisions(values ?? [], chosen)
    void act(decisions, () => setStatus(m('confirmed', { n: decisions.length })))
  }
  const proceed = () =>
    void act([...chosen.values()], (updated) => {
      if (updated.undecided > 0) {
        setError(m('undecided', { n: updated.undecided }))
        setTimeout(() => document.querySelector<HTMLInputElement>('.value.undecided input')?.focus(), 0)
      } else props.onDone('preview')
    })

  if (values === null) return error ? <p class="danger-text">{error}</p> : <p class="muted">{m('loading')}</p>
  return (
    <div data-testid="values-step">
      <p>{values.length ? m('valuesIntro') : m('noValues')}</p>
      {groups.map(([field, list]) => (
        <section class="value-group" aria-labelledby={`values-${field}`} data-testid="value-group">
          <h3 id={`values-${field}`}>
            {label(field)} <span class="muted">({m('valuesCount', { n: list.length })})</span>
          </h3>
          <label class="field">
            <span>{m('others')}</span>
            <select
              value={defaults[field] ?? ''}
              onChange={(e) => setDefaults({ ...defaults, [field]: e.currentTarget.value as DefaultAction })}
            >
              <option value="">{m('othersAsk')}</option>
              {field === 'company' && <option value="create">{m('othersCreate')}</option>}
              <option value="reject">{m('othersReject')}</option>
            </select>
          </label>
          {list.map((value) => (
            <ValueChoice
              value={value}
              index={values.indexOf(value)}
              chosen={chosen.get(valueKey(value))}
              onChoose={(decision) => setChosen(new Map(chosen).set(valueKey(value), decision))}
            />
          ))}
        </section>
      ))}
      {next && (
        <button type="button" onClick={() => void load(next).catch((e: unknown) => setError(failure(e)))}>
          {m('moreValues')}
        </button>
      )}
      <p role="status" class="muted">
        {busy ? m('saving') : status}
      </p>
      {error && (
        <p role="alert" class="danger-text">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="button" onClick={() => props.onDone('mapping')} disabled={busy}>
          {m('back')}
        </button>
        {suggestions > 0 && (
          <button type="button" onClick={confirmAll} disabled={busy || pendingSuggestions + chosen.size === 0}>
            {m('confirmAll', { n: pendingSuggestions + chosen.size })}
          </button>
        )}
        <button type="button" class="primary" onClick={proceed} disabled={busy}>
          {m('toPreview')}
        </button>
      </div>
    </div>
  )
}

// Steps 4 to 6 ----------------------------------------------------------------------------------------------------

function Totals({ job }: { job: ImportJob }) {
  const totals = totalsOf(job)
  return (
    <div class="totals">
      <BarChart
        testid="totals-chart"
        label={m('totalsChart')}
        labels={OUTCOMES.map(outcomeName)}
        series={[
          { label: m('rows'), values: OUTCOMES.map((o) => totals[o]), color: OUTCOMES.map((o) => OUTCOME_COLORS[o]) },
        ]}
        format={fmt.number}
        whole
      />
      <div class="table-wrap" role="region" aria-label={m('rows')} tabIndex={0}>
        <table class="numbers" data-testid="totals-table">
          <thead>
            <tr>
              <th scope="col">{m('outcome')}</th>
              <th scope="col">{m('rows')}</th>
            </tr>
          </thead>
          <tbody>
            {OUTCOMES.map((outcome) => (
              <tr data-outcome={outcome}>
                <th scope="row">{outcomeName(outcome)}</th>
                <td>{fmt.number(totals[outcome])}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  )
}

function RowsTable({ job }: { job: ImportJob }) {
  const totals = totalsOf(job)
  // Rejected rows first: they are what the admin has to fix.
  const [outcome, setOutcome] = useState<Outcome | ''>(totals.reject > 0 ? 'reject' : '')
  const [rows, setRows] = useState<ImportRow[] | null>(null)
  const [next, setNext] = useState<string | null>(null)
  const [error, setError] = useState('')
  const ran = job.status === 'imported' || job.status === 'undoing' || job.status === 'undone'

  const load = async (cursor: string | null) => {
    const { data, error: problem } = await api.GET('/api/v1/imports/{job_id}/rows', {
      params: {
        path: { job_id: job.id },
        query: { outcome: outcome || undefined, limit: 50, cursor: cursor ?? undefined },
      },
    })
    if (!data) throw new Error(problemText(problem))
    setRows((before) => (cursor ? [...(before ?? []), ...data.items] : data.items))
    setNext(data.next_cursor ?? null)
  }
  useEffect(() => {
    setRows(null)
    load(null).catch((e: unknown) => setError(failure(e)))
  }, [job.id, job.status, outcome])

  return (
    <section aria-labelledby="import-rows" class="import-rows">
      <h3 id="import-rows">{m('rows')}</h3>
      <fieldset class="chips">
        <legend>{m('filter')}</legend>
        <button type="button" class="chip" aria-pressed={outcome === ''} onClick={() => setOutcome('')}>
          {m('all')} ({fmt.number(job.rows_total)})
        </button>
        {OUTCOMES.filter((o) => totals[o] > 0).map((o) => (
          <button type="button" class="chip" aria-pressed={outcome === o} onClick={() => setOutcome(o)}>
            {outcomeName(o)} ({fmt.number(totals[o])})
          </button>
        ))}
      </fieldset>
      {error && <p class="danger-text">{error}</p>}
      {rows && !rows.length && <p class="empty">{m('noRows')}</p>}
      {rows && rows.length > 0 && (
        <div class="table-wrap" role="region" aria-labelledby="import-rows" tabIndex={0}>
          <table class="numbers rows-table" data-testid="rows-table">
            <thead>
              <tr>
                <th scope="col">{m('row')}</th>
                <th scope="col">{m('outcome')}</th>
                <th scope="col">{m('column')}</th>
                <th scope="col">{m('reason')}</th>
                <th scope="col" class="cells">
                  {m('values')}
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => {
                const result = (ran ? row.outcome : row.planned) as Outcome | null
                return (
                  <tr data-row={row.row_number} data-outcome={result ?? ''}>
                    <th scope="row">{fmt.number(row.row_number)}</th>
                    <td>
                      {result && (
                        <span class={`pill${result === 'reject' ? ' danger' : result === 'skip' ? ' warn' : ''}`}>
                          {outcomeName(result)}
                        </span>
                      )}
                    </td>
                    <td class="text">{row.column ?? ''}</td>
                    <td class="text reason">{row.reason ?? ''}</td>
                    <td class="text muted cells">
                      {samples([row], row.cells.length, 3).flat().slice(0, 3).join(' · ')}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" onClick={() => void load(next).catch((e: unknown) => setError(failure(e)))}>
          {m('moreRows')}
        </button>
      )}
    </section>
  )
}

function PreviewStep(props: { job: ImportJob; onJob: (job: ImportJob) => void; onDone: (next: Step) => void }) {
  const { job } = props
  const phase = usePhase(props.onJob)
  const start = () => void phase.run(job.id, 'preview')
  // Entered after the mapping or the values (or to resume a dry run a closed page stopped): it runs at once.
  useEffect(() => {
    if (job.status === 'mapping' || job.status === 'previewing') start()
  }, [job.id])

  if (job.status !== 'previewed')
    return (
      <div>
        <p>{m('previewIntro')}</p>
        <PhaseProgress job={job} phase="preview" />
        {phase.error && (
          <p role="alert" class="danger-text">
            {phase.error}
          </p>
        )}
        {!phase.running && (
          <div class="actions">
            <button type="button" onClick={() => props.onDone('mapping')}>
              {m('back')}
            </button>
            <button type="button" class="primary" onClick={start}>
              {job.status === 'previewing' ? m('resume') : m('run')}
            </button>
          </div>
        )}
      </div>
    )
  const planned = totalsOf(job)
  const toWrite = planned.create + planned.update + planned.merge
  return (
    <div data-testid="preview-result">
      <p>{m('previewIntro')}</p>
      <p data-testid="planned-sentence">{reconciliation(job.rows_total, totalsOf(job))}</p>
      <Totals job={job} />
      <RowsTable job={job} />
      {job.undecided > 0 && (
        <p role="alert" class="danger-text">
          {m('undecided', { n: job.undecided })}
        </p>
      )}
      <div class="actions">
        <button type="button" onClick={() => props.onDone('mapping')}>
          {m('back')}
        </button>
        {job.undecided > 0 ? (
          <button type="button" class="primary" onClick={() => props.onDone('values')}>
            {m('toValues')}
          </button>
        ) : (
          <button type="button" class="primary" onClick={() => props.onDone('import')}>
            {m('importRows', { n: toWrite })}
          </button>
        )}
      </div>
    </div>
  )
}

function ImportStep(props: { job: ImportJob; onJob: (job: ImportJob) => void; onDone: (next: Step) => void }) {
  const { job } = props
  const phase = usePhase(props.onJob)
  const start = async () => {
    const done = await phase.run(job.id, 'commit')
    if (done?.status === 'imported') props.onDone('result')
  }
  useEffect(() => void start(), [job.id])
  return (
    <div>
      <p>{m('importIntro')}</p>
      <PhaseProgress job={job} phase="commit" />
      {phase.error && (
        <p role="alert" class="danger-text">
          {phase.error}
        </p>
      )}
      {!phase.running && phase.error && (
        <div class="actions">
          {job.undecided > 0 ? (
            <button type="button" onClick={() => props.onDone('values')}>
              {m('toValues')}
            </button>
          ) : (
            <button type="button" onClick={() => props.onDone('preview')}>
              {m('step-preview')}
            </button>
          )}
          <button type="button" class="primary" onClick={() => void start()}>
            {m('resume')}
          </button>
        </div>
      )}
    </div>
  )
}

function ResultStep(props: { job: ImportJob; onJob: (job: ImportJob) => void; onAgain: () => void }) {
  const { job } = props
  const phase = usePhase(props.onJob)
  const [asking, setAsking] = useState(false)
  const [saved, setSaved] = useState('')
  const [failed, setFailed] = useState('')
  const totals = totalsOf(job)
  // An undone job whose counts are gone has nothing to add up (rather than a sum that seems not to add up).
  const counted = job.status === 'imported' || OUTCOMES.some((o) => totals[o] > 0)
  useEffect(() => {
    // An undo a closed page stopped goes on when the job is opened again.
    if (job.status === 'undoing') void phase.run(job.id, 'undo')
  }, [job.id])

  const report = (format: 'csv' | 'xlsx') => {
    setFailed('')
    const url = new URL(`${API}/imports/${job.id}/report?format=${format}`, ORIGIN)
    download(url, `report.${format}`)
      .then((name) => setSaved(m('reportSaved', { name })))
      .catch((e: unknown) => setFailed(failure(e)))
  }
  const undo = (event: Event) => {
    event.preventDefault()
    setAsking(false)
    void phase.run(job.id, 'undo')
  }

  const state = job.status === 'undone' ? 'undone' : job.status === 'undoing' ? 'undoing' : 'imported'
  return (
    <div data-testid="result">
      <p>
        <span class={`pill${state === 'imported' ? '' : ' warn'}`} data-testid="result-status">
          {m(state)}
        </span>{' '}
        {job.finished_at && <span class="muted">{fmt.dateTime(job.finished_at)}</span>}
      </p>
      {counted && (
        <p class="sentence" data-testid="reconciliation">
          <strong>{reconciliation(job.rows_total, totals)}</strong>
        </p>
      )}
      {counted && !(job.balanced && adds(job.rows_total, totals)) && (
        <p class="callout" role="alert" data-testid="unbalanced">
          {m('unbalanced')}
        </p>
      )}
      {job.status === 'undone' && <p class="callout">{m('undoneNote')}</p>}
      {counted && <Totals job={job} />}

      <h3>{m('report')}</h3>
      <div class="actions">
        <button type="button" onClick={() => report('csv')}>
          {m('reportCsv')}
        </button>
        <button type="button" onClick={() => report('xlsx')}>
          {m('reportXlsx')}
        </button>
      </div>
      <p role="status" class="muted">
        {saved}
      </p>
      {failed && <p class="danger-text">{failed}</p>}

      {(job.status === 'undoing' || phase.running === 'undo') && <PhaseProgress job={job} phase="undo" />}
      {phase.error && (
        <p role="alert" class="danger-text" data-testid="undo-error">
          {phase.error}
        </p>
      )}
      <div class="actions">
        {job.status === 'imported' && (
          <button
            type="button"
            class="danger"
            aria-haspopup="dialog"
            disabled={Boolean(phase.running)}
            onClick={() => setAsking(true)}
          >
            {m('undo')}
          </button>
        )}
        {job.status === 'undoing' && !phase.running && (
          <button type="button" class="danger" onClick={() => void phase.run(job.id, 'undo')}>
            {m('resume')}
          </button>
        )}
        <button type="button" onClick={props.onAgain}>
          {m('again')}
        </button>
      </div>
      <RowsTable job={job} />
      {asking && (
        <Sheet labelledBy="undo-title" onClose={() => setAsking(false)} onSubmit={undo}>
          <h2 id="undo-title">{m('undoTitle')}</h2>
          <p>
            {[
              totals.create > 0 && m('undoCreated', { n: totals.create }),
              totals.update + totals.merge > 0 && m('undoChanged', { n: totals.update + totals.merge }),
              m('undoSafe'),
            ]
              .filter(Boolean)
              .join(' ')}
          </p>
          <div class="actions">
            <button type="button" onClick={() => setAsking(false)}>
              {m('cancel')}
            </button>
            <button type="submit" class="danger">
              {m('undoConfirm')}
            </button>
          </div>
        </Sheet>
      )}
    </div>
  )
}

// History ---------------------------------------------------------------------------------------------------------

function totalsLine(job: ImportJob): string {
  const totals = totalsOf(job)
  return OUTCOMES.filter((o) => totals[o] > 0)
    .map((o) => m('part', { n: fmt.number(totals[o]), outcome: m(`part-${o}`) }))
    .join(' · ')
}

function History(props: { version: string; onOpen: (job: ImportJob) => void; onDiscarded: (id: string) => void }) {
  const [jobs, setJobs] = useState<ImportJob[] | null>(null)
  const [next, setNext] = useState<string | null>(null)
  const [error, setError] = useState('')
  const [discarding, setDiscarding] = useState<ImportJob | null>(null)
  const names = useLive(userNames)

  const load = async (cursor: string | null = null) => {
    const { data, error: problem } = await api.GET('/api/v1/imports', {
      params: { query: { limit: 20, cursor: cursor ?? undefined } },
    })
    if (!data) throw new Error(problemText(problem))
    setJobs((before) => (cursor ? [...(before ?? []), ...data.items] : data.items))
    setNext(data.next_cursor ?? null)
    setError('')
  }
  useEffect(() => {
    load().catch((e: unknown) => setError(failure(e)))
  }, [props.version])

  const discard = async (event: Event) => {
    event.preventDefault()
    const job = discarding
    setDiscarding(null)
    if (!job) return
    try {
      const { error: problem, response } = await api.DELETE('/api/v1/imports/{job_id}', {
        params: { path: { job_id: job.id } },
      })
      if (!response.ok) throw new Error(problemText(problem))
      props.onDiscarded(job.id)
      await load()
    } catch (e) {
      setError(reason(e))
    }
  }

  return (
    <section aria-labelledby="import-history" class="history">
      <h2 id="import-history">{m('history')}</h2>
      {error && <p class="danger-text">{error}</p>}
      {jobs && !jobs.length && <p class="empty">{m('noHistory')}</p>}
      {jobs && jobs.length > 0 && (
        <ul class="list card" data-testid="history">
          {jobs.map((job) => {
            const who = names?.get(job.created_by_id)
            const resumable = runningPhase(job.status) !== null
            return (
              <li class="history-item" data-testid="history-item" data-status={job.status}>
                <span class="grow">
                  <span class="title">{job.file_name}</span>
                  <span class="sub">
                    {m(job.entity)}
                    {who && ` · ${m('by', { name: who })}`} · {fmt.dateTime(job.created_at)}
                  </span>
                  <span class="sub">
                    <span class={`pill${resumable ? ' warn' : ''}`}>{m(`status-${job.status}`)}</span> {totalsLine(job)}
                  </span>
                </span>
                <span class="history-actions">
                  <button type="button" class={resumable ? 'primary' : undefined} onClick={() => props.onOpen(job)}>
                    {resumable ? m('resume') : m('open')}
                    <span class="visually-hidden"> {job.file_name}</span>
                  </button>
                  {discardable(job.status) && (
                    <button type="button" class="danger" aria-haspopup="dialog" onClick={() => setDiscarding(job)}>
                      {m('discard')}
                      <span class="visually-hidden"> {job.file_name}</span>
                    </button>
                  )}
                </span>
              </li>
            )
          })}
        </ul>
      )}
      {next && (
        <button type="button" onClick={() => void load(next).catch((e: unknown) => setError(failure(e)))}>
          {m('moreHistory')}
        </button>
      )}
      {discarding && (
        <Sheet labelledBy="discard-title" onClose={() => setDiscarding(null)} onSubmit={discard}>
          <h2 id="discard-title">{m('discardTitle', { name: discarding.file_name })}</h2>
          <p>{m('discardText')}</p>
          <div class="actions">
            <button type="button" onClick={() => setDiscarding(null)}>
              {m('cancel')}
            </button>
            <button type="submit" class="danger">
              {m('discard')}
            </button>
          </div>
        </Sheet>
      )}
    </section>
  )
}

// The screen ------------------------------------------------------------------------------------------------------

function ImportScreen() {
  const [job, setJob] = useState<ImportJob | null>(null)
  const [step, setStep] = useState<Step>('upload')
  // The file picked, kept to read another of its sheets (a job opened from the history has none).
  const [file, setFile] = useState<File | null>(null)
  const heading = useRef<HTMLHeadingElement>(null)
  const moved = useRef(false)
  // Each step's heading takes the focus, so a screen reader starts reading the new step.
  useEffect(() => {
    if (moved.current) heading.current?.focus()
    moved.current = true
  }, [step, job?.id])

  const go = (next: Step) => setStep(next)
  const open = (opened: ImportJob) => {
    setFile(null)
    setJob(opened)
    setStep(stepOf(opened.status))
  }
  const again = () => {
    setJob(null)
    setFile(null)
    setStep('upload')
  }

  return (
    <div class="screen imports" data-testid="imports" data-step={step}>
      <h1>{m('title')}</h1>
      <p class="muted">{m('intro')}</p>
      <Steps current={step} />
      <section class="card import-step" aria-labelledby="import-step">
        <h2 id="import-step" tabIndex={-1} ref={heading}>
          {m(`step-${step}`)}
        </h2>
        {step === 'upload' && (
          <UploadStep
            onUploaded={(uploaded, picked) => {
              setFile(picked)
              setJob(uploaded)
              setStep('mapping')
            }}
          />
        )}
        {step === 'mapping' && job && (
          <MappingStep key={job.id} job={job} file={file} onJob={setJob} onReplaced={setJob} onDone={go} />
        )}
        {step === 'values' && job && <ValuesStep key={job.id} job={job} onJob={setJob} onDone={go} />}
        {step === 'preview' && job && <PreviewStep key={job.id} job={job} onJob={setJob} onDone={go} />}
        {step === 'import' && job && <ImportStep key={job.id} job={job} onJob={setJob} onDone={go} />}
        {step === 'result' && job && <ResultStep key={job.id} job={job} onJob={setJob} onAgain={again} />}
      </section>
      <History
        version={`${job?.id ?? ''}:${job?.status ?? ''}`}
        onOpen={open}
        onDiscarded={(id) => id === job?.id && again()}
      />
    </div>
  )
}

export function Imports() {
  const session = useSession()
  if (session?.user.role === 'admin') return <ImportScreen />
  return (
    <div class="screen">
      <h1>{m('title')}</h1>
      {session && <p class="empty">{m('adminsOnly')}</p>}
    </div>
  )
}
