// Learn: how the team sells, for everyone who sells. The leaderboard, the goals running now with each one's
// progress, and how the top quartile wins against everyone else (touches, days between them, time in each stage),
// with their latest wins to read step by step.
// Insights are read from the server; the last answer for each period stays on the device for offline use.
import { useEffect } from 'preact/hooks'
import { api, type Pipeline, type Schemas, type Stage } from '../api/client'
import type { Session } from '../auth'
import { BarChart, COLORS } from '../components/chart'
import {
  InsightStatus,
  PeriodPicker,
  SectionNote,
  daysText,
  dayText,
  decimal,
  orgTimeZone,
  percent,
  periodQuery,
  rangeText,
  useInsight,
  usePeriod,
  type Insight,
} from '../components/insight'
import { db } from '../db/db'
import { useLive, useOnline, useSession } from '../hooks'
import { defineMessages, fmt, plural, type Params } from '../i18n'
import { goalNumber, goalText, orgCurrency } from './feed'
import '../components/insights.css'

type Leaderboard = Schemas['Leaderboard']
type Playbook = Schemas['Playbook']
type Goal = Schemas['GoalWithProgress']
type Habits = Schemas['Habits']
type StageTime = Schemas['StageTime']

const m = defineMessages({
  en: {
    title: 'Learn',
    board: 'Leaderboard',
    boardChart: 'Bar chart of the amount each person won in the period. The table below has the same numbers.',
    boardEmpty: 'Nobody on the leaderboard in this period.',
    rank: 'Rank',
    name: 'Name',
    won: 'Won',
    winRate: 'Win rate',
    cycle: 'Days',
    you: 'you',
    top: 'Top quartile',
    others: 'Others',
    youKey: 'You',
    topNote:
      '★ Top quartile: the first quarter of the board, among those who won a deal. Days: from creation to win, the median.',
    deals: (p: Params) => plural(Number(p.n), { one: '{n} deal', other: '{n} deals' }),
    goals: 'My goals',
    teamGoals: 'Goals',
    goalsEmpty: 'No goal is running now.',
    target: 'Target: {target}',
    dates: '{first} – {last}',
    reward: 'Reward: {reward}',
    progress: '{value} of {target}',
    reached: 'Reached {when}',
    notCounted: 'This goal does not count you.',
    playbook: 'How top performers win',
    playbookChart:
      'Grouped bar chart: the top quartile against everyone else, touches per won deal and days between them. The table below has the same numbers.',
    groups: 'Top quartile: {top}. Everyone else: {rest}.',
    group: (p: Params) =>
      `${plural(Number(p.reps), { one: '{n} person', other: '{n} people' })}, ${plural(Number(p.wins), { one: '{n} win', other: '{n} wins' })}`,
    measure: 'Per won deal (median)',
    topHead: 'Top',
    restHead: 'Everyone else',
    call: 'Calls',
    meeting: 'Meetings',
    email: 'E-mails',
    note: 'Notes',
    firstTouch: 'Days to first touch',
    between: 'Days between touches',
    stageTime: 'Time in each stage',
    stageChart:
      'Grouped bar chart: the median days a won deal spent in each stage, the top quartile against everyone else. The table below has the same numbers.',
    stage: 'Stage',
    stageNote: 'Days: the median time the won deals of the period spent in each stage; a dash, none passed through it.',
    recent: 'Their latest wins',
    recentEmpty: 'No win of the top quartile in this period.',
    winLine: (p: Params) =>
      `${p.owner} · ${p.amount} · ${p.when} · ${p.days} · ${plural(Number(p.touches), { one: '{n} touch', other: '{n} touches' })}`,
  },
  es: {
    title: 'Aprender',
    board: 'Clasificación',
    boardChart:
      'Gráfico de barras del importe que ganó cada persona en el periodo. La tabla de abajo tiene las mismas cifras.',
    boardEmpty: 'Nadie en la clasificación en este periodo.',
    rank: 'Puesto',
    name: 'Nombre',
    won: 'Ganado',
    winRate: 'Tasa de éxito',
    cycle: 'Días',
    you: 'tú',
    top: 'Cuartil superior',
    others: 'Resto',
    youKey: 'Tú',
    topNote:
      '★ Cuartil superior: el primer cuarto de la clasificación, entre quienes ganaron algún negocio. Días: de la creación a la venta, la mediana.',
    deals: (p: Params) => plural(Number(p.n), { one: '{n} negocio', other: '{n} negocios' }),
    goals: 'Mis objetivos',
    teamGoals: 'Objetivos',
    goalsEmpty: 'No hay ningún objetivo en curso.',
    target: 'Meta: {target}',
    dates: '{first} – {last}',
    reward: 'Premio: {reward}',
    progress: '{value} de {target}',
    reached: 'Alcanzado {when}',
    notCounted: 'Este objetivo no te cuenta a ti.',
    playbook: 'Cómo ganan los mejores',
    playbookChart:
      'Gráfico de barras agrupadas: el cuartil superior frente al resto, contactos por negocio ganado y días entre ellos. La tabla de abajo tiene las mismas cifras.',
    groups: 'Cuartil superior: {top}. Resto: {rest}.',
    group: (p: Params) =>
      `${plural(Number(p.reps), { one: '{n} persona', other: '{n} personas' })}, ${plural(Number(p.wins), { one: '{n} venta ganada', other: '{n} ventas ganadas' })}`,
    measure: 'Por negocio ganado (mediana)',
    topHead: 'Mejores',
    restHead: 'Resto',
    call: 'Llamadas',
    meeting: 'Reuniones',
    email: 'Correos',
    note: 'Notas',
    firstTouch: 'Días hasta el primer contacto',
    between: 'Días entre contactos',
    stageTime: 'Tiempo en cada etapa',
    stageChart:
      'Gráfico de barras agrupadas: la mediana de días que un negocio ganado pasó en cada etapa, el cuartil superior frente al resto. La tabla de abajo tiene las mismas cifras.',
    stage: 'Etapa',
    stageNote:
      'Días: la mediana del tiempo que los negocios ganados del periodo pasaron en cada etapa; un guion, ninguno pasó por ella.',
    recent: 'Sus últimas ventas ganadas',
    recentEmpty: 'El cuartil superior no ganó ningún negocio en este periodo.',
    winLine: (p: Params) =>
      `${p.owner} · ${p.amount} · ${p.when} · ${p.days} · ${plural(Number(p.touches), { one: '{n} contacto', other: '{n} contactos' })}`,
  },
})

