// Chart.js with only what a bar chart needs registered (tree-shaken): loaded by chart.tsx with a dynamic import, so
// it is a chunk of its own that only the Learn and Team screens fetch, never part of the first visit.
import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from 'chart.js'
import type { BarSpec } from './chart'

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip)

const INK = '#57606a'
const GRID = '#d0d7de'

export function draw(canvas: HTMLCanvasElement, spec: BarSpec): Chart<'bar'> {
  const still = globalThis.matchMedia?.('(prefers-reduced-motion: reduce)').matches ?? true
  const value = spec.horizontal ? 'x' : 'y'
  const font = { family: getComputedStyle(canvas).fontFamily, size: 12 }
  return new Chart(canvas, {
    type: 'bar',
    data: {
      labels: spec.labels,
      datasets: spec.series.map((series) => ({
        label: series.label,
        data: series.values,
        backgroundColor: series.color,
        borderRadius: 4,
        maxBarThickness: 28,
      })),
    },
    options: {
      indexAxis: spec.horizontal ? 'y' : 'x',
      responsive: true,
      maintainAspectRatio: false,
      animation: still ? false : { duration: 250 },
      scales: {
        [value]: {
          beginAtZero: true,
          grid: { color: GRID },
          border: { display: false },
          ticks: {
            color: INK,
            font,
            maxTicksLimit: 5,
            precision: spec.whole ? 0 : undefined,
            callback: (tick) => (spec.axis ?? spec.format)(Number(tick)),
          },
        },
        [value === 'x' ? 'y' : 'x']: { grid: { display: false }, ticks: { color: INK, font, autoSkip: false } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (item) =>
              `${spec.series.length > 1 ? `${item.dataset.label}: ` : ''}${spec.format(Number(item.parsed[value]))}`,
          },
        },
      },
    },
  })
}
