"""``flask llm ...`` (also ``python -m webapp.llm ...``): list models, send a
prompt, manage aliases. Registered by the app with ``app.cli.add_command(llm)``."""

from __future__ import annotations

import os
import sys

import click

from . import registry
from .attachments import Attachment
from .errors import LLMError


def _fail(error: Exception):
    raise click.ClickException(str(error))


@click.group(name="llm", help="Talk to the configured language models.")
def llm():
    pass


@llm.command("models")
@click.option("--options", "show_options", is_flag=True, help="Show each model's options.")
def models_command(show_options):
    """List the available models and their aliases."""
    aliases = registry.get_aliases()
    by_model: dict[str, list[str]] = {}
    for alias, model_id in aliases.items():
        by_model.setdefault(model_id, []).append(alias)
    for model in registry.get_models():
        line = f"{model.provider}: {model.model_id}"
        if by_model.get(model.model_id):
            line += f" (aliases: {', '.join(sorted(by_model[model.model_id]))})"
        if model.needs_key:
            line += f" [needs {model.key_env_var}]"
        click.echo(line)
        if show_options:
            for name, kind, description in model.options_help():
                click.echo(f"  {name}: {kind}")
                if description:
                    click.echo(f"    {description}")


@llm.command("prompt")
@click.argument("text", required=False)
@click.option("-m", "--model", "model_name", help="Model id or alias (default: DEFAULT_LLM_MODEL)")
@click.option("-s", "--system", help="System prompt")
@click.option(
    "-o",
    "--option",
    "options",
    type=(str, str),
    multiple=True,
    metavar="NAME VALUE",
    help="Model option, e.g. -o temperature 0.5",
)
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer")
@click.option(
    "-a",
    "--attachment",
    "attachment_args",
    multiple=True,
    metavar="PATH|URL|-",
    help="Attach an image or PDF: a path, an http(s) URL, or - for standard input (repeatable)",
)
def prompt_command(text, model_name, system, options, no_stream, attachment_args):
    """Send TEXT (or standard input) to a model and print the answer as it streams."""
    files = []
    for arg in attachment_args:
        if arg == "-":
            stdin = sys.stdin.buffer if sys.stdin is not None and hasattr(sys.stdin, "buffer") else None
            if stdin is None or text is None:
                raise click.UsageError("With -a -, give the prompt as an argument (standard input holds the file)")
            files.append(Attachment(content=stdin.read(), name="stdin"))
        elif arg.startswith(("http://", "https://")):
            files.append(Attachment(url=arg))
        else:
            if not os.path.isfile(arg):
                raise click.UsageError(f"No such file: {arg}")
            files.append(Attachment(path=arg))
    if text is None:
        stdin = sys.stdin
        if stdin is None or stdin.isatty():
            raise click.UsageError("Give the prompt as an argument or on standard input")
        text = stdin.read()
    try:
        model = registry.get_model(model_name) if model_name else registry.get_default_model()
        response = model.prompt(text, system=system, stream=not no_stream, attachments=files, **dict(options))
        for chunk in response:
            click.echo(chunk, nl=False)
        click.echo()
    except LLMError as error:
        _fail(error)


@llm.group("aliases")
def aliases_group():
    """Manage model aliases (stored in instance/aliases.json)."""


@aliases_group.command("list")
def aliases_list():
    """Show every alias and the model it points to."""
    for alias, model_id in sorted(registry.get_aliases().items()):
        click.echo(f"{alias}: {model_id}")


@aliases_group.command("set")
@click.argument("alias")
@click.argument("model")
def aliases_set(alias, model):
    """Point ALIAS at MODEL (a model id or another alias)."""
    try:
        registry.set_alias(alias, model)
    except (LLMError, ValueError) as error:
        _fail(error)
    click.echo(f"{alias} -> {registry.get_model(alias).model_id}")


@aliases_group.command("remove")
@click.argument("alias")
def aliases_remove(alias):
    """Remove ALIAS."""
    try:
        registry.remove_alias(alias)
    except KeyError:
        raise click.ClickException(f"No alias called {alias!r}") from None
    click.echo(f"Removed {alias}")


@llm.command("providers")
@click.option("--remote", is_flag=True, help="Ask each configured provider for its model list")
def providers_command(remote):
    """List providers and whether they are configured."""
    for name, info in registry.get_providers().items():
        state = "configured" if info["configured"] else "not configured"
        click.echo(f"{name}: {info['label']} ({state})")
        if remote and info["configured"]:
            try:
                for model_id in registry.list_provider_models(name):
                    click.echo(f"  {model_id}")
            except LLMError as error:
                click.echo(f"  error: {error}")


llm_cli = llm  # the name the app registers: app.cli.add_command(llm_cli)

__all__ = ["llm", "llm_cli"]
