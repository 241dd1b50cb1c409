"""``nlpsuite serve``: every served task behind one HTTP server, with dynamic micro-batching.

``server`` loads one runner per task and wraps it in a ``batcher.MicroBatcher``; ``app`` builds
the Starlette application from the core routes and the OpenAI- (``openai_api``) and
TEI-compatible (``tei_api``) ones; ``http`` holds what every route shares (reading a body, the
error body). Nothing here is imported by ``import nlpsuite``: starlette and uvicorn load only
when a server starts.
"""
