"""The ``loopwatch`` command: serve, demo, keys (and the Kafka worker once configured)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loopwatch._logs import configure_logging
from schemas.settings import Settings

if TYPE_CHECKING:
    from streams.storage import Storage

app = typer.Typer(help="Monitoring and feedback for LLM and ML models in production.", no_args_is_help=True)


class KeyScopeOption(StrEnum):
    """``streams.keys.KeyScope`` as typer's choices."""

    ingest = "ingest"
    read = "read"
    admin = "admin"
    review = "review"


keys_app = typer.Typer(help="Project API keys (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()


def _settings(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings)
    if settings.malloc_tuning:  # before chDB loads and its threads start
        from streams.allocator import tune_malloc

        tune_malloc()
    return settings


def _refuse_if_held(settings: Settings) -> None:
    """A data dir another process serves: one line and exit code 1, not a start-up traceback."""
    from streams.storage import StorageLockedError, refuse_if_held

    try:
        refuse_if_held(settings)
    except StorageLockedError as exc:
        console.print(f"[red]{escape(str(exc))}: stop it, or set another LOOPWATCH_DATA_DIR[/red]", soft_wrap=True)
        raise typer.Exit(1) from exc


def _announcer(settings: Settings, host: str, port: int, what: str) -> Callable[[], None]:
    """What a person needs once the server listens: where the API, the dashboard and the docs are."""
    from loopwatch._server import browsable

    def announce() -> None:
        url = browsable(host, port)
        data = escape(str(settings.data_dir))
        console.print(f"loopwatch {what} on [bold]{url}[/bold] (data: {data}); Ctrl-C stops it", soft_wrap=True)
        console.print(
            f"  dashboard  {url}/ui  (sign in with a key from `loopwatch keys create --project NAME`)", soft_wrap=True
        )
        console.print(f"  API docs   {url}/docs", soft_wrap=True)

    return announce


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
) -> None:
    """Run the API with the processors in this process (embedded), or the API alone in Kafka mode."""
    from loopwatch._server import serve_forever
    from loopwatch.process import serving_app

    settings = _settings()
    _refuse_if_held(settings)
    what = "API (Kafka mode)" if settings.kafka_bootstrap else "serving"
    serve_forever(serving_app(settings), host, port, _announcer(settings, host, port, what))


@app.command()
def worker(
    app_id: Annotated[str | None, typer.Option(help="consumer group / faust app id")] = None,
) -> None:
    """Consume the Kafka topics and write to ClickHouse (needs LOOPWATCH_KAFKA_BOOTSTRAP)."""
    import asyncio

    from loopwatch.process import run_worker

    settings = _settings()
    if not settings.kafka_bootstrap:
        console.print("[red]loopwatch worker needs LOOPWATCH_KAFKA_BOOTSTRAP[/red]")
        raise typer.Exit(2)
    _refuse_if_held(settings)
    asyncio.run(run_worker(settings, app_id=app_id))


@app.command()
def up(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
) -> None:
    """API and Kafka worker in one process: distributed transport with an embedded chDB."""
    from loopwatch._server import serve_forever
    from loopwatch.process import serving_app

    settings = _settings()
    if not settings.kafka_bootstrap:
        console.print("[red]loopwatch up needs LOOPWATCH_KAFKA_BOOTSTRAP (use `serve` without Kafka)[/red]")
        raise typer.Exit(2)
    _refuse_if_held(settings)
    app_ = serving_app(settings, with_worker=True)
    serve_forever(app_, host, port, _announcer(settings, host, port, "API and Kafka worker"))


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="inference events to stream")] = 6_000,
    batch: Annotated[int, typer.Option(help="events per HTTP request")] = 200,
    data_dir: Annotated[Path | None, typer.Option(help="keep the demo's data here (default: a temp dir)")] = None,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="keep serving the dashboard until Ctrl-C (only on a terminal)")
    ] = True,
) -> None:
    """Start loopwatch, stream synthetic LLM traffic and late feedback through the API, read it back,
    then print the dashboard URL (and keep serving it until Ctrl-C when run from a terminal)."""
    from loopwatch.demo.run import run_demo

    raise typer.Exit(run_demo(console, events=events, batch=batch, data_dir=data_dir, serve=serve))


