"""Loads plugins from the ``nlpsuite`` entry-point group and keeps what they register.

A plugin that fails to import or whose hook raises (even ``sys.exit()``; only Ctrl-C gets
through) is skipped with one warning line, and nothing it registered is kept; the rest of the
suite keeps working. What a plugin prints while it loads goes to stderr, so that a command's
stdout carries only the command's output. ``NLPSUITE_LOAD_PLUGINS`` (a comma separated list of
plugin or package names; empty for none) restricts which plugins load.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from nlpsuite import hookspecs
from nlpsuite.backends import Backend
from nlpsuite.datasets import Dataset, DatasetFormat
from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import Metric
from nlpsuite.models import TORCH
from nlpsuite.tasks import Task

GROUP = "nlpsuite"
LOAD_PLUGINS_ENV = "NLPSUITE_LOAD_PLUGINS"
logger = logging.getLogger("nlpsuite")


@dataclass(frozen=True)
class PluginInfo:
    """What ``nlpsuite plugins`` reports for one plugin."""

    name: str
    package: str
    version: str
    tasks: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    error: str | None = None
    backends: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Registrations:
    """What one plugin registered, kept apart until all its hooks have succeeded."""

    tasks: dict[str, Task] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    backends: dict[str, Backend] = field(default_factory=dict)
    formats: dict[str, DatasetFormat] = field(default_factory=dict)


class Registry:
    """Tasks, datasets, metrics and backends by name, dataset formats in the order plugins
    loaded (the first that recognises a path reads it), and a report on every plugin tried."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.tasks: dict[str, Task] = {}
        self.datasets: dict[str, Dataset] = {}
        self.metrics: dict[str, Metric] = {}
        self.backends: dict[str, Backend] = {TORCH.name: TORCH}
        self.formats: list[DatasetFormat] = []
        self.plugins: list[PluginInfo] = []
        self._owner: dict[tuple[str, str], str] = {("backend", TORCH.name): "nlpsuite"}

    def load_entry_points(self, only: set[str] | None = None) -> None:
        """Load every plugin in the entry-point group; built-ins first, then by package name."""
        found = sorted(entry_points(group=GROUP), key=_load_order)
        for entry_point in found:
            package, version = _distribution(entry_point)
            if only is not None and not {entry_point.name, package} & only:
                continue
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    plugin = entry_point.load()
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # a broken plugin, even one that exits, is skipped
                self._skip(entry_point.name, package, version, error)
                continue
            with contextlib.redirect_stdout(sys.stderr):
                self.add(plugin, entry_point.name, package, version)

    def add(self, plugin: Any, name: str, package: str = "", version: str = "") -> PluginInfo:
        """Register ``plugin`` (a module or object with ``@hookimpl`` functions); call its hooks."""
        wanted = getattr(plugin, "NLPSUITE_CONTRACT", hookspecs.CONTRACT_VERSION)
        if wanted != hookspecs.CONTRACT_VERSION:
            return self._skip(
                name,
                package,
                version,
                f"written for plugin contract {wanted}, this nlpsuite has "
                f"{hookspecs.CONTRACT_VERSION}; install a matching version",
            )
        try:
            self.manager.register(plugin, name=name)
            staged = _Registrations()
            self._call(plugin, "register_tasks", register=_collector(staged.tasks, Task))
            self._call(plugin, "register_datasets", register=_collector(staged.datasets, Dataset))
            self._call(plugin, "register_metrics", register=_collector(staged.metrics, Metric))
            self._call(plugin, "register_backends", register=_collector(staged.backends, Backend))
            self._call(plugin, "register_dataset_formats",
                       register=_collector(staged.formats, DatasetFormat))
            for task in staged.tasks.values():
                for metric in task.metrics:
                    staged.metrics.setdefault(metric.name, metric)
            self._check_taken(staged)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            return self._skip(name, package, version, error)
        for kind, items in (
            ("task", staged.tasks),
            ("dataset", staged.datasets),
            ("metric", staged.metrics),
            ("backend", staged.backends),
        ):
            getattr(self, f"{kind}s").update(items)
            self._owner.update({(kind, key): name for key in items})
        self.formats += staged.formats.values()
        self._owner.update({("dataset format", key): name for key in staged.formats})
        info = PluginInfo(
            name,
            package,
            version,
            tuple(staged.tasks),
            tuple(staged.datasets),
            tuple(staged.metrics),
            backends=tuple(staged.backends),
            formats=tuple(staged.formats),
        )
        self.plugins.append(info)
        return info

    def add_commands(self, cli: Any) -> None:
        """Let each loaded plugin add CLI commands, in load order. One whose hook raises, or that
        replaces or removes a command already there (built-in or another plugin's), is reported
        with one warning line and none of its commands is kept."""
        for info in self.plugins:
            plugin = self.manager.get_plugin(info.name) if info.ok else None
            if plugin is None:
                continue
            before = dict(cli.commands)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    self._call(plugin, "register_commands", cli=cli)
                refused = self._taken_command(before, cli.commands)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                refused = _describe(error)
            if refused is not None:
                cli.commands.clear()
                cli.commands.update(before)
                logger.warning("plugin %r: register_commands failed: %s", info.name, refused)
                continue
            self._owner.update({("command", name): info.name for name in cli.commands.keys()
                                - before.keys()})

    def plugin_of(self, kind: str, name: str) -> PluginInfo | None:
        """The loaded plugin that registered the ``kind`` (``"task"``, ``"dataset"``, ...) called
        ``name``; None for nlpsuite's own and for names no plugin registered."""
        owner = self._owner.get((kind, name))
        return next((info for info in self.plugins if info.ok and info.name == owner), None)

    def task(self, name: str) -> Task:
        return _lookup("task", self.tasks, name)

    def dataset(self, name: str) -> Dataset:
        return _lookup("dataset", self.datasets, name)

    def metric(self, name: str) -> Metric:
        return _lookup("metric", self.metrics, name)

    def backend(self, name: str) -> Backend:
        return _lookup("backend", self.backends, name)

    def _call(self, plugin: Any, hook: str, **arguments: Any) -> None:
        for implementation in getattr(self.manager.hook, hook).get_hookimpls():
            if implementation.plugin is plugin:
                implementation.function(**{a: arguments[a] for a in implementation.argnames})

    def _check_taken(self, staged: _Registrations) -> None:
        for kind, items in (
            ("task", staged.tasks), ("dataset", staged.datasets), ("backend", staged.backends),
            ("dataset format", staged.formats),
        ):
            for key in items:
                if (kind, key) in self._owner:
                    raise NlpsuiteError(
                        f"{kind} '{key}' is already registered by plugin "
                        f"'{self._owner[(kind, key)]}'"
                    )

    def _taken_command(self, before: dict[str, Any], after: dict[str, Any]) -> str | None:
        for name, command in sorted(before.items()):
            if after.get(name) is not command:
                owner = self._owner.get(("command", name))
                taken = f"already registered by plugin '{owner}'" if owner else "a built-in command"
                return f"command '{name}' is {taken}"
        return None

    def _skip(
        self, name: str, package: str, version: str, error: BaseException | str
    ) -> PluginInfo:
        reason = error if isinstance(error, str) else _describe(error)
        logger.warning("plugin %r skipped: %s", name, reason)
        info = PluginInfo(name, package, version, error=reason)
        self.plugins.append(info)
        return info


def _lookup(kind: str, table: dict[str, Any], name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none loaded"
        raise NlpsuiteError(f"unknown {kind} '{name}' (known {kind}s: {known})") from None


def _collector(into: dict[str, Any], kind: type[Any]) -> Callable[[Any], None]:
    def register(item: Any) -> None:
        if not isinstance(item, kind):
            raise TypeError(f"expected a {kind.__name__}, got {type(item).__name__}")
        if item.name in into:
            raise NlpsuiteError(f"{kind.__name__.lower()} '{item.name}' registered twice")
        into[item.name] = item

    return register


def _describe(error: BaseException) -> str:
    # sys.exit() has no message: its name alone says what happened.
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text.splitlines()[0]


def _distribution(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    return (dist.name, dist.version) if dist is not None else ("", "")


def _load_order(entry_point: EntryPoint) -> tuple[bool, str, str]:
    package = _distribution(entry_point)[0]
    return package != "nlpsuite", package, entry_point.name


def _only_from_environment() -> set[str] | None:
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


@functools.cache
def registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    loaded = Registry()
    loaded.load_entry_points(_only_from_environment())
    return loaded