/** Every goal running now, with each one's progress the caller may see (all pages). */
async function currentGoals(): Promise<{ data?: Goal[]; error?: unknown }> {
  const goals: Goal[] = []
  let cursor: string | null = null
  do {
    const { data, error }: { data?: Schemas['Page_GoalWithProgress_']; error?: unknown } = await api.GET(
      '/api/v1/goals',
      { params: { query: { current: true, limit: 100, cursor } } },
    )
    if (!data) return { error }
    goals.push(...data.items)
    cursor = data.next_cursor ?? null
  } while (cursor)
  return { data: goals }
}

function Board({ board, me }: { board: Leaderboard; me: string }) {
  const reps = board.reps
  if (!reps.length) return <p class="empty">{m('boardEmpty')}</p>
  const money = (n: number) => fmt.money(n, board.currency)
  const onBoard = reps.some((r) => r.user_id === me)
  return (
    <>
      <BarChart
        testid="leaderboard-chart"
        label={m('boardChart')}
        horizontal
        labels={reps.map((r) => r.name)}
        series={[
          {
            label: m('won'),
            values: reps.map((r) => r.won_amount_minor),
            color: reps.map((r) => (r.user_id === me ? COLORS.mine : r.top_quartile ? COLORS.brand : COLORS.other)),
          },
        ]}
        format={money}
        axis={(n) => fmt.money(n, board.currency, true)}
        legend={[
          { label: m('top'), color: COLORS.brand },
          { label: m('others'), color: COLORS.other },
          ...(onBoard ? [{ label: m('youKey'), color: COLORS.mine }] : []),
        ]}
      />
      <div class="table-wrap" role="region" aria-labelledby="learn-board" tabIndex={0}>
        <table class="numbers" data-testid="leaderboard-table">
          <thead>
            <tr>
              <th scope="col">
                <span aria-hidden="true">#</span>
                <span class="visually-hidden">{m('rank')}</span>
              </th>
              <th scope="col">{m('name')}</th>
              <th scope="col">{m('won')}</th>
              <th scope="col">{m('winRate')}</th>
              <th scope="col">{m('cycle')}</th>
            </tr>
          </thead>
          <tbody>
            {reps.map((r) => (
              <tr
                key={r.user_id}
                class={r.user_id === me ? 'me' : undefined}
                aria-current={r.user_id === me || undefined}
              >
                <td>{fmt.number(r.rank)}</td>
                <th scope="row">
                  {r.name}
                  {r.user_id === me && <span class="muted"> ({m('you')})</span>}
                  {r.top_quartile && (
                    <span class="star" title={m('top')}>
                      {' ★'}
                      <span class="visually-hidden">{m('top')}</span>
                    </span>
                  )}
                </th>
                <td>
                  {money(r.won_amount_minor)}
                  <span class="muted block">{m('deals', { n: r.won })}</span>
                </td>
                <td>{percent(r.win_rate)}</td>
                <td>{decimal(r.cycle_days_median)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">{m('topNote')}</p>
    </>
  )
}

function GoalCard({ goal, me, currency, everyone }: { goal: Goal; me: string; currency: string; everyone: boolean }) {
  const rows = everyone ? goal.progress : goal.progress.filter((p) => p.user_id === me)
  return (
    <li class="card goal" data-testid="goal">
      <h3>{goal.name}</h3>
      <p class="muted">
        {[
          m('target', { target: goalText(goal.metric, goal.target, currency) }),
          m('dates', { first: dayText(goal.starts_on), last: dayText(goal.ends_on) }),
        ].join(' · ')}
      </p>
      {goal.reward && <p>{m('reward', { reward: goal.reward })}</p>}
      {rows.length ? (
        <ul class="list progress-list">
          {rows.map((p) => {
            const id = `goal-${goal.id}-${p.user_id}`
            return (
              <li key={p.user_id} class={p.user_id === me ? 'me' : undefined}>
                <div class="progress-head">
                  <span id={`${id}-name`}>
                    {p.name}
                    {p.user_id === me && everyone && <span class="muted"> ({m('you')})</span>}
                  </span>
                  <span id={`${id}-value`} class="amount">
                    {m('progress', {
                      value: goalNumber(goal.metric, p.value, currency),
                      target: goalNumber(goal.metric, goal.target, currency),
                    })}
                  </span>
                </div>
                <progress
                  max={goal.target}
                  value={Math.min(p.value, goal.target)}
                  aria-labelledby={`${id}-name ${id}-value`}
                />
                {p.reached_at && <span class="pill">{m('reached', { when: fmt.date(p.reached_at) })}</span>}
              </li>
            )
          })}
        </ul>
      ) : (
        <p class="muted">{m('notCounted')}</p>
      )}
    </li>
  )
}

const TOUCHES = ['call', 'meeting', 'email', 'note'] as const
const habits = (h: Habits) => [
  ...TOUCHES.map((kind) => h.touches_per_win[kind]),
  h.days_to_first_touch,
  h.days_between_touches,
]

interface StageRow {
  stage_id: string
  name: string
  top: number | null
  rest: number | null
}

/** The stages either group's won deals stayed in, matched by id, in the pipelines' order (the stages on the device
 *  give each one's position; one not there keeps the server's order), each group's median days or null. With
 *  stages of more than one pipeline, a stage's name says its pipeline's. */
export function stageRows(top: StageTime[], rest: StageTime[], stages: Stage[], pipelines: Pipeline[]): StageRow[] {
  const rows = new Map<string, StageRow & { pipeline_id: string; seen: number }>()
  for (const [group, times] of [
    ['top', top],
    ['rest', rest],
  ] as const)
    for (const t of times) {
      const row = rows.get(t.stage_id) ?? {
        stage_id: t.stage_id,
        name: t.name,
        pipeline_id: t.pipeline_id,
        top: null,
        rest: null,
        seen: rows.size,
      }
      row[group] = t.median_days
      rows.set(t.stage_id, row)
    }
  const position = new Map(stages.map((s) => [s.id, s.position]))
  const pipelineIds = [...new Set([...rows.values()].map((r) => r.pipeline_id))]
  const pipelineName = new Map(pipelines.map((p) => [p.id, p.name]))
  const sorted = [...rows.values()].sort(
    (a, b) =>
      pipelineIds.indexOf(a.pipeline_id) - pipelineIds.indexOf(b.pipeline_id) ||
      (position.get(a.stage_id) ?? Infinity) - (position.get(b.stage_id) ?? Infinity) ||
      a.seen - b.seen,
  )
  return sorted.map(({ stage_id, name, pipeline_id, top, rest }) => ({
    stage_id,
    name: pipelineIds.length > 1 && pipelineName.has(pipeline_id) ? `${pipelineName.get(pipeline_id)} · ${name}` : name,
    top,
    rest,
  }))
}

function TimeInStage({ playbook }: { playbook: Playbook }) {
  const stages = useLive(() => db.stage.toArray()) ?? []
  const pipelines = useLive(() => db.pipeline.toArray()) ?? []
  const rows = stageRows(playbook.top.days_in_stage, playbook.rest.days_in_stage, stages, pipelines)
  if (!rows.length) return null
  return (
    <>
      <h3 id="learn-stages">{m('stageTime')}</h3>
      <BarChart
        testid="stage-days-chart"
        label={m('stageChart')}
        horizontal
        labels={rows.map((r) => r.name)}
        series={[
          { label: m('top'), values: rows.map((r) => r.top), color: COLORS.brand },
          { label: m('others'), values: rows.map((r) => r.rest), color: COLORS.other },
        ]}
        format={daysText}
        axis={decimal}
      />
      <div class="table-wrap" role="region" aria-labelledby="learn-stages" tabIndex={0}>
        <table class="numbers" data-testid="stage-days-table">
          <thead>
            <tr>
              <th scope="col">{m('stage')}</th>
              <th scope="col">{m('topHead')}</th>
              <th scope="col">{m('restHead')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.stage_id}>
                <th scope="row">{r.name}</th>
                <td>{decimal(r.top)}</td>
                <td>{decimal(r.rest)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">{m('stageNote')}</p>
    </>
  )
}

function HowTheyWin({ playbook }: { playbook: Playbook }) {
  const labels = [...TOUCHES.map((kind) => m(kind)), m('firstTouch'), m('between')]
  const top = habits(playbook.top)
  const rest = habits(playbook.rest)
  const group = (h: Habits) => m('group', { reps: h.reps, wins: h.wins })
  return (
    <>
      <p>{m('groups', { top: group(playbook.top), rest: group(playbook.rest) })}</p>
      {playbook.top.wins + playbook.rest.wins > 0 && (
        <>
          <BarChart
            testid="playbook-chart"
            label={m('playbookChart')}
            horizontal
            labels={labels}
            series={[
              { label: m('top'), values: top, color: COLORS.brand },
              { label: m('others'), values: rest, color: COLORS.other },
            ]}
            format={decimal}
          />
          <div class="table-wrap" role="region" aria-labelledby="learn-playbook" tabIndex={0}>
            <table class="numbers" data-testid="playbook-table">
              <thead>
                <tr>
                  <th scope="col">{m('measure')}</th>
                  <th scope="col">{m('topHead')}</th>
                  <th scope="col">{m('restHead')}</th>
                </tr>
              </thead>
              <tbody>
                {labels.map((label, i) => (
                  <tr>
                    <th scope="row">{label}</th>
                    <td>{decimal(top[i])}</td>
                    <td>{decimal(rest[i])}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <TimeInStage playbook={playbook} />
        </>
      )}
      <h3>{m('recent')}</h3>
      {playbook.recent_wins.length ? (
        <ul class="list card" data-testid="recent-wins">
          {playbook.recent_wins.map((win) => (
            <li key={win.deal_id}>
              <a class="item" href={`/learn/wins/${win.deal_id}`}>
                <span class="grow">
                  <span class="title">{win.title}</span>
                  <span class="sub">
                    {m('winLine', {
                      owner: win.owner.name,
                      amount: fmt.money(win.amount_minor, win.currency),
                      when: fmt.date(win.won_at),
                      days: daysText(win.cycle_days),
                      touches: win.touches,
                    })}
                  </span>
                </span>
              </a>
            </li>
          ))}
        </ul>
      ) : (
        <p class="empty">{m('recentEmpty')}</p>
      )}
    </>
  )
}

export function Learn() {
  const session = useSession()
  // The period's days are the organisation's (its time zone, in the session): nothing is asked before it is read.
  return session === undefined ? null : <LearnInsights session={session} />
}

function LearnInsights({ session }: { session: Session | null }) {
  const online = useOnline()
  const me = session?.user.id ?? ''
  const everyone = session?.user.role === 'admin' || session?.user.role === 'manager'
  const [days, setDays] = usePeriod()
  const query = periodQuery(days, orgTimeZone(session))
  const asked = [query.from, query.to]
  const board: Insight<Leaderboard> = useInsight(
    `learn:leaderboard:${days}`,
    () => api.GET('/api/v1/insights/leaderboard', { params: { query } }),
    online,
    asked,
  )
  const goals: Insight<Goal[]> = useInsight('learn:goals', currentGoals, online)
  const playbook: Insight<Playbook> = useInsight(
    `learn:playbook:${days}`,
    () => api.GET('/api/v1/insights/playbook', { params: { query } }),
    online,
    asked,
  )
  const currency = orgCurrency(session)
  const period = board.data?.period ?? playbook.data?.period
  // A goal reached in the feed links here: show the goals once they are on screen.
  const goalsShown = Boolean(goals.data)
  useEffect(() => {
    if (goalsShown && location.hash === '#goals') document.getElementById('goals')?.scrollIntoView()
  }, [goalsShown])

  return (
    <div class="screen insights">
      <h1>{m('title')}</h1>
      <PeriodPicker days={days} onChange={setDays} />
      {period && <p class="muted">{rangeText(period)}</p>}
      <InsightStatus insights={[board, goals, playbook]} online={online} />

      <section aria-labelledby="learn-board">
        <h2 id="learn-board">{m('board')}</h2>
        <SectionNote insight={board} online={online} />
        {board.data && <Board board={board.data} me={me} />}
      </section>

      <section aria-labelledby="goals">
        <h2 id="goals">{everyone ? m('teamGoals') : m('goals')}</h2>
        <SectionNote insight={goals} online={online} />
        {goals.data &&
          (goals.data.length ? (
            <ul class="list goals">
              {goals.data.map((goal) => (
                <GoalCard key={goal.id} goal={goal} me={me} currency={currency} everyone={everyone} />
              ))}
            </ul>
          ) : (
            <p class="empty">{m('goalsEmpty')}</p>
          ))}
      </section>

      <section aria-labelledby="learn-playbook">
        <h2 id="learn-playbook">{m('playbook')}</h2>
        <SectionNote insight={playbook} online={online} />
        {playbook.data && <HowTheyWin playbook={playbook.data} />}
      </section>
    </div>
  )
}
