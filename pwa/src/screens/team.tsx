// Team: how the team works, for managers and admins. Where deals break (the funnel), where the company loses money
// against the period before (a printable diagnosis), which clients do not come back and why deals are lost, who
// misses deadlines, whose client cards are well developed, and who works in Fieldbook.
// Read from the server; the last answer for each period stays on the device for offline use.
import { useEffect, useState } from 'preact/hooks'
import { API, ORIGIN, api, authFetch, problemText, type Schemas } from '../api/client'
import { BarChart, COLORS } from '../components/chart'
import {
  InsightStatus,
  PeriodPicker,
  SectionNote,
  dayText,
  decimal,
  hoursText,
  orgTimeZone,
  percent,
  periodQuery,
  rangeText,
  signed,
  useInsight,
  usePeriod,
  type Insight,
} from '../components/insight'
import type { Session } from '../auth'
import { db } from '../db/db'
import { clientHref, userNames } from '../db/queries'
import { useLive, useOnline, useSession } from '../hooks'
import { defineMessages, fmt, lang, plural, type Params } from '../i18n'
import '../components/insights.css'

type Funnel = Schemas['Funnel']
type Discipline = Schemas['Discipline']
type Adoption = Schemas['Adoption']
type Diagnosis = Schemas['Diagnosis']
type DataQuality = Schemas['DataQuality']
type Retention = Schemas['Retention']
type Trend = Schemas['Trend']

