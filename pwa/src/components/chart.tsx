// A bar chart drawn by Chart.js, fetched the first time a chart is shown (the screens' text and tables come first and
// do not wait for it). The canvas is an image with a label; the numbers themselves are always in a table next to it.
import { useEffect, useRef, useState } from 'preact/hooks'

export interface BarSeries {
  label: string
  values: (number | null)[]
  /** One colour, or one per bar (to mark a bar: the signed-in user, the weakest stage). */
  color: string | string[]
}

export interface BarSpec {
  labels: string[]
  series: BarSeries[]
  /** Bars along the x axis, one row per label: long names stay readable on a phone. */
  horizontal?: boolean
  /** A value as the tooltip shows it. */
  format: (n: number) => string
  /** A value on the axis (compact money, say); `format` when not given. */
  axis?: (n: number) => string
  /** Counts: the axis marks whole numbers only (no "0.5 tasks"). */
  whole?: boolean
}

export const COLORS = {
  brand: '#0f5132',
  other: '#6e7781',
  mine: '#1f6feb',
  danger: '#a40e26',
  warn: '#9a6700',
} as const

type Engine = typeof import('./chart-engine')
let engine: Promise<Engine> | null = null
const loadEngine = () => (engine ??= import('./chart-engine'))

interface Props extends BarSpec {
  /** What the picture shows, for the canvas's `aria-label`. */
  label: string
  /** A key for the legend below the chart; the series' own when there are several. */
  legend?: { label: string; color: string }[]
  testid?: string
}

export function BarChart(props: Props) {
  const canvas = useRef<HTMLCanvasElement>(null)
  const [failed, setFailed] = useState(false)
  const { labels, series, horizontal } = props
  // Redrawn when the numbers change (a new period, a fresh answer); the formats follow the language, which
  // remounts the app.
  const shape = JSON.stringify([labels, series, horizontal])

  useEffect(() => {
    let chart: { destroy(): void } | null = null
    let shown = true
    loadEngine()
      .then(({ draw }) => {
        if (shown && canvas.current) chart = draw(canvas.current, props)
      })
      .catch(() => shown && setFailed(true))
    return () => {
      shown = false
      chart?.destroy()
    }
  }, [shape])

  if (failed || !labels.length) return null
  const rows = labels.length * (horizontal ? series.length : 1)
  const height = horizontal ? Math.max(120, rows * 22 + labels.length * 10 + 40) : 220
  const legend =
    props.legend ?? (series.length > 1 ? series.map((s) => ({ label: s.label, color: String(s.color) })) : [])
  return (
    <figure class="chart" data-testid={props.testid}>
      <div class="chart-box" style={{ height: `${height}px` }}>
        <canvas ref={canvas} role="img" aria-label={props.label} />
      </div>
      {legend.length > 0 && (
        <figcaption>
          <ul class="legend">
            {legend.map((entry) => (
              <li>
                <span class="swatch" style={{ background: entry.color }} aria-hidden="true" />
                {entry.label}
              </li>
            ))}
          </ul>
        </figcaption>
      )}
    </figure>
  )
}
