// What the Learn and Team screens share: the period picker, reading an insight online and keeping its last answer in
// `db.page` (insights need the server; the copy is what shows offline), and formats the insights use.
import { useState } from 'preact/hooks'
import { problemText } from '../api/client'
import type { Session } from '../auth'
import { db } from '../db/db'
import { useKept, useLive, type FetchState } from '../hooks'
import { defineMessages, fmt, locale, plural, type Params } from '../i18n'

const m = defineMessages({
  en: {
    period: 'Period',
    days: (p: Params) => plural(Number(p.n), { one: '{n} day', other: '{n} days' }),
    year: '1 year',
    range: '{first} – {last}',
    loading: 'Loading…',
    saved: 'Saved {when}, offline',
    offline: 'You are offline. Open this screen once while online to keep a copy on this device.',
    notSaved: 'Not saved on this device yet.',
    failed: 'Could not load: {error}',
    none: '–',
  },
  es: {
    period: 'Periodo',
    days: (p: Params) => plural(Number(p.n), { one: '{n} día', other: '{n} días' }),
    year: '1 año',
    range: '{first} – {last}',
    loading: 'Cargando…',
    saved: 'Guardado {when}, sin conexión',
    offline: 'Sin conexión. Abre esta pantalla una vez con conexión para guardar una copia en este dispositivo.',
    notSaved: 'Aún no está guardado en este dispositivo.',
    failed: 'No se pudo cargar: {error}',
    none: '–',
  },
})

export const PERIODS = [30, 90, 365] as const
export type Days = (typeof PERIODS)[number]

/** The organisation's time zone (setting `time_zone`), in which the server reads a period's days; UTC when unset. */
export function orgTimeZone(session: Session | null | undefined): string {
  const zone = session?.organization.settings.time_zone
  return typeof zone === 'string' && zone ? zone : 'UTC'
}

/** Year, month and day of `now` on the calendar of `timeZone` (UTC when the device does not know that zone). */
function calendarDay(now: Date, timeZone: string): [number, number, number] {
  let format: Intl.DateTimeFormat
  try {
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
  } catch {
    format = new Intl.DateTimeFormat('en-CA', { timeZone: 'UTC', year: 'numeric', month: '2-digit', day: '2-digit' })
  }
  const parts = format.formatToParts(now)
  const part = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value)
  return [part('year'), part('month'), part('day')]
}

/** YYYY-MM-DD of a calendar day (counted in UTC, which has no daylight saving to skip a day). */
const isoDay = (day: Date): string => day.toISOString().slice(0, 10)

/** The last `days` days, today included, as the insights' `from`/`to`: whole days on the organisation's calendar
 *  (`timeZone`), which is how the server reads them, so a phone abroad asks for the days the server means. */
export function periodQuery(
  days: number,
  timeZone: string = 'UTC',
  now: Date = new Date(),
): { from: string; to: string } {
  const [year, month, day] = calendarDay(now, timeZone)
  return {
    from: isoDay(new Date(Date.UTC(year, month - 1, day - (days - 1)))),
    to: isoDay(new Date(Date.UTC(year, month - 1, day))),
  }
}

// The period chosen last, kept while the app runs so Learn and Team show the same one.
let chosen: Days = 90

export function usePeriod(): [Days, (days: Days) => void] {
  const [days, setDays] = useState<Days>(chosen)
  return [
    days,
    (next: Days) => {
      chosen = next
      setDays(next)
    },
  ]
}

export function PeriodPicker({ days, onChange }: { days: Days; onChange: (days: Days) => void }) {
  return (
    <fieldset class="chips period">
      <legend>{m('period')}</legend>
      {PERIODS.map((n) => (
        <button type="button" class="chip" aria-pressed={n === days} onClick={() => onChange(n)}>
          {n === 365 ? m('year') : m('days', { n })}
        </button>
      ))}
    </fieldset>
  )
}

/** A calendar day (YYYY-MM-DD) in the user's locale: read as that day on the device, not as UTC midnight. */
export function dayText(iso: string): string {
  const [y, mo, d] = iso.split('-').map(Number)
  return fmt.date(new Date(y, mo - 1, d).toISOString())
}

