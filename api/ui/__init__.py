"""The web dashboard at ``/ui``: server-rendered pages over the API's query layer (see ``web``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.ui import alerts, assets, auth, feedback, models, monitors, overview, windows

router = APIRouter()
for _module in (
    assets,
    auth,
    overview,
    windows,
    models,
    alerts,
    feedback,
    monitors,
):  # windows before models: a model name may hold "/"
    router.include_router(_module.router, include_in_schema=False)

__all__ = ["router"]