const m = defineMessages({
  en: {
    title: 'Team',
    managersOnly: 'Team insights are for managers and admins.',
    pipeline: 'Pipeline',
    funnel: 'Funnel',
    funnelChart:
      'Bar chart of the deals that reached each stage and the deals lost at it. The table below has the same numbers.',
    cohort: (p: Params) =>
      `${plural(Number(p.deals), { one: '{n} deal created', other: '{n} deals created' })} · ${plural(Number(p.won), { one: '{n} won', other: '{n} won' })} (${p.amount}) · ${plural(Number(p.lost), { one: '{n} lost', other: '{n} lost' })}`,
    weakest: 'Weakest stage: {name}.',
    weakestWhy: (p: Params) =>
      `${plural(Number(p.n), { one: '{n} deal lost there', other: '{n} deals lost there' })}, worth ${p.amount}.`,
    noWeakest: 'No deal of this period was lost.',
    stage: 'Stage',
    entered: 'Entered',
    toNext: 'To next',
    lost: 'Lost',
    days: 'Days',
    weakestPill: 'weakest',
    funnelNote:
      'To next: the share that went on to the next stage (from the last one: won). Days: the median time in the stage.',
    funnelEmpty: 'No deal was created in this pipeline in this period.',
    discipline: 'Deadlines',
    disciplineEmpty: 'No planned task was due in this period.',
    name: 'Name',
    due: 'Due',
    overdue: 'Overdue',
    late: 'Done late',
    delay: 'Mean delay',
    disciplineChart:
      'Bar chart of the overdue tasks and the tasks done late of each person. The table below has the same numbers.',
    disciplineNote:
      'Overdue: not done and past due. Done late: how many were done after they were due, and their share of the tasks done.',
    adoption: 'Adoption',
    teams: 'Teams',
    team: 'Team',
    goLive: 'Go-live',
    always: 'From the start',
    starts: 'Starts {when}',
    active: 'Active',
    perMemberDay: 'Activities per member-day',
    people: 'People',
    activeDays: 'Active days',
    perDay: 'Activities per day',
    lastSeen: 'Last seen {when}',
    never: 'Never seen',
    cardsCreated: 'Cards created',
    cardsImproved: 'Cards improved',
    few: 'low use',
    fewNote:
      'Highlighted: fewer than one active day a week. Cards: the client cards (companies and contacts) they created, or changed, in the period.',
    adoptionChart: 'Bar chart of the days each person was active in Fieldbook. The table below has the same numbers.',
    quality: 'Client data',
    qualityChart: 'Bar chart of the well-developed client cards of each person. The table below has the same numbers.',
    qualityEmpty: 'Nobody to show in this period.',
    clients: 'Clients',
    completeness: 'Mean completeness',
    wellDeveloped: 'Well developed',
    qualityNote:
      'Well developed: a client card at least {threshold} complete that someone worked on (an activity done) in the period.',
    retention: 'Clients who come back',
    repeatRate: 'Repeat-purchase rate',
    buyers: 'Buyers',
    repeatBuyers: 'Repeat buyers',
    noRepeat: (p: Params) =>
      `Bought once and not again within ${plural(Number(p.days), { one: '{n} day', other: '{n} days' })}`,
    noRepeatCount: (p: Params) => plural(Number(p.n), { one: '{n} client', other: '{n} clients' }),
    worth: 'worth {amount}',
    retentionNote: (p: Params) =>
      `Repeat-purchase rate: the share of the clients who ever bought who bought twice or more. Bought once and not again: clients whose ${plural(Number(p.days), { one: '{n} day', other: '{n} days' })} after a first purchase ended in this period without another one.`,
    winBack: 'To win back',
    winBackEmpty: 'No client to win back in this period.',
    firstPurchase: 'First purchase {when} · {amount}',
    owner: 'Owner: {name}',
    notOnDevice: 'A client on this device opens its card; ask the owner about the others.',
    lostReasons: 'Why deals were lost',
    reasonsChart: 'Bar chart of the value of the deals lost for each reason. The table below has the same numbers.',
    reasonsEmpty: 'No deal was lost with a reason in this period.',
    reason: 'Reason',
    deals: 'Deals',
    value: 'Value',
    diagnosis: 'Where we lose money',
    against: 'Against {range}',
    now: 'This period',
    before: 'before: {value}',
    weakestDeals: 'Deals lost at the weakest stage ({name})',
    weakestAmount: 'Value lost at the weakest stage ({name})',
    lostAmount: 'Value of all lost deals',
    reasonDeals: 'Lost because “{name}”: deals',
    reasonAmount: 'Lost because “{name}”: value',
    clientsLost: 'Clients who bought once and not again',
    clientsAmount: 'What their first purchase was worth',
    overdueTasks: 'Tasks overdue, still open',
    lateTasks: 'Tasks done late',
    worse: 'worse',
    better: 'better',
    print: 'Print',
    printing: 'Preparing…',
    printTitle: 'The diagnosis, to print',
    printFailed: 'Could not prepare the page: {error}',
    printOffline: 'Printing needs a connection.',
  },
  es: {
    title: 'Equipo',
    managersOnly: 'Los datos del equipo son para responsables y administradores.',
    pipeline: 'Embudo de ventas',
    funnel: 'Embudo',
    funnelChart:
      'Gráfico de barras de los negocios que llegaron a cada etapa y los que se perdieron en ella. La tabla de abajo tiene las mismas cifras.',
    cohort: (p: Params) =>
      `${plural(Number(p.deals), { one: '{n} negocio creado', other: '{n} negocios creados' })} · ${plural(Number(p.won), { one: '{n} ganado', other: '{n} ganados' })} (${p.amount}) · ${plural(Number(p.lost), { one: '{n} perdido', other: '{n} perdidos' })}`,
    weakest: 'Etapa más débil: {name}.',
    weakestWhy: (p: Params) =>
      `${plural(Number(p.n), { one: '{n} negocio perdido en ella', other: '{n} negocios perdidos en ella' })}, por valor de ${p.amount}.`,
    noWeakest: 'No se perdió ningún negocio de este periodo.',
    stage: 'Etapa',
    entered: 'Entraron',
    toNext: 'Avanzan',
    lost: 'Perdidos',
    days: 'Días',
    weakestPill: 'más débil',
    funnelNote:
      'Avanzan: la parte que pasó a la etapa siguiente (desde la última: ganados). Días: la mediana del tiempo en la etapa.',
    funnelEmpty: 'No se creó ningún negocio en este embudo en este periodo.',
    discipline: 'Plazos',
    disciplineEmpty: 'Ninguna tarea planificada vencía en este periodo.',
    name: 'Nombre',
    due: 'Vencían',
    overdue: 'Vencidas',
    late: 'Tarde',
    delay: 'Retraso medio',
    disciplineChart:
      'Gráfico de barras de las tareas vencidas y las hechas tarde de cada persona. La tabla de abajo tiene las mismas cifras.',
    disciplineNote:
      'Vencidas: sin hacer y fuera de plazo. Tarde: cuántas se hicieron después de su plazo, y qué parte son de las tareas hechas.',
    adoption: 'Uso de Fieldbook',
    teams: 'Equipos',
    team: 'Equipo',
    goLive: 'Puesta en marcha',
    always: 'Desde el principio',
    starts: 'Empieza el {when}',
    active: 'Activos',
    perMemberDay: 'Actividades por persona y día',
    people: 'Personas',
    activeDays: 'Días activos',
    perDay: 'Actividades por día',
    lastSeen: 'Última vez: {when}',
    never: 'Nunca ha entrado',
    cardsCreated: 'Fichas creadas',
    cardsImproved: 'Fichas mejoradas',
    few: 'poco uso',
    fewNote:
      'Resaltado: menos de un día activo por semana. Fichas: las fichas de cliente (empresas y contactos) que crearon, o cambiaron, en el periodo.',
    adoptionChart:
      'Gráfico de barras de los días que cada persona usó Fieldbook. La tabla de abajo tiene las mismas cifras.',
    quality: 'Datos de clientes',
    qualityChart:
      'Gráfico de barras de las fichas de cliente bien desarrolladas de cada persona. La tabla de abajo tiene las mismas cifras.',
    qualityEmpty: 'No hay nadie que mostrar en este periodo.',
    clients: 'Clientes',
    completeness: 'Completitud media',
    wellDeveloped: 'Bien desarrolladas',
    qualityNote:
      'Bien desarrollada: una ficha de cliente completa al menos en un {threshold} en la que se trabajó (una actividad hecha) en el periodo.',
    retention: 'Clientes que repiten',
    repeatRate: 'Tasa de repetición',
    buyers: 'Clientes que compraron',
    repeatBuyers: 'Repitieron',
    noRepeat: (p: Params) =>
      `Compraron una vez y no repitieron en ${plural(Number(p.days), { one: '{n} día', other: '{n} días' })}`,
    noRepeatCount: (p: Params) => plural(Number(p.n), { one: '{n} cliente', other: '{n} clientes' }),
    worth: 'por valor de {amount}',
    retentionNote: (p: Params) =>
      `Tasa de repetición: de los clientes que alguna vez compraron, la parte que compró dos veces o más. Compraron una vez y no repitieron: clientes cuyos ${plural(Number(p.days), { one: '{n} día', other: '{n} días' })} tras una primera compra terminaron en este periodo sin otra.`,
    winBack: 'Para recuperar',
    winBackEmpty: 'Ningún cliente por recuperar en este periodo.',
    firstPurchase: 'Primera compra: {when} · {amount}',
    owner: 'Responsable: {name}',
    notOnDevice: 'Un cliente que está en este dispositivo abre su ficha; por los demás, pregunta a su responsable.',
    lostReasons: 'Por qué se perdieron negocios',
    reasonsChart:
      'Gráfico de barras del valor de los negocios perdidos por cada motivo. La tabla de abajo tiene las mismas cifras.',
    reasonsEmpty: 'No se perdió ningún negocio con motivo en este periodo.',
    reason: 'Motivo',
    deals: 'Negocios',
    value: 'Valor',
    diagnosis: 'Dónde perdemos dinero',
    against: 'Frente a {range}',
    now: 'Este periodo',
    before: 'antes: {value}',
    weakestDeals: 'Negocios perdidos en la etapa más débil ({name})',
    weakestAmount: 'Valor perdido en la etapa más débil ({name})',
    lostAmount: 'Valor de todos los negocios perdidos',
    reasonDeals: 'Perdidos por «{name}»: negocios',
    reasonAmount: 'Perdidos por «{name}»: valor',
    clientsLost: 'Clientes que compraron una vez y no repitieron',
    clientsAmount: 'Lo que valió su primera compra',
    overdueTasks: 'Tareas vencidas y aún abiertas',
    lateTasks: 'Tareas hechas tarde',
    worse: 'peor',
    better: 'mejor',
    print: 'Imprimir',
    printing: 'Preparando…',
    printTitle: 'El diagnóstico, para imprimir',
    printFailed: 'No se pudo preparar la página: {error}',
    printOffline: 'Para imprimir hace falta conexión.',
  },
})

