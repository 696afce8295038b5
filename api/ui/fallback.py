"""Any other ``/ui`` path: the dashboard's own 404 page, so it too carries the security headers."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.ui.web import UiRoute

router = APIRouter(prefix="/ui", route_class=UiRoute)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(rest: str) -> None:
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard page at /ui/{rest}")
