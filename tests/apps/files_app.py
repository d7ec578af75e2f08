"""FastAPI serving files the way most projects do: a StaticFiles mount and a FileResponse route."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent

app = FastAPI()
app.mount("/static", StaticFiles(directory=HERE), name="static")


@app.api_route("/file", methods=["GET", "HEAD"])
async def file() -> FileResponse:
    return FileResponse(HERE / "probe.py", media_type="text/x-python")
