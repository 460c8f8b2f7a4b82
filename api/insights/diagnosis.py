"""Where the company loses money: the weakest stage, why deals are lost, clients who bought once and never again,
and missed deadlines, each against the period before; as JSON and as a printable page in English or Spanish."""

from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from sqlalchemy.ext.asyncio import AsyncSession

from api.insights import sales, team
from api.insights.schemas import Diagnosis, Funnel, ReasonChange, Trend, WeakestStage
from api.insights.scope import Scope

TOP_REASONS = 3


def trend(value: float, previous: float) -> Trend:
    return Trend(value=value, previous=previous, change=value - previous)


def _weakest(now: Funnel, before: Funnel) -> WeakestStage | None:
    """The stage where this period lost the most value, against what it lost there before; when this period lost
    nothing, last period's weakest stage (now at 0: the improvement is the finding)."""
    stage_id = now.weakest_stage_id or before.weakest_stage_id
    if stage_id is None:
        return None
    this = next((s for s in now.stages if s.stage_id == stage_id), None)
    then = next((s for s in before.stages if s.stage_id == stage_id), None)
    named = this or then
    assert named is not None
    return WeakestStage(
        stage_id=stage_id,
        name=named.name,
        lost=trend(this.lost if this else 0, then.lost if then else 0),
        lost_amount_minor=trend(this.lost_amount_minor if this else 0, then.lost_amount_minor if then else 0),
    )


async def diagnosis(session: AsyncSession, scope: Scope, *, repeat_days: int) -> Diagnosis:
    before = scope.during(scope.period.previous())
    funnel_now = await sales.funnel(session, scope)
    kept_now = await sales.retention(session, scope, repeat_days=repeat_days)
    kept_before = await sales.retention(session, before, repeat_days=repeat_days)
    previous_reasons = {r.lost_reason_id: r for r in kept_before.lost_reasons}
    top = []
    for r in kept_now.lost_reasons[:TOP_REASONS]:
        then = previous_reasons.get(r.lost_reason_id)
        top.append(
            ReasonChange(
                lost_reason_id=r.lost_reason_id,
                name=r.name,
                deals=trend(r.deals, then.deals if then else 0),
                amount_minor=trend(r.amount_minor, then.amount_minor if then else 0),
            )
        )
    due_now, due_before = await team.deadlines(session, scope), await team.deadlines(session, before)
    return Diagnosis(
        **sales.header(scope),
        previous_period=sales.period_read(before.period),
        pipeline_id=funnel_now.pipeline_id,
        weakest_stage=_weakest(funnel_now, await sales.funnel(session, before)),
        lost_amount_minor=trend(
            sum(r.amount_minor for r in kept_now.lost_reasons), sum(r.amount_minor for r in kept_before.lost_reasons)
        ),
        top_lost_reasons=top,
        clients_lost_after_first_purchase=trend(kept_now.no_repeat, kept_before.no_repeat),
        clients_lost_amount_minor=trend(kept_now.no_repeat_amount_minor, kept_before.no_repeat_amount_minor),
        overdue_tasks=trend(sum(d.overdue for d in due_now.values()), sum(d.overdue for d in due_before.values())),
        tasks_done_late=trend(sum(d.late for d in due_now.values()), sum(d.late for d in due_before.values())),
    )


# The printable page

