"""The whole plugin contract. Implement any of these hooks with ``@hookimpl`` in a module that
your package lists under the ``nlpsuite`` entry-point group::

    [project.entry-points.nlpsuite]
    my-plugin = "my_package.plugin"

Each ``register`` callable takes one object of the named type; the built-in plugins in
``plugins/`` are worked examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pluggy import HookimplMarker, HookspecMarker

from nlpsuite.backends import Backend
from nlpsuite.datasets import Dataset, DatasetFormat
from nlpsuite.metrics import Metric
from nlpsuite.tasks import Task

if TYPE_CHECKING:
    import click

# Bumped only on an incompatible change; a plugin may declare the version it was written for
# as a module attribute ``NLPSUITE_CONTRACT = 1`` and a newer one is refused with a clear message.
CONTRACT_VERSION = 1

hookspec = HookspecMarker("nlpsuite")
hookimpl = HookimplMarker("nlpsuite")


@hookspec
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register tasks: call ``register(Task(...))`` once for each."""


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register named evaluation datasets: call ``register(Dataset(...))`` once for each."""


@hookspec
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    """Register file layouts ``--dataset PATH`` can read: call ``register(DatasetFormat(...))``."""


@hookspec
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register metrics that tasks and ``nlpsuite eval --metric`` can name."""


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register inference engines: call ``register(Backend(...))`` once for each."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``nlpsuite`` command line, e.g. ``nlpsuite mycommand``."""