export const rangeText = (period: { first_day: string; last_day: string }): string =>
  m('range', { first: dayText(period.first_day), last: dayText(period.last_day) })

const none = () => m('none')
/** 0.4567 → "46 %" ("46%" in English); a missing ratio as a dash. */
export const percent = (ratio: number | null | undefined): string =>
  ratio === null || ratio === undefined
    ? none()
    : new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 0 }).format(ratio)
/** 3.5 → "3.5 days" / "3,5 días". */
export const daysText = (n: number | null | undefined): string =>
  n === null || n === undefined
    ? none()
    : new Intl.NumberFormat(locale(), {
        style: 'unit',
        unit: 'day',
        unitDisplay: 'long',
        maximumFractionDigits: 1,
      }).format(n)
/** 5.25 → "5.3 hr" / "5,3 h". */
export const hoursText = (n: number | null | undefined): string =>
  n === null || n === undefined
    ? none()
    : new Intl.NumberFormat(locale(), { style: 'unit', unit: 'hour', maximumFractionDigits: 1 }).format(n)
/** A number with up to one decimal, or a dash. */
export const decimal = (n: number | null | undefined): string =>
  n === null || n === undefined ? none() : new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(n)
/** +3 / −3 / ±0: a change against the previous period. */
export function signed(change: number, format: (n: number) => string = fmt.number): string {
  const text = format(Math.abs(change))
  return change > 0 ? `+${text}` : change < 0 ? `−${text}` : `±${text}`
}

export interface Insight<T> {
  /** The last answer kept on the device for this key (undefined while IndexedDB is read, null when none). */
  data: T | null | undefined
  at: string | null
  state: FetchState
  error: string
}

/** Reads an insight whenever `key` or `deps` change (the days asked for: a new day, the session's time zone) or the
 *  device comes online, and keeps the answer in `db.page` under `key` (see useKept). `load` is an openapi-fetch call:
 *  `data` on success, `error` (problem+json) otherwise. */
export function useInsight<T>(
  key: string,
  load: () => Promise<{ data?: T; error?: unknown }>,
  online: boolean,
  deps: unknown[] = [],
): Insight<T> {
  const saved = useLive(async () => (await db.page.get(key)) ?? null, [key])
  const { state, error } = useKept(
    key,
    async () => {
      const { data, error: problem } = await load()
      if (data === undefined) throw new Error(problemText(problem))
      return { items: [], data }
    },
    online,
    deps,
  )

  // A copy read for the key the screen left is not this one's.
  const current = saved === undefined || saved === null || saved.key === key ? saved : undefined
  return {
    data: current === undefined ? undefined : ((current?.data as T | undefined) ?? null),
    at: current?.at ?? null,
    state,
    error,
  }
}

/** The screen's line about its data: loading, or the age of the copy shown offline, or that there is none. */
export function InsightStatus({ insights, online }: { insights: Insight<unknown>[]; online: boolean }) {
  const offline = !online || insights.some((i) => i.state === 'offline')
  const loading = insights.some((i) => i.state === 'loading')
  const kept = insights.filter((i) => i.at).map((i) => i.at as string)
  const oldest = kept.sort()[0]
  const read = insights.every((i) => i.data !== undefined)
  return (
    <>
      <p role="status" class="muted">
        {loading ? m('loading') : offline && oldest ? m('saved', { when: fmt.relative(oldest) }) : ''}
      </p>
      {offline && read && !kept.length && <p class="empty">{m('offline')}</p>}
    </>
  )
}

/** Under a section's heading: why its numbers are missing or may be old. */
export function SectionNote({ insight, online }: { insight: Insight<unknown>; online: boolean }) {
  if (insight.state === 'error' && online) return <p class="danger-text">{m('failed', { error: insight.error })}</p>
  if (insight.data === null && (insight.state === 'offline' || !online)) return <p class="empty">{m('notSaved')}</p>
  return null
}