TEXTS = {
    "en": {
        "title": "Where we lose money",
        "period": "{first} \u2013 {last}, compared with {pfirst} \u2013 {plast}",
        "finding": "Finding",
        "now": "This period",
        "before": "Before",
        "change": "Change",
        "weakest": "Weakest stage: {name}",
        "weakest_deals": "Deals lost at this stage",
        "weakest_amount": "Value lost at this stage",
        "no_weakest": "No deal was lost in this period's pipeline.",
        "lost_amount": "Value of all lost deals",
        "reasons": "Top reasons deals are lost",
        "reason_deals": "{name}: deals",
        "reason_amount": "{name}: value",
        "no_reasons": "No deal was lost in this period.",
        "retention": "Clients who bought once and not again within {days} days",
        "clients_lost": "Clients",
        "clients_amount": "Their first purchase",
        "deadlines": "Missed deadlines",
        "overdue": "Tasks overdue, still open",
        "late": "Tasks done late",
        "footer": "Amounts in {currency}. Fieldbook computed these numbers on {today}.",
        "worse": "worse",
        "better": "better",
    },
    "es": {
        "title": "Dónde perdemos dinero",
        "period": "{first} \u2013 {last}, frente a {pfirst} \u2013 {plast}",
        "finding": "Hallazgo",
        "now": "Este periodo",
        "before": "Antes",
        "change": "Cambio",
        "weakest": "Etapa más débil: {name}",
        "weakest_deals": "Negocios perdidos en esta etapa",
        "weakest_amount": "Valor perdido en esta etapa",
        "no_weakest": "No se perdió ningún negocio del embudo en este periodo.",
        "lost_amount": "Valor de todos los negocios perdidos",
        "reasons": "Principales motivos de pérdida",
        "reason_deals": "{name}: negocios",
        "reason_amount": "{name}: valor",
        "no_reasons": "No se perdió ningún negocio en este periodo.",
        "retention": "Clientes que compraron una vez y no repitieron en {days} días",
        "clients_lost": "Clientes",
        "clients_amount": "Su primera compra",
        "deadlines": "Plazos incumplidos",
        "overdue": "Tareas vencidas y aún abiertas",
        "late": "Tareas hechas tarde",
        "footer": "Importes en {currency}. Fieldbook calculó estas cifras el {today}.",
        "worse": "peor",
        "better": "mejor",
    },
}
LOCALES = {"en": "en_US", "es": "es_ES"}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def language(requested: str | None, accept_language: str | None) -> str:
    """`lang` when given, else the browser's most preferred language we speak (its `q` weights), else English."""
    if requested in TEXTS:
        return requested
    ranked: list[tuple[float, int, str]] = []
    for order, part in enumerate((accept_language or "").split(",")):
        code, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-weight, order, code.strip().lower()[:2]))
    return next((code for weight, _, code in sorted(ranked) if code in TEXTS and weight < 0), "en")


def render(report: Diagnosis, *, lang: str, repeat_days: int, today: Any) -> str:
    locale = LOCALES[lang]
    texts = TEXTS[lang]
    scale = 10 ** get_currency_precision(report.currency)

    def money(minor: float) -> str:
        return format_currency(minor / scale, report.currency, locale=locale)

    def number(value: float) -> str:
        return format_decimal(value, locale=locale)

    def signed(value: float, as_money: bool) -> str:
        text = money(abs(value)) if as_money else number(abs(value))
        return f"+{text}" if value > 0 else f"\u2212{text}" if value < 0 else text

    def row(label: str, t: Trend, *, as_money: bool = False) -> dict[str, str]:
        show = money if as_money else number
        relative = format_percent(t.change / t.previous, locale=locale) if t.previous else ""
        return {
            "label": label,
            "now": show(t.value),
            "before": show(t.previous),
            "change": signed(t.change, as_money) + (f" ({relative})" if relative else ""),
            # Every finding is a loss: more is worse. Said in words too, for a print without colour.
            "worse": "worse" if t.change > 0 else "better" if t.change < 0 else "",
            "verdict": texts["worse"] if t.change > 0 else texts["better"] if t.change < 0 else "",
        }

    sections: list[dict[str, Any]] = []
    if report.weakest_stage:
        w = report.weakest_stage
        sections.append(
            {
                "title": texts["weakest"].format(name=w.name),
                "rows": [
                    row(texts["weakest_deals"], w.lost),
                    row(texts["weakest_amount"], w.lost_amount_minor, as_money=True),
                ],
                "empty": "",
            }
        )
    else:
        sections.append({"title": texts["weakest"].format(name="—"), "rows": [], "empty": texts["no_weakest"]})
    reason_rows = [row(texts["lost_amount"], report.lost_amount_minor, as_money=True)]
    for r in report.top_lost_reasons:
        reason_rows.append(row(texts["reason_deals"].format(name=r.name), r.deals))
        reason_rows.append(row(texts["reason_amount"].format(name=r.name), r.amount_minor, as_money=True))
    sections.append(
        {
            "title": texts["reasons"],
            "rows": reason_rows,
            "empty": "" if report.top_lost_reasons else texts["no_reasons"],
        }
    )
    sections.append(
        {
            "title": texts["retention"].format(days=number(repeat_days)),
            "rows": [
                row(texts["clients_lost"], report.clients_lost_after_first_purchase),
                row(texts["clients_amount"], report.clients_lost_amount_minor, as_money=True),
            ],
            "empty": "",
        }
    )
    sections.append(
        {
            "title": texts["deadlines"],
            "rows": [row(texts["overdue"], report.overdue_tasks), row(texts["late"], report.tasks_done_late)],
            "empty": "",
        }
    )

    def day(value: Any) -> str:
        return format_date(value, format="medium", locale=locale)

    return _templates.get_template("diagnosis.html").render(
        lang=lang,
        texts=texts,
        period=texts["period"].format(
            first=day(report.period.first_day),
            last=day(report.period.last_day),
            pfirst=day(report.previous_period.first_day),
            plast=day(report.previous_period.last_day),
        ),
        sections=sections,
        footer=texts["footer"].format(currency=report.currency, today=day(today)),
    )
