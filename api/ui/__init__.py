"""The web dashboard at ``/ui``: server-rendered pages over the API's query layer (see ``web``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.ui import (
    alerts,
    assets,
    auth,
    calls,
    datasets,
    evaluators,
    fallback,
    feedback,
    model_page,
    monitors,
    overview,
    queues,
    window_page,
)

# Order matters: a window's path extends a model's (model names may hold "/"), and the fallback's
# catch-all comes last.
_PAGES = (
    assets,
    auth,
    overview,
    window_page,
    model_page,
    alerts,
    feedback,
    datasets,
    queues,
    calls,
    monitors,
    evaluators,
    fallback,
)

router = APIRouter()
for _module in _PAGES:
    router.include_router(_module.router, include_in_schema=False)

__all__ = ["router"]
