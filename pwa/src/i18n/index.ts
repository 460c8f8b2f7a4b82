// English and Spanish. Each screen keeps its own messages (loaded with it); TypeScript checks that both languages
// have every key. Numbers, money and dates go through Intl in the user's locale.

export type Lang = 'en' | 'es'
export const LANGS: Lang[] = ['en', 'es']
export type Params = Record<string, string | number>
type Message = string | ((p: Params) => string)

function detect(): Lang {
  const stored = globalThis.localStorage?.getItem('lang')
  if (stored === 'en' || stored === 'es') return stored
  const preferred = globalThis.navigator?.languages ?? []
  return preferred.find((tag) => tag.startsWith('es') || tag.startsWith('en'))?.startsWith('es') ? 'es' : 'en'
}

export let lang: Lang = detect()

/** The full locale for Intl: the browser's own variant of the chosen language (es-MX, en-GB), else a default. */
export function locale(): string {
  const preferred = globalThis.navigator?.languages ?? []
  return preferred.find((tag) => tag.split('-')[0] === lang) ?? (lang === 'es' ? 'es-ES' : 'en-US')
}

export function setLang(next: Lang): void {
  lang = next
  globalThis.localStorage?.setItem('lang', next)
  document.documentElement.lang = next
  window.dispatchEvent(new Event('languagechange'))
}

export function defineMessages<T extends Record<string, Message>>(catalog: {
  en: T
  es: { [K in keyof T]: T[K] extends string ? string : (p: Params) => string }
}) {
  return (key: keyof T & string, params: Params = {}): string => {
    const message = (catalog[lang] as Record<string, Message>)[key] ?? catalog.en[key]
    if (typeof message === 'function') return message(params)
    return message.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`))
  }
}

/** Picks the plural form for `n` in the current language ("1 change" / "3 changes"). */
export function plural(n: number, forms: { one: string; other: string }): string {
  const form = new Intl.PluralRules(locale()).select(n) === 'one' ? forms.one : forms.other
  return form.replace('{n}', new Intl.NumberFormat(locale()).format(n))
}

const digits = new Map<string, number>()
function minorDigits(currency: string): number {
  if (!digits.has(currency)) {
    const { maximumFractionDigits } = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
    digits.set(currency, maximumFractionDigits ?? 2)
  }
  return digits.get(currency) ?? 2
}

export const fmt = {
  number: (n: number) => new Intl.NumberFormat(locale()).format(n),
  money: (minor: number, currency: string, compact = false) =>
    new Intl.NumberFormat(locale(), {
      style: 'currency',
      currency,
      ...(compact ? { notation: 'compact', maximumFractionDigits: 1 } : {}),
    }).format(minor / 10 ** minorDigits(currency)),
  /** Minor units from what the user typed in their locale ("1.234,56" in Spanish, "1,234.56" in English): the
   *  locale's decimal mark is the decimal point, any other mark groups digits. */
  parseMoney: (text: string, currency: string): number | null => {
    const decimal = new Intl.NumberFormat(locale()).formatToParts(1.5).find((p) => p.type === 'decimal')?.value ?? '.'
    const plain = [...text]
      .filter((c) => /[\d-]/.test(c) || c === decimal)
      .join('')
      .replace(decimal, '.')
    const value = Number(plain)
    return /\d/.test(plain) && Number.isFinite(value) ? Math.round(value * 10 ** minorDigits(currency)) : null
  },
  date: (iso: string) => new Intl.DateTimeFormat(locale(), { dateStyle: 'medium' }).format(new Date(iso)),
  time: (iso: string) => new Intl.DateTimeFormat(locale(), { timeStyle: 'short' }).format(new Date(iso)),
  /** "Thu 09:00": within the coming week. */
  dayTime: (iso: string) =>
    new Intl.DateTimeFormat(locale(), { weekday: 'short', hour: 'numeric', minute: '2-digit' }).format(new Date(iso)),
  dateTime: (iso: string) =>
    new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)),
  /** "in 2 days", "hace 3 horas". */
  relative: (iso: string, now: number = Date.now()) => {
    const seconds = (new Date(iso).getTime() - now) / 1000
    const units: [Intl.RelativeTimeFormatUnit, number][] = [
      ['year', 31_536_000],
      ['month', 2_592_000],
      ['week', 604_800],
      ['day', 86_400],
      ['hour', 3600],
      ['minute', 60],
    ]
    const format = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' })
    for (const [unit, size] of units)
      if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit)
    return format.format(0, 'minute')
  },
}
