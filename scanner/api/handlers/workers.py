"""Workers: which processes work runs' items, whether they are alive, what they hold."""

from __future__ import annotations

from aiohttp import web

from scanner import shapes
from scanner.api.schemas import Arr, Bool, Call, Int, Obj, Operation, Ref, Reply, Str, operation
from scanner.db.tokens import Scope
from scanner.usecases import runs

_TIME = Str(format="date-time")

WORKER = Ref(
    name="Worker",
    schema=Obj(
        properties={
            "id": Str(description="The worker's id (a UUID, new on every start)."),
            "hostname": Str(),
            "pid": Int(),
            "started_at": _TIME,
            "last_heartbeat": _TIME,
            "live": Bool(
                description=(
                    "Heard from recently (within max(lease, 3 heartbeats)); a stale worker "
                    "has crashed or hangs, and its leases expire by themselves."
                )
            ),
            "items_leased": Int(description="Work items it holds a lease on now."),
        },
        required=frozenset(
            {"id", "hostname", "pid", "started_at", "last_heartbeat", "live", "items_leased"}
        ),
    ),
)
WORKER_LIST = Obj(properties={"items": Arr(items=WORKER)}, required=frozenset({"items"}))


@operation(
    Operation(
        operation_id="listWorkers",
        summary="Registered worker processes, oldest first, live or stale",
        tag="workers",
        scope=Scope.READ,
        replies=(Reply(200, "Every registered worker.", WORKER_LIST),),
    )
)
async def list_workers(call: Call) -> web.Response:
    found = await runs.list_workers(call.context)
    return web.json_response({"items": [shapes.worker_json(w) for w in found]})
