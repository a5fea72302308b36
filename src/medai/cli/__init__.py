"""The ``medai`` command line. ``--json`` output is one JSON object on stdout: a stable contract.

Progress bars and logs go to stderr so stdout stays machine-readable. Errors with ``--json``
print ``{"error": ..., "error_type": ..., "code": ...}`` (``code``: a key of
``medai.core.errors.CODES``, the API's codes among them) and exit with status 2 (bad input) or
1 (other).

The root is lazy: a command's module is imported when that command runs (or its own
``--help`` is asked for), never for another. So each command module imports the layers it
works with at its top, and ``medai --help`` or ``medai version`` start without the platform,
torch or the models (``COMMANDS`` holds what the listing shows).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

import click
import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # typer vendors its own click: the types TyperGroup's methods take
    from typer import _click as tclick


class Entry(NamedTuple):
    """A command of the root: where it lives (``module:attribute``, a Typer app for a group of
    commands or a function for one command) and its line in ``medai --help``."""

    target: str
    summary: str


COMMANDS: dict[str, Entry] = {
    "serve": Entry(
        "medai.cli.serve:serve",
        "Start the platform (OpenAPI docs at /docs): the API behind sign-in, studies analysed "
        "in the background, review and sign-off, audit.",
    ),
    "worker": Entry(
        "medai.cli.worker:worker",
        "Run a Celery worker that analyses studies (needs MEDAI_BROKER_URL: redis:// or amqp://).",
    ),
    "migrate": Entry(
        "medai.cli.operations:migrate",
        "Migrate the database to this release's schema, once, before the new release's serve, "
        "workers and DICOM node start.",
    ),
    "backup": Entry(
        "medai.cli.operations:backup",
        "A consistent snapshot of this site while it runs: the database, then every stored "
        "file and model copy, the settings that are not secrets, and manifest.json.",
    ),
    "restore": Entry(
        "medai.cli.operations:restore",
        "Restore a backup into this process's EMPTY home and database (MEDAI_HOME, "
        "MEDAI_DATABASE_URL), with the keys configured.",
    ),
    "settings": Entry(
        "medai.cli.operations:settings_command",
        "The settings by group: each group's MEDAI_* variables (no values: some are secrets).",
    ),
    "version": Entry("medai.cli.version:version", "Print medai's version."),
    "triage": Entry(
        "medai.cli.triage:triage_app", "Complaint triage: Turkish complaint → department."
    ),
    "models": Entry("medai.cli.models:models_app", "The model registry and model directories."),
    "dataset": Entry(
        "medai.cli.dataset:dataset_app", "Training sets from the site's signed studies."
    ),
    "imaging": Entry(
        "medai.cli.imaging:imaging_app", "Imaging findings: chest X-ray and brain MRI."
    ),
    "caption": Entry("medai.cli.reporting:caption_app", "Radiology image captioning."),
    "report": Entry(
        "medai.cli.reporting:report_app", "Retrieval-augmented report drafts (always drafts)."
    ),
    "kb": Entry("medai.cli.reporting:kb_app", "The knowledge base that drafts cite."),
    "users": Entry(
        "medai.cli.users:users_app", "Accounts (the first admin of a fresh install is made here)."
    ),
    "kiosks": Entry(
        "medai.cli.kiosks:kiosks_app",
        "Triage kiosks: each has its own daily quota and credentials.",
    ),
    "audit": Entry("medai.cli.audit:audit_app", "The audit log."),
    "keys": Entry("medai.cli.keys:keys_app", "Encryption keys of chat messages and complaints."),
    "db": Entry("medai.cli.db:db_app", "The platform database."),
    "outbox": Entry(
        "medai.cli.outbox:outbox_app",
        "Deliveries of results to the PACS, FHIR and HL7 destinations.",
    ),
    "dicom": Entry(
        "medai.cli.dicom:dicom_app", "Receive studies from modalities and the PACS over DICOM."
    ),
    "hl7": Entry(
        "medai.cli.hl7:hl7_app", "Receive imaging orders from the RIS/HIS over HL7 v2 (MLLP)."
    ),
}


def load(name: str) -> tclick.Command:
    """The click command of ``COMMANDS[name]``, its module imported now. A group takes its
    help from the entry (written once, here); a single command keeps its docstring as its help
    and the entry as its line in the listing."""
    entry = COMMANDS[name]
    module, _, attribute = entry.target.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    command: tclick.Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
        command.help = entry.summary
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
        command.short_help = entry.summary
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: lists ``COMMANDS`` from their entries and imports a command's module
    only when it is resolved to run."""

    _listing = False

    def list_commands(self, ctx: tclick.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: tclick.Context, cmd_name: str) -> tclick.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # `medai --help`: the line only, nothing imported
            # a plain click Command, only listed (typer's help reads its attributes alike)
            return click.Command(cmd_name, help=COMMANDS[cmd_name].summary)  # type: ignore[return-value]  # see above
        self.commands[cmd_name] = load(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: tclick.Context, formatter: tclick.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    help="medai: a hospital's own medical AI (triage, imaging, reports).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:  # a callback keeps the root a group while every command is lazy
    pass