def _storage(settings: Settings, over_http: str) -> Storage:
    """Open and migrate storage for a keys command; a database held by a running server is one line
    saying what to do instead (``over_http``: the endpoint that does the same), exit code 1."""
    from streams.storage import Storage, StorageLockedError

    try:
        storage = Storage(settings)
        storage.migrate()
    except StorageLockedError as exc:
        advice = f"{exc}: stop that server, or use `{over_http}` with the admin key"
        console.print(f"[red]{escape(advice)}[/red]", soft_wrap=True)
        raise typer.Exit(1) from exc
    return storage


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="the project the key may read and write")],
    name: Annotated[str, typer.Option(help="a label, e.g. the app using it")] = "",
    scope: Annotated[
        KeyScopeOption | None,
        typer.Option(
            help="ingest: only sends events (safe inside an app); read: dashboards and queries; "
            "admin: manages the project and its keys; review: reviews queue items (name the key after the "
            "reviewer); none: full project access"
        ),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="the key stops working after this long, e.g. 30d, 12h (default: never)")
    ] = None,
) -> None:
    """Create a key and print its token once."""
    from pydantic import TypeAdapter, ValidationError

    from schemas.events import ProjectName
    from streams.keys import KeyStore

    try:
        TypeAdapter(ProjectName).validate_python(project)
    except ValidationError as exc:
        console.print(f"[red]invalid project name {project!r}: {exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(2) from exc
    lifetime = _duration("--expires-in", expires_in) if expires_in else None
    storage = _storage(_settings(), "POST /v1/keys")
    store = KeyStore(storage)
    expires_at = store.clock() + lifetime if lifetime else None
    new = store.create(project, name, scope.value if scope else None, expires_at=expires_at)
    _audit(storage, "key.create", project, new.key.key_id)
    until = f", expires {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
    console.print(f"key {new.key.key_id} for project [bold]{project}[/bold] ({new.key.scope or 'full access'}{until}):")
    print(new.token)


def _audit(storage: Storage, action: str, project: str, key_id: str) -> None:
    from streams.storage import audit

    audit.record(storage, audit.CLI, action, project=project, target=key_id)


def _duration(option: str, text: str, *, zero: bool = False) -> timedelta:
    from schemas.durations import parse_duration

    try:
        return parse_duration(text, zero=zero)
    except ValueError as exc:
        console.print(f"[red]{option}: {escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc


@keys_app.command("list")
def keys_list(project: Annotated[str | None, typer.Option()] = None) -> None:
    """List keys (never their tokens)."""
    from streams.keys import KeyStore

    storage = _storage(_settings(), "GET /v1/keys")
    table = Table("key id", "project", "name", "scope", "created", "expires", "last used", "revoked")
    store = KeyStore(storage)
    now = store.clock()
    for key in store.list(project):
        expires = key.expires_at.isoformat(timespec="seconds") if key.expires_at else ""
        table.add_row(
            key.key_id,
            key.project,
            key.name,
            key.scope or "full",
            key.created_at.isoformat(timespec="seconds"),
            f"{expires} (expired)" if key.expired(now) else expires,
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never",
            "yes" if key.revoked else "",
        )
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace: Annotated[str, typer.Option(help="how long the old key keeps working, e.g. 24h, 7d, 0s")] = "24h",
) -> None:
    """Make a new token for a key; the old one keeps working until the grace period ends."""
    from streams.keys import KeyStore

    period = _duration("--grace", grace, zero=True)
    storage = _storage(_settings(), f"POST /v1/keys/{key_id}/rotate")
    new = KeyStore(storage).rotate(key_id, period)
    if new is None:
        console.print(f"[red]no live key {key_id} (unknown, revoked or expired)[/red]")
        raise typer.Exit(1)
    _audit(storage, "key.rotate", new.key.project, new.key.key_id)
    console.print(
        f"key {new.key.key_id} replaces {key_id} (project [bold]{new.key.project}[/bold]); "
        f"{key_id} works for {grace} more:"
    )
    print(new.token)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key (takes effect within 10 s in running servers)."""
    from streams.keys import KeyStore

    storage = _storage(_settings(), f"DELETE /v1/keys/{key_id}")
    store = KeyStore(storage)
    if not store.revoke(key_id):
        console.print(f"[red]no key {key_id}[/red]")
        raise typer.Exit(1)
    key = store.get(key_id)
    _audit(storage, "key.revoke", key.project if key else "", key_id)
    console.print(f"revoked {key_id}")
