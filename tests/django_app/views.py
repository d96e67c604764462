"""``/items``: POST adds an item, then (GET too) lists the items at the level named by
``?level=`` and says which server answered."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import JsonResponse

from router_lib.consistency import BOUNDED, EVENTUAL, READ_YOUR_WRITES, STRONG, Consistency
from router_lib.contrib.django_backend import consistency
from tests.django_app.models import Item

LEVELS: dict[str, Consistency] = {
    "ryw": READ_YOUR_WRITES,
    "eventual": EVENTUAL,
    "strong": STRONG,
    # No byte of lag allowed: any replica the probe has seen behind is out of bounds.
    "bounded": BOUNDED(max_lag_bytes=0),
}


def items(request: Any) -> JsonResponse:
    if request.method == "POST":
        Item.objects.create(name=request.POST["name"])
    with consistency(LEVELS[request.GET.get("level", "ryw")]):
        names = sorted(Item.objects.values_list("name", flat=True))
        with connection.cursor() as cursor:
            cursor.execute("SELECT host(inet_server_addr())")
            (server,) = cursor.fetchone()
    return JsonResponse({"names": names, "server": server})
