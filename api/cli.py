"""The `fieldbook` command: serve, migrate, create users, load the demo organisation or benchmark data."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api import demo as demo_data
from api import hooks
from api.auth.models import Organization, Role
from api.auth.principals import Principal
from api.auth.schemas import UserCreate
from api.auth.service import create_organization, create_user
from api.benchdata.plans import Scale
from api.core.db import Database, commit, make_engine, pool_options
from api.core.errors import AppError
from api.imports import cli as imports_cli
from api.settings import Settings, get_settings

T = TypeVar("T")

app = typer.Typer(help="Fieldbook, a mobile-first CRM.", no_args_is_help=True, add_completion=False)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@app.callback()
def _main() -> None:
    # Changes made from the command line count towards goals and reach webhooks, as the API's do.
    hooks.install()


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        typer.secho(f"Configuration error: {exc.errors()[0]['msg']}", fg="red", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (use 1 with SQLite).")] = 1,
) -> None:
    """Serve the API (and the app, once built) over HTTP."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level=settings.log_level,
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Deliver what is due, then exit (for cron or a one-off drain).")] = False,
) -> None:
    """Deliver webhooks from the outbox, until stopped (Ctrl-C or SIGTERM). Run as many as needed on PostgreSQL."""
    import signal

    from api.webhooks import worker as webhooks

    settings = _settings()

    async def main() -> None:
        engine = make_engine(settings.database_url, **pool_options(settings))
        stop, wake = asyncio.Event(), asyncio.Event()

        def finish() -> None:
            stop.set()
            wake.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, finish)
        try:
            await webhooks.run(Database(engine), settings, stop=stop, wake=wake, once=once)
        finally:
            await engine.dispose()

    typer.echo("Delivering webhooks" + (" that are due." if once else "; Ctrl-C stops."), err=True)
    asyncio.run(main())


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (the app's API types are generated from it: `make api-types`)."""
    import json

    from api.main import create_app

    typer.echo(json.dumps(create_app(_settings()).openapi(), indent=1, sort_keys=True))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run on every start)."""
    from api.core.migrate import upgrade

    upgrade(_settings().database_url)
    typer.echo("Database is up to date.")


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one write transaction on the configured database."""
    settings = _settings()

    async def main() -> T:
        engine = make_engine(settings.database_url, null_pool=True)
        try:
            async with Database(engine).writer() as session:
                result = await work(session)
                await commit(session, None)
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        typer.secho(f"{exc.title}: {exc.detail}", fg="red", err=True)
        for item in exc.errors:
            typer.secho(f"  {item.get('pointer') or item.get('parameter')}: {item['detail']}", fg="red", err=True)
        raise typer.Exit(1) from exc


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Sign-in e-mail.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    org: Annotated[str, typer.Option(help="Organisation name; created when no organisation has it.")],
    role: Annotated[Role, typer.Option(help="Role in the organisation.")] = Role.admin,
    locale: Annotated[str, typer.Option(help="A new organisation's language, e.g. es-ES.")] = "es-ES",
    currency: Annotated[str, typer.Option(help="A new organisation's currency (ISO 4217).")] = "EUR",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 10 characters; not a common password, nor one made of your name or e-mail.",
        ),
    ] = "",
) -> None:
    """Create a user (the first administrator of a new organisation, typically)."""
    try:
        data = UserCreate(email=email, name=name, role=role, password=password)
    except ValidationError as exc:
        for err in exc.errors():
            typer.secho(f"{'.'.join(map(str, err['loc']))}: {err['msg']}", fg="red", err=True)
        raise typer.Exit(1) from exc

    async def work(session: AsyncSession) -> str:
        organization = (await session.scalars(select(Organization).where(col(Organization.name) == org))).first()
        if organization is None:
            settings = {"locale": locale, "currency": currency.upper()}
            organization = await create_organization(session, name=org, settings=settings)
        user, _ = await create_user(session=session, principal=Principal.system(organization.id), data=data)
        return f"Created {user.role} {user.email} in {organization.name}."

    typer.echo(_in_transaction(work))


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed on the same day gives the same data.")] = (
        demo_data.DEFAULT_SEED
    ),
    scale: Annotated[
        float, typer.Option(min=0.001, max=10, help="Size relative to the full demo (2,000 companies, 3,000 deals).")
    ] = 1.0,
) -> None:
    """Load the demo organisation (idempotent) and print how to sign in."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Progress goes to stderr: stdout keeps only the sign-in line, the same on every run.
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bars:

        def phase(name: str, total: int) -> Callable[[int], object]:
            task = bars.add_task(name, total=total)
            return lambda done: bars.advance(task, done)

        login = _in_transaction(lambda session: demo_data.load(session, seed=seed, scale=scale, progress=phase))
    typer.echo(f"Demo organisation ready. Sign in as {login.email} with password {login.password}")


@app.command("bench-data")
def bench_data(
    scale: Annotated[
        Scale,
        typer.Option(
            help="small: 50 reps, 200k activities (SQLite or PostgreSQL); large: 200 reps, 2M activities and the "
            "scale-curve organisations (PostgreSQL)."
        ),
    ] = "small",
    database_url: Annotated[
        str | None, typer.Option(help="Where to load it (made for it). Default: FIELDBOOK_DATABASE_URL.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed at the same moment gives the same rows.")] = 7,
    replace: Annotated[bool, typer.Option(help="Drop a database that holds organisations, and load afresh.")] = False,
    if_changed: Annotated[
        bool,
        typer.Option(
            help="Load only if the database does not hold this data set already (same generator, scale, seed)."
        ),
    ] = False,
) -> None:
    """Load a benchmark data set into a database of its own (api/benchdata) and print how to sign in."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from api.benchdata import dataset
    from api.benchdata.plans import PASSWORD

    url = database_url or _settings().database_url
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bars:

        def phase(name: str, total: int) -> Callable[[int], object]:
            task = bars.add_task(name, total=total)
            return lambda done: bars.advance(task, done)

        try:
            result = asyncio.run(
                dataset.load(
                    url,
                    scale=scale,
                    seed=seed,
                    replace=replace,
                    if_changed=if_changed,
                    progress=phase,
                )
            )
        except dataset.BenchDataError as exc:
            typer.secho(str(exc), fg="red", err=True)
            raise typer.Exit(1) from exc
    meta = result.meta
    if result.skipped:
        typer.echo(f"The database holds this data set already (loaded {meta.get('loaded_at')}): kept as it is.")
    else:
        rows = ", ".join(f"{table} {count:,}" for table, count in meta["rows"].items())
        typer.echo(f"Loaded in {meta['wall_s']:.0f} s: {rows}.", err=True)
    for name, emails in result.logins:
        typer.echo(f"{name}: sign in as {', '.join(emails)}")
    typer.echo(f"Every user's password is {PASSWORD}")


app.command("import")(imports_cli.run)
