"""nlpsuite: NLP tasks as plugins, run and evaluated the same way.

Importing this package is cheap: torch and transformers load only when a model does.
"""

__version__ = "0.1.0"

from nlpsuite.causal import stream_text
from nlpsuite.decoding import Sampling
from nlpsuite.errors import NlpsuiteError, PluginError
from nlpsuite.hookspecs import hookimpl
from nlpsuite.lookup import get_task, list_tasks, load_runner, run
from nlpsuite.options import Option
from nlpsuite.tasks import RunConfig, Task

__all__ = [
    "NlpsuiteError",
    "Option",
    "PluginError",
    "RunConfig",
    "Sampling",
    "Task",
    "__version__",
    "get_task",
    "hookimpl",
    "list_tasks",
    "load_runner",
    "run",
    "stream_text",
]
