"""``polychrome serve``: the hint page on a socket bound before it prints its URL."""

from __future__ import annotations

from typing import Annotated

import typer

from polychrome.cli.common import Precision, app, fail, need_extra


# --------------------------------------------------------------------------- serve
@app.command()
def serve(
    model: Annotated[str, typer.Option(help="The colourising model (a hint model): bundled name, export folder, .safetensors or .pt.")] = "hints",
    host: Annotated[str, typer.Option(help="Address to listen on. 127.0.0.1: this machine only; 0.0.0.0: every network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")] = 8000,
    size: Annotated[int | None, typer.Option(min=16, help="Working size (longest side, px) the model colourises at; default: the model's (192 for 'hints').", show_default=False)] = None,
    preview_size: Annotated[int, typer.Option(min=64, help="Longest side of the preview images, px.")] = 640,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest photo file accepted, MB (HTTP 413 over it).")] = 25.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest photo accepted, width x height (HTTP 413 over it).")] = 30_000_000,
    max_photos: Annotated[int, typer.Option(min=1, help="Photos kept in memory (least recently used dropped first).")] = 16,
    jobs: Annotated[int, typer.Option(min=1, help="Colourisations at once; later requests wait in the queue.")] = 2,
    queue: Annotated[int, typer.Option(min=0, help="Requests that may wait for a job slot (the page shows its place); one more gets HTTP 503 with Retry-After.")] = 32,
    job_megapixels: Annotated[float, typer.Option(min=0.01, help="Megapixels the running jobs may render together (a full-resolution job's memory follows its pixels); a job alone always runs.")] = 30.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Time limit of one request's model work, s (HTTP 504 past it).")] = 60.0,
    auto_model: Annotated[str | None, typer.Option(help="Automatic model whose colour is offered as a suggestion ('' for none); default: the bundled 'default'.", show_default=False)] = None,
    start_from_auto: Annotated[bool, typer.Option("--start-from-auto/--hints-only", help="Without hints show the automatic model's result and let hints refine it (--hints-only: the hint model's own result throughout).")] = True,
    precision: Annotated[Precision, typer.Option(help="Model arithmetic: fp32, or bf16 (autocast).")] = Precision.fp32,
    allowed_host: Annotated[list[str] | None, typer.Option(help="A host name the page may be reached by, besides the listen address (repeatable; '*': any). Requests naming another host are refused (DNS rebinding). Default: the listen address (and localhost names for a loopback one); any for 0.0.0.0.", show_default=False)] = None,
) -> None:
    """The interactive page: upload a photo, click colour hints onto it, download the result (API docs at /docs)."""
    need_extra("web", "serve")
    import socket

    import uvicorn

    from polychrome import hub
    from polychrome.web import Limits, create_app
    from polychrome.web.origin import serve_hosts

    if model == "hints" and "hints" not in hub.bundled_names():
        raise fail("the bundled 'hints' model is not in this installation (polychrome/weights/hints.safetensors "
                    "is missing); pass --model PATH to a trained hint model")
    try:
        limits = Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels,
                        max_photos=max_photos, jobs=jobs, queue=queue, job_pixels=int(job_megapixels * 1e6),
                        timeout_s=timeout)
        web = create_app(model, auto_spec=auto_model, limits=limits, size=size, preview_size=preview_size,
                         precision=precision.value, allowed_hosts=serve_hosts(host, allowed_host or ()),
                         start_from_auto=start_from_auto)
    except (hub.ModelLoadError, ValueError) as e:
        raise fail(str(e)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them: the URL works once printed
    except OSError as e:
        sock.close()
        raise fail(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    size = web.state.size  # the model's own when --size is not given
    typer.echo(f"polychrome: serving {url}  (model {model}, working size {size} px; API docs at {url}docs; Ctrl+C stops)")
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])