function FunnelView({ funnel }: { funnel: Funnel }) {
  const money = (n: number) => fmt.money(n, funnel.currency)
  const weakest = funnel.stages.find((s) => s.stage_id === funnel.weakest_stage_id)
  if (!funnel.deals) return <p class="empty">{m('funnelEmpty')}</p>
  return (
    <>
      <p>
        {m('cohort', {
          deals: funnel.deals,
          won: funnel.won,
          amount: money(funnel.won_amount_minor),
          lost: funnel.lost,
        })}
      </p>
      <p class="callout" data-testid="weakest-stage">
        {weakest ? (
          <>
            <strong>{m('weakest', { name: weakest.name })}</strong>{' '}
            {m('weakestWhy', { n: weakest.lost, amount: money(weakest.lost_amount_minor) })}
          </>
        ) : (
          m('noWeakest')
        )}
      </p>
      <BarChart
        testid="funnel-chart"
        label={m('funnelChart')}
        horizontal
        labels={funnel.stages.map((s) => s.name)}
        series={[
          { label: m('entered'), values: funnel.stages.map((s) => s.entered), color: COLORS.brand },
          { label: m('lost'), values: funnel.stages.map((s) => s.lost), color: COLORS.danger },
        ]}
        format={fmt.number}
        whole
      />
      <div class="table-wrap" role="region" aria-labelledby="team-funnel" tabIndex={0}>
        <table class="numbers" data-testid="funnel-table">
          <thead>
            <tr>
              <th scope="col">{m('stage')}</th>
              <th scope="col">{m('entered')}</th>
              <th scope="col">{m('toNext')}</th>
              <th scope="col">{m('lost')}</th>
              <th scope="col">{m('days')}</th>
            </tr>
          </thead>
          <tbody>
            {funnel.stages.map((s) => (
              <tr key={s.stage_id} class={s === weakest ? 'warn-row' : undefined}>
                <th scope="row">
                  {s.name}
                  {s === weakest && <span class="pill warn block-pill">{m('weakestPill')}</span>}
                </th>
                <td>{fmt.number(s.entered)}</td>
                <td>{percent(s.conversion_next)}</td>
                <td>
                  {fmt.number(s.lost)}
                  {s.lost > 0 && <span class="muted block">{money(s.lost_amount_minor)}</span>}
                </td>
                <td>{decimal(s.median_days)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">{m('funnelNote')}</p>
    </>
  )
}

function DisciplineView({ discipline }: { discipline: Discipline }) {
  const people = discipline.people
    .filter((p) => p.due || p.overdue)
    .sort((a, b) => b.overdue - a.overdue || (b.late_share ?? 0) - (a.late_share ?? 0) || a.name.localeCompare(b.name))
  if (!people.length) return <p class="empty">{m('disciplineEmpty')}</p>
  return (
    <>
      <BarChart
        testid="discipline-chart"
        label={m('disciplineChart')}
        horizontal
        labels={people.map((p) => p.name)}
        series={[
          { label: m('overdue'), values: people.map((p) => p.overdue), color: COLORS.danger },
          { label: m('late'), values: people.map((p) => p.done_late), color: COLORS.warn },
        ]}
        format={fmt.number}
        whole
      />
      <div class="table-wrap" role="region" aria-labelledby="team-discipline" tabIndex={0}>
        <table class="numbers" data-testid="discipline-table">
          <thead>
            <tr>
              <th scope="col">{m('name')}</th>
              <th scope="col">{m('due')}</th>
              <th scope="col">{m('overdue')}</th>
              <th scope="col">{m('late')}</th>
              <th scope="col">{m('delay')}</th>
            </tr>
          </thead>
          <tbody>
            {people.map((p) => (
              <tr key={p.user_id} class={p.overdue ? 'warn-row' : undefined}>
                <th scope="row">{p.name}</th>
                <td>{fmt.number(p.due)}</td>
                <td>{fmt.number(p.overdue)}</td>
                <td>
                  {fmt.number(p.done_late)}
                  {p.late_share !== null && <span class="muted block">{percent(p.late_share)}</span>}
                </td>
                <td>{hoursText(p.mean_delay_hours)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">{m('disciplineNote')}</p>
    </>
  )
}

function AdoptionView({ adoption }: { adoption: Adoption }) {
  // Fewer than one active day a week of the period stands out.
  const few = (activeDays: number) => activeDays * 7 < adoption.period.days
  const people = [...adoption.people].sort((a, b) => a.active_days - b.active_days || a.name.localeCompare(b.name))
  const anyFew = people.some((p) => few(p.active_days))
  return (
    <>
      {adoption.teams.length > 0 && (
        <>
          <h3 id="team-teams">{m('teams')}</h3>
          <div class="table-wrap" role="region" aria-labelledby="team-teams" tabIndex={0}>
            <table class="numbers" data-testid="adoption-teams">
              <thead>
                <tr>
                  <th scope="col">{m('team')}</th>
                  <th scope="col">{m('goLive')}</th>
                  <th scope="col">{m('active')}</th>
                  <th scope="col">{m('perMemberDay')}</th>
                </tr>
              </thead>
              <tbody>
                {adoption.teams.map((t) => (
                  <tr key={t.team_id}>
                    <th scope="row">{t.name}</th>
                    <td class="text">
                      {!t.go_live_on
                        ? m('always')
                        : t.is_live
                          ? dayText(t.go_live_on)
                          : m('starts', { when: dayText(t.go_live_on) })}
                    </td>
                    <td>{`${fmt.number(t.active_members)} / ${fmt.number(t.members)}`}</td>
                    <td>{decimal(t.activities_per_member_day)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      <h3 id="team-people">{m('people')}</h3>
      <BarChart
        testid="adoption-chart"
        label={m('adoptionChart')}
        horizontal
        labels={people.map((p) => p.name)}
        series={[
          {
            label: m('activeDays'),
            values: people.map((p) => p.active_days),
            color: people.map((p) => (few(p.active_days) ? COLORS.warn : COLORS.brand)),
          },
        ]}
        format={fmt.number}
        whole
        legend={[
          { label: m('activeDays'), color: COLORS.brand },
          ...(anyFew ? [{ label: m('few'), color: COLORS.warn }] : []),
        ]}
      />
      <div class="table-wrap" role="region" aria-labelledby="team-people" tabIndex={0}>
        <table class="numbers" data-testid="adoption-people">
          <thead>
            <tr>
              <th scope="col">{m('name')}</th>
              <th scope="col">{m('activeDays')}</th>
              <th scope="col">{m('perDay')}</th>
              <th scope="col">{m('cardsCreated')}</th>
              <th scope="col">{m('cardsImproved')}</th>
            </tr>
          </thead>
          <tbody>
            {people.map((p) => (
              <tr key={p.user_id} class={few(p.active_days) ? 'warn-row' : undefined}>
                <th scope="row">
                  {p.name}
                  <span class="muted block seen">
                    {p.last_seen_at ? m('lastSeen', { when: fmt.relative(p.last_seen_at) }) : m('never')}
                  </span>
                  {few(p.active_days) && <span class="pill warn block-pill">{m('few')}</span>}
                </th>
                <td>{fmt.number(p.active_days)}</td>
                <td>{decimal(p.activities_per_day)}</td>
                <td>{fmt.number(p.cards_created)}</td>
                <td>{fmt.number(p.cards_improved)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">{m('fewNote')}</p>
    </>
  )
}

function QualityView({ quality }: { quality: DataQuality }) {
  const people = [...quality.people].sort(
    (a, b) =>
      b.well_developed - a.well_developed ||
      (b.mean_completeness ?? -1) - (a.mean_completeness ?? -1) ||
      a.name.localeCompare(b.name),
  )
  if (!people.length) return <p class="empty">{m('qualityEmpty')}</p>
  // Completeness comes in % (66.67); shown whole, as the client card rounds it.
  const completeness = (n: number | null) => percent(n === null ? null : n / 100)
  return (
    <>
      <BarChart
        testid="quality-chart"
        label={m('qualityChart')}
        horizontal
        labels={people.map((p) => p.name)}
        series={[{ label: m('wellDeveloped'), values: people.map((p) => p.well_developed), color: COLORS.brand }]}
        format={fmt.number}
        whole
      />
      <div class="table-wrap" role="region" aria-labelledby="team-quality" tabIndex={0}>
        <table class="numbers" data-testid="quality-table">
          <thead>
            <tr>
              <th scope="col">{m('name')}</th>
              <th scope="col">{m('clients')}</th>
              <th scope="col">{m('completeness')}</th>
              <th scope="col">{m('wellDeveloped')}</th>
            </tr>
          </thead>
          <tbody>
            {people.map((p) => (
              <tr key={p.user_id}>
                <th scope="row">{p.name}</th>
                <td>{fmt.number(p.clients)}</td>
                <td>{completeness(p.mean_completeness)}</td>
                <td>{fmt.number(p.well_developed)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">{m('qualityNote', { threshold: percent(quality.threshold / 100) })}</p>
    </>
  )
}

const isClientKind = (kind: string): kind is 'company' | 'contact' => kind === 'company' || kind === 'contact'

/** Which of these clients are on the device (their cards open offline; a manager's phone holds only their own and
 *  shared clients, not the team's), and the names of their owners. */
function useLapsed(clients: Retention['no_repeat_clients']) {
  const ids = clients.map((c) => c.id)
  return useLive(async () => {
    const [companies, contacts, names] = await Promise.all([
      db.company.bulkGet(ids),
      db.contact.bulkGet(ids),
      userNames(),
    ])
    const here = new Set([...companies, ...contacts].flatMap((record) => (record ? [record.id] : [])))
    return { here, names }
  }, [ids.join()])
}

function RetentionView({ retention }: { retention: Retention }) {
  const money = (n: number) => fmt.money(n, retention.currency)
  const reasons = retention.lost_reasons
  const days = retention.repeat_days
  const lapsed = useLapsed(retention.no_repeat_clients)
  const opens = (id: string) => lapsed?.here.has(id) ?? false
  return (
    <>
      <dl class="figures card" data-testid="retention-figures">
        <div>
          <dt>{m('repeatRate')}</dt>
          <dd>{percent(retention.repeat_rate)}</dd>
        </div>
        <div>
          <dt>{m('buyers')}</dt>
          <dd>{fmt.number(retention.buyers)}</dd>
        </div>
        <div>
          <dt>{m('repeatBuyers')}</dt>
          <dd>{fmt.number(retention.repeat_buyers)}</dd>
        </div>
        <div class="wide">
          <dt>{m('noRepeat', { days })}</dt>
          <dd>
            {m('noRepeatCount', { n: retention.no_repeat })}
            <span class="muted"> · {m('worth', { amount: money(retention.no_repeat_amount_minor) })}</span>
          </dd>
        </div>
      </dl>
      <p class="muted">{m('retentionNote', { days })}</p>

      <h3 id="team-win-back">{m('winBack')}</h3>
      {retention.no_repeat_clients.length ? (
        <ul class="list card" data-testid="win-back">
          {retention.no_repeat_clients.map((client) => {
            const owner = lapsed?.names.get(client.owner_id)
            const line = (
              <span class="grow">
                <span class="title">{client.name}</span>
                <span class="sub">
                  {m('firstPurchase', { when: fmt.date(client.first_won_at), amount: money(client.amount_minor) })}
                </span>
                {owner && <span class="sub">{m('owner', { name: owner })}</span>}
              </span>
            )
            return (
              <li key={client.id}>
                {isClientKind(client.kind) && opens(client.id) ? (
                  <a class="item" href={clientHref(client.kind, client.id)}>
                    {line}
                  </a>
                ) : (
                  <div class="item">{line}</div>
                )}
              </li>
            )
          })}
        </ul>
      ) : (
        <p class="empty">{m('winBackEmpty')}</p>
      )}
      {lapsed && retention.no_repeat_clients.some((c) => !opens(c.id)) && <p class="muted">{m('notOnDevice')}</p>}

      <h3 id="team-reasons">{m('lostReasons')}</h3>
      {reasons.length ? (
        <>
          <BarChart
            testid="reasons-chart"
            label={m('reasonsChart')}
            horizontal
            labels={reasons.map((r) => r.name)}
            series={[{ label: m('value'), values: reasons.map((r) => r.amount_minor), color: COLORS.danger }]}
            format={money}
            axis={(n) => fmt.money(n, retention.currency, true)}
          />
          <div class="table-wrap" role="region" aria-labelledby="team-reasons" tabIndex={0}>
            <table class="numbers" data-testid="reasons-table">
              <thead>
                <tr>
                  <th scope="col">{m('reason')}</th>
                  <th scope="col">{m('deals')}</th>
                  <th scope="col">{m('value')}</th>
                </tr>
              </thead>
              <tbody>
                {reasons.map((r) => (
                  <tr key={r.lost_reason_id}>
                    <th scope="row">{r.name}</th>
                    <td>{fmt.number(r.deals)}</td>
                    <td>{money(r.amount_minor)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : (
        <p class="empty">{m('reasonsEmpty')}</p>
      )}
    </>
  )
}

interface Finding {
  label: string
  trend: Trend
  money?: boolean
}

/** The diagnosis's findings in the order of its printed page. */
function findings(d: Diagnosis): Finding[] {
  const list: Finding[] = []
  if (d.weakest_stage) {
    const name = d.weakest_stage.name
    list.push({ label: m('weakestDeals', { name }), trend: d.weakest_stage.lost })
    list.push({ label: m('weakestAmount', { name }), trend: d.weakest_stage.lost_amount_minor, money: true })
  }
  list.push({ label: m('lostAmount'), trend: d.lost_amount_minor, money: true })
  for (const r of d.top_lost_reasons) {
    list.push({ label: m('reasonDeals', { name: r.name }), trend: r.deals })
    list.push({ label: m('reasonAmount', { name: r.name }), trend: r.amount_minor, money: true })
  }
  list.push({ label: m('clientsLost'), trend: d.clients_lost_after_first_purchase })
  list.push({ label: m('clientsAmount'), trend: d.clients_lost_amount_minor, money: true })
  list.push({ label: m('overdueTasks'), trend: d.overdue_tasks })
  list.push({ label: m('lateTasks'), trend: d.tasks_done_late })
  return list
}

/** Fetches the printable page with the bearer token (a plain link could not send it) and prints it from a hidden
 *  frame. The frame runs no script (the page has none) and stays until the next print, when the dialog is done. */
async function printDiagnosis(query: Record<string, string>): Promise<void> {
  const url = new URL(`${API}/insights/diagnosis/print`, ORIGIN)
  url.search = new URLSearchParams({ ...query, lang }).toString()
  const response = await authFetch(new Request(url))
  if (!response.ok) {
    const problem: unknown = await response.json().catch(() => response.statusText)
    throw new Error(problemText(problem))
  }
  const html = await response.text()
  document.getElementById('print-frame')?.remove()
  const frame = document.createElement('iframe')
  frame.id = 'print-frame'
  frame.className = 'print-frame'
  frame.title = m('printTitle')
  frame.setAttribute('sandbox', 'allow-modals allow-same-origin')
  frame.setAttribute('data-testid', 'print-frame')
  frame.addEventListener('load', () => frame.contentWindow?.print(), { once: true })
  frame.srcdoc = html
  document.body.append(frame)
}

function DiagnosisView({
  diagnosis,
  query,
  online,
}: {
  diagnosis: Diagnosis
  query: Record<string, string>
  online: boolean
}) {
  const [printing, setPrinting] = useState(false)
  const [failed, setFailed] = useState('')
  useEffect(() => () => document.getElementById('print-frame')?.remove(), [])
  const money = (n: number) => fmt.money(n, diagnosis.currency)
  const print = () => {
    setPrinting(true)
    setFailed('')
    printDiagnosis(query)
      .catch((e: unknown) => setFailed(e instanceof Error ? e.message : String(e)))
      .finally(() => setPrinting(false))
  }
  return (
    <>
      <p class="muted">{m('against', { range: rangeText(diagnosis.previous_period) })}</p>
      <ul class="findings card" data-testid="findings">
        {findings(diagnosis).map(({ label, trend, money: isMoney }) => {
          const show = isMoney ? money : fmt.number
          // Every finding is a loss: more than before is worse.
          const verdict = trend.change > 0 ? 'worse' : trend.change < 0 ? 'better' : ''
          return (
            <li>
              <p>{label}</p>
              <p class="finding">
                <strong>{show(trend.value)}</strong>
                <span class="muted">{m('before', { value: show(trend.previous) })}</span>
                <span class={`change ${verdict}`}>
                  {signed(trend.change, show)}
                  {verdict && <span class="visually-hidden"> ({m(verdict)})</span>}
                </span>
              </p>
            </li>
          )
        })}
      </ul>
      <div class="actions">
        <button type="button" class="primary" onClick={print} disabled={printing || !online}>
          {printing ? m('printing') : m('print')}
        </button>
      </div>
      {!online && <p class="muted">{m('printOffline')}</p>}
      {failed && <p class="danger-text">{m('printFailed', { error: failed })}</p>}
    </>
  )
}

export function Team() {
  const session = useSession()
  const role = session?.user.role
  if (session && (role === 'manager' || role === 'admin')) return <TeamInsights session={session} />
  return (
    <div class="screen">
      <h1>{m('title')}</h1>
      {session && <p class="empty">{m('managersOnly')}</p>}
    </div>
  )
}

function TeamInsights({ session }: { session: Session }) {
  const online = useOnline()
  const [days, setDays] = usePeriod()
  const [pipelineId, setPipelineId] = useState('')
  const pipelines = useLive(() => db.pipeline.toArray()) ?? []
  // The days the server means by "the last N days": the organisation's, wherever the phone is.
  const query = periodQuery(days, orgTimeZone(session))
  const asked = [query.from, query.to]
  const funnel: Insight<Funnel> = useInsight(
    `team:funnel:${pipelineId || 'default'}:${days}`,
    () => api.GET('/api/v1/insights/funnel', { params: { query: { ...query, pipeline_id: pipelineId || undefined } } }),
    online,
    asked,
  )
  const discipline: Insight<Discipline> = useInsight(
    `team:discipline:${days}`,
    () => api.GET('/api/v1/insights/discipline', { params: { query } }),
    online,
    asked,
  )
  const adoption: Insight<Adoption> = useInsight(
    `team:adoption:${days}`,
    () => api.GET('/api/v1/insights/adoption', { params: { query } }),
    online,
    asked,
  )
  const retention: Insight<Retention> = useInsight(
    `team:retention:${days}`,
    () => api.GET('/api/v1/insights/retention', { params: { query } }),
    online,
    asked,
  )
  const quality: Insight<DataQuality> = useInsight(
    `team:data-quality:${days}`,
    () => api.GET('/api/v1/insights/data-quality', { params: { query } }),
    online,
    asked,
  )
  const diagnosis: Insight<Diagnosis> = useInsight(
    `team:diagnosis:${days}`,
    () => api.GET('/api/v1/insights/diagnosis', { params: { query } }),
    online,
    asked,
  )

  const period =
    funnel.data?.period ??
    diagnosis.data?.period ??
    retention.data?.period ??
    discipline.data?.period ??
    quality.data?.period ??
    adoption.data?.period
  const shownPipeline = funnel.data?.pipeline_id ?? pipelineId

  return (
    <div class="screen insights">
      <h1>{m('title')}</h1>
      <PeriodPicker days={days} onChange={setDays} />
      {period && <p class="muted">{rangeText(period)}</p>}
      <InsightStatus insights={[funnel, diagnosis, retention, discipline, quality, adoption]} online={online} />

      <section aria-labelledby="team-funnel">
        <h2 id="team-funnel">{m('funnel')}</h2>
        {pipelines.length > 1 && (
          <label class="field">
            <span>{m('pipeline')}</span>
            <select value={shownPipeline} onChange={(e) => setPipelineId(e.currentTarget.value)}>
              {pipelines.map((p) => (
                <option value={p.id}>{p.name}</option>
              ))}
            </select>
          </label>
        )}
        {pipelines.length <= 1 && funnel.data && <p class="muted">{funnel.data.pipeline_name}</p>}
        <SectionNote insight={funnel} online={online} />
        {funnel.data && <FunnelView funnel={funnel.data} />}
      </section>

      <section aria-labelledby="team-diagnosis">
        <h2 id="team-diagnosis">{m('diagnosis')}</h2>
        <SectionNote insight={diagnosis} online={online} />
        {diagnosis.data && <DiagnosisView diagnosis={diagnosis.data} query={query} online={online} />}
      </section>

      <section aria-labelledby="team-retention">
        <h2 id="team-retention">{m('retention')}</h2>
        <SectionNote insight={retention} online={online} />
        {retention.data && <RetentionView retention={retention.data} />}
      </section>

      <section aria-labelledby="team-discipline">
        <h2 id="team-discipline">{m('discipline')}</h2>
        <SectionNote insight={discipline} online={online} />
        {discipline.data && <DisciplineView discipline={discipline.data} />}
      </section>

      <section aria-labelledby="team-quality">
        <h2 id="team-quality">{m('quality')}</h2>
        <SectionNote insight={quality} online={online} />
        {quality.data && <QualityView quality={quality.data} />}
      </section>

      <section aria-labelledby="team-adoption">
        <h2 id="team-adoption">{m('adoption')}</h2>
        <SectionNote insight={adoption} online={online} />
        {adoption.data && <AdoptionView adoption={adoption.data} />}
      </section>
    </div>
  )
}
