import { afterEach, describe, expect, it, vi } from 'vitest'

async function inLanguage(languages: string[]) {
  vi.stubGlobal('navigator', { languages })
  vi.resetModules()
  return import('../src/i18n')
}

afterEach(() => vi.unstubAllGlobals())

describe('money typed by the user', () => {
  it('reads Spanish notation, with or without thousands marks', async () => {
    const { fmt, lang } = await inLanguage(['es-ES'])
    expect(lang).toBe('es')
    expect(fmt.parseMoney('1.234,56', 'EUR')).toBe(123456)
    expect(fmt.parseMoney('1234,56', 'EUR')).toBe(123456)
    expect(fmt.parseMoney('15000', 'EUR')).toBe(1500000)
    expect(fmt.parseMoney('€ 1 234,5', 'EUR')).toBe(123450)
  })

  it('reads English notation, and currencies without minor units', async () => {
    const { fmt } = await inLanguage(['en-GB'])
    expect(fmt.parseMoney('1,234.56', 'GBP')).toBe(123456)
    expect(fmt.parseMoney('1234.5', 'GBP')).toBe(123450)
    expect(fmt.parseMoney('1,234', 'JPY')).toBe(1234)
    expect(fmt.parseMoney('', 'GBP')).toBeNull()
    expect(fmt.parseMoney('abc', 'GBP')).toBeNull()
  })

  it("shows money in the locale the language picks: the browser's own variant when it has one", async () => {
    const { fmt, locale } = await inLanguage(['es-MX', 'en-US'])
    expect(locale()).toBe('es-MX')
    expect(fmt.money(1_200_000, 'MXN')).toBe('$12,000.00')
  })
})
