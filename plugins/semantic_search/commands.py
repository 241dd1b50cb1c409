"""``nlpsuite index build`` and ``nlpsuite index info``: saved indexes from the command line."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from nlpsuite import NlpsuiteError
from nlpsuite.models import resolve_device

from .encoder import DEFAULT_MODEL
from .hnsw import ANN_INSTALL_HINT, ANN_KINDS, HnswParams
from .index import build_index, load_index

if TYPE_CHECKING:
    import click


def add_index_commands(cli: click.Group) -> None:
    """Add the ``index`` command group to the ``nlpsuite`` command line."""
    import click

    @cli.group("index")
    def index_group() -> None:
        """Build and inspect saved semantic-search indexes."""

    @index_group.command("build")
    @click.argument("corpus", metavar="CORPUS")
    @click.option("--out", "-o", "out_dir", required=True, metavar="DIR",
                  help="Directory to write the index to (replaced atomically).")
    @click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, metavar="ID|DIR")
    @click.option("--device", default="cpu", show_default=True,
                  type=click.Choice(["cpu", "cuda", "auto"]))
    @click.option("--batch-size", "-b", default=32, show_default=True, type=int)
    @click.option("--float16", is_flag=True, help="Store embeddings as float16 (half the size).")
    @click.option("--trust-remote-code", is_flag=True,
                  help="Allow a checkpoint to run its own Python code.")
    @click.option("--ann", default="exact", show_default=True, type=click.Choice(ANN_KINDS),
                  help="Also build an approximate HNSW graph, for 'run semantic-search --ann "
                  f"hnsw' (needs {ANN_INSTALL_HINT}).")
    @click.option("--hnsw-m", default=HnswParams.m, show_default=True, type=int,
                  help="HNSW links per node: more is better recall, more memory.")
    @click.option("--hnsw-ef-construction", default=HnswParams.ef_construction,
                  show_default=True, type=int,
                  help="HNSW candidates while building: more is better recall, slower build.")
    @click.option("--hnsw-ef-search", default=HnswParams.ef_search, show_default=True, type=int,
                  help="HNSW candidates per query, saved as the default for searches.")
    def build(corpus: str, out_dir: str, model: str, device: str, batch_size: int,
              float16: bool, trust_remote_code: bool, ann: str, hnsw_m: int,
              hnsw_ef_construction: int, hnsw_ef_search: int) -> None:
        """Embed CORPUS (JSONL/CSV with id and text, or plain text lines) into an index."""

        if batch_size < 1:
            raise NlpsuiteError(f"batch size must be at least 1, got {batch_size}")
        hnsw = (
            HnswParams(hnsw_m, hnsw_ef_construction, hnsw_ef_search) if ann == "hnsw" else None
        )
        started = time.perf_counter()
        index = build_index(
            corpus, model, out_dir, device=resolve_device(device), batch_size=batch_size,
            float16=float16, trust_remote_code=trust_remote_code, hnsw=hnsw,
        )
        graph = f", with an HNSW graph (m={hnsw.m})" if hnsw else ""
        click.echo(
            f"indexed {len(index)} documents ({index.dimension} dimensions, model {model}"
            f"{graph}) into {out_dir} in {time.perf_counter() - started:.1f} s"
        )

    @index_group.command("info")
    @click.argument("directory", metavar="DIR")
    def info(directory: str) -> None:
        """Print a saved index's metadata (index.json), with the HNSW graph's under "ann"."""
        click.echo(json.dumps(load_index(directory).meta, indent=2))
