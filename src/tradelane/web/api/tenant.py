"""``GET /api/v1/tenant``: who the token acts for."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tradelane.web.api.common import API_PREFIX
from tradelane.web.auth import TenantDep

router = APIRouter(prefix=API_PREFIX, tags=["tenant"])


class TenantOut(BaseModel):
    id: int
    name: str


@router.get("/tenant", summary="The tenant of the bearer token")
def who_am_i(tenant: TenantDep) -> TenantOut:
    return TenantOut(id=tenant.id, name=tenant.name)
