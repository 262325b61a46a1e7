"""The README scenario, driven through a client generated from the served spec.

scripts/test-contract.sh generates `pool_manager_client` with openapi-python-client
from the live server's /api/v1/openapi.json and runs this against it. Every call goes
through a generated function with raise_on_unexpected_status=True, so any status the
spec does not list, and any body its models cannot read, fails the run.

Environment: PM_BASE_URL (…/api/v1), PM_ADMIN_TOKEN, PM_USER_TOKEN, PM_ENGINE (the
Docker engine's endpoint), PM_IMAGE (the test image), PM_CLIENT_DIR (where the client
package was generated).
"""

import json
import os
import sys
import threading
import time
import uuid
from http import HTTPStatus

import httpx

sys.path.insert(0, os.environ["PM_CLIENT_DIR"])

from pool_manager_client import AuthenticatedClient  # noqa: E402
from pool_manager_client.types import UNSET  # noqa: E402
from pool_manager_client.api.apply import apply, release  # noqa: E402
from pool_manager_client.api.blueprints import (  # noqa: E402
    create_blueprint,
    create_blueprint_version,
    delete_blueprint,
    get_blueprint,
    get_blueprint_rollout,
    list_blueprints,
    update_blueprint,
)
from pool_manager_client.api.clusters import (  # noqa: E402
    get_cluster,
    list_clusters,
    renew_lease,
    start_cluster,
    stop_cluster,
)
from pool_manager_client.api.hosts import (  # noqa: E402
    create_host,
    delete_host,
    fill_host,
    get_host,
    list_hosts,
)
from pool_manager_client.api.pool import (  # noqa: E402
    get_health,
    get_operation,
    get_stats,
    get_stats_history,
    list_leases,
    list_operations,
)
from pool_manager_client.models import (  # noqa: E402
    Apply,
    BlueprintPatch,
    BlueprintPolicy,
    Cluster,
    ClusterSortKey,
    ClusterStatus,
    Error,
    ErrorCode,
    Event,
    EventKind,
    Fill,
    Health,
    HttpProbe,
    Labels,
    Metadata,
    NewBlueprint,
    NewBlueprintVersion,
    NewHost,
    NodeSpec,
    NodeTarget,
    OperationKind,
    OperationStatus,
    PlacementStrategy,
    Ports,
    Probe,
    Release,
    ReleaseMode,
    Renewal,
    RolloutStrategy,
    SortOrder,
    TcpProbe,
)

BASE = os.environ["PM_BASE_URL"]
ADMIN = os.environ["PM_ADMIN_TOKEN"]
USER = os.environ["PM_USER_TOKEN"]
ENGINE = os.environ["PM_ENGINE"]
IMAGE = os.environ.get("PM_IMAGE", "poolmanager/testnode:latest")


def client(token):
    return AuthenticatedClient(base_url=BASE, token=token, raise_on_unexpected_status=True, timeout=httpx.Timeout(60.0))


admin = client(ADMIN)
user = client(USER)
suffix = uuid.uuid4().hex[:8]
steps = []


def step(name):
    steps.append(name)
    print(f"  {name}", flush=True)


def expect_error(response, status, code):
    """A documented error: the status, and an Error body with the code."""
    assert response.status_code == status, f"{response.status_code} (wanted {status}): {response.content!r}"
    assert isinstance(response.parsed, Error), response.parsed
    assert response.parsed.code == code, response.parsed
    assert response.parsed.message
    return response.parsed


def wait_operation(op_id):
    deadline = time.time() + 180
    while True:
        op = get_operation.sync(op_id, client=admin)
        if op.status != OperationStatus.RUNNING:
            return op
        assert time.time() < deadline, op
        time.sleep(0.5)


def wait_cluster(cluster_id, ready):
    deadline = time.time() + 180
    while True:
        cluster = get_cluster.sync(cluster_id, client=admin)
        if ready(cluster):
            return cluster
        assert time.time() < deadline, cluster
        time.sleep(0.5)


class EventReader(threading.Thread):
    """Reads the event stream (which the generated client cannot: it never ends) with
    the generated client's own httpx client, each `data:` parsed by the Event model."""

    def __init__(self):
        super().__init__(daemon=True)
        self.events = []
        self.error = None

    def run(self):
        try:
            http = admin.get_httpx_client()
            with http.stream("GET", "/events", timeout=httpx.Timeout(10.0, read=None)) as response:
                assert response.status_code == 200, response.status_code
                assert response.headers["content-type"].startswith("text/event-stream")
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.events.append(Event.from_dict(json.loads(line[5:])))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def main():
    health = get_health.sync(client=client("no-token-needed"))
    step(f"get_health: {health.status.value} {health.version}")

    events = EventReader()
    events.start()

    # Errors before anything exists.
    expect_error(list_hosts.sync_detailed(client=client("wrong")), HTTPStatus.UNAUTHORIZED, ErrorCode.UNAUTHORIZED)
    expect_error(list_hosts.sync_detailed(client=user), HTTPStatus.FORBIDDEN, ErrorCode.FORBIDDEN)
    expect_error(get_cluster.sync_detailed("no-such-cluster", client=user), HTTPStatus.NOT_FOUND, ErrorCode.NOT_FOUND)
    unreachable = NewHost(name=f"gone-{suffix}", endpoint="unix:///nonexistent/docker.sock", capacity=1)
    response = create_host.sync_detailed(client=admin, body=unreachable)
    expect_error(response, HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.UNAVAILABLE)
    assert int(response.headers["retry-after"]) > 0
    step("errors: 401, 403, 404, 503 unavailable with Retry-After")

    # 1. A host: the test engine.
    host = create_host.sync(client=admin, body=NewHost(name=f"host-{suffix}", endpoint=ENGINE, capacity=2, autofill=False))
    assert host.status.value == "active" and host.facts.version, host
    assert get_host.sync(host.id, client=admin).name == host.name
    assert any(h.id == host.id for h in list_hosts.sync(client=admin, limit=1000).items)
    expect_error(
        create_host.sync_detailed(client=admin, body=NewHost(name=host.name, endpoint=ENGINE, capacity=1)),
        HTTPStatus.CONFLICT,
        ErrorCode.CONFLICT,
    )
    step(f"create_host {host.name} (409 for the name again)")

    # 2. A blueprint: two httpd nodes with port `web`.
    nodes = [NodeSpec(name=n, image=IMAGE, ports=Ports.from_dict({"web": "80/tcp"})) for n in ("vp0", "vp1")]
    bp_name = f"demo-{suffix}"
    blueprint = create_blueprint.sync(
        client=admin, body=NewBlueprint(name=bp_name, labels=Labels.from_dict({"consensus": "pbft"}), nodes=nodes)
    )
    assert [n.name for n in blueprint.nodes] == ["vp0", "vp1"]
    assert get_blueprint.sync(bp_name, client=user).name == bp_name

    # A readiness probe reads back with its defaults; two kinds at once are refused.
    probe = Probe(http=HttpProbe(port="web", path="/health"), start_seconds=30)
    probed = NodeSpec(name="vp0", image=IMAGE, ports=Ports.from_dict({"web": "80/tcp"}), readiness=probe)
    made = create_blueprint.sync(client=admin, body=NewBlueprint(name=f"probed-{suffix}", nodes=[probed]))
    got = made.nodes[0].readiness
    assert (got.http.port, got.http.path, got.start_seconds, got.period_seconds, got.failure_threshold) == (
        "web", "/health", 30, 1, 3), got
    both = NodeSpec(name="vp0", image=IMAGE, ports=Ports.from_dict({"web": "80/tcp"}),
                    readiness=Probe(http=HttpProbe(port="web"), tcp=TcpProbe(port="web")))
    refused = create_blueprint.sync_detailed(client=admin, body=NewBlueprint(name=f"both-{suffix}", nodes=[both]))
    expect_error(refused, HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    assert "exactly one of http, tcp and exec" in refused.parsed.message, refused.parsed.message
    assert delete_blueprint.sync_detailed(made.name, client=admin).status_code == HTTPStatus.NO_CONTENT
    step("create_blueprint with a readiness probe: read back with its defaults; two kinds at once is 400")
    assert list_blueprints.sync(client=user).total >= 1
    bad = NewBlueprint(name="no spaces allowed", nodes=nodes)
    expect_error(create_blueprint.sync_detailed(client=admin, body=bad), HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    step(f"create_blueprint {bp_name} (400 for a bad name)")

    # A blueprint closed to applies by its quota: 429 quota_exceeded, naming it.
    closed = create_blueprint.sync(client=admin, body=NewBlueprint(name=f"{bp_name}-closed", nodes=nodes, max_applied=0))
    assert closed.max_applied == 0, closed
    response = apply.sync_detailed(client=user, body=Apply(user_id="alice", blueprint=closed.name))
    expect_error(response, HTTPStatus.TOO_MANY_REQUESTS, ErrorCode.QUOTA_EXCEEDED)
    assert closed.name in response.parsed.message, response.parsed.message
    assert blueprint.max_applied is UNSET or blueprint.max_applied is None, "no quota unless given"
    assert delete_blueprint.sync_detailed(closed.name, client=admin).status_code == HTTPStatus.NO_CONTENT
    step("create_blueprint with max_applied 0; apply: 429 quota_exceeded")

    # 3. Fill (a bodyless POST) and follow the operation.
    started = fill_host.sync(host.id, client=admin)
    op = wait_operation(started.operation_id)
    assert op.status == OperationStatus.SUCCEEDED and op.done == op.total == 2, op
    ops = list_operations.sync(client=admin, host_id=host.id, kind=OperationKind.FILL)
    assert [o.id for o in ops.items] == [op.id] and ops.total == 1, ops
    step(f"fill_host, get_operation until {op.status.value} ({op.done}/{op.total}), list_operations")

    # 4. Apply: with a TTL and metadata, and without a TTL.
    alice = apply.sync(
        client=user,
        body=Apply(user_id="alice", blueprint=bp_name, ttl_seconds=600, metadata=Metadata.from_dict({"ticket": "42"})),
    )
    assert alice.status == ClusterStatus.APPLIED and alice.user_id == "alice" and alice.expires_at, alice
    assert alice.metadata.additional_properties == {"ticket": "42"}
    bob = apply.sync(client=user, body=Apply(user_id="bob", labels=Labels.from_dict({"consensus": "pbft"})))
    assert bob.id != alice.id and bob.user_id == "bob"
    step("apply with ttl and metadata (alice), without ttl (bob)")

    # 5. Use it: the service URL answers.
    url = alice.service_urls["vp0"]["web"]
    for _ in range(50):
        try:
            text = httpx.get(url, timeout=5).text
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    assert text.strip() == "ok", text
    step(f"GET {url}: ok")

    # The pool is empty now: 503 pool_exhausted, Retry-After read from the response.
    response = apply.sync_detailed(client=user, body=Apply(user_id="carol", blueprint=bp_name))
    expect_error(response, HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.POOL_EXHAUSTED)
    step(f"apply on an empty pool: 503 pool_exhausted, Retry-After {int(response.headers['retry-after'])}")

    # Waiting on an empty pool: 503 only when the wait has run out; beyond the server's
    # maximum (30 s by default) it is 400 before anything waits.
    started_at = time.monotonic()
    response = apply.sync_detailed(client=user, body=Apply(user_id="carol", blueprint=bp_name, wait_seconds=1))
    took = time.monotonic() - started_at
    expect_error(response, HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.POOL_EXHAUSTED)
    assert took >= 1 and "waited 1" in response.parsed.message, (took, response.parsed.message)
    assert int(response.headers["retry-after"]) > 0
    too_long = apply.sync_detailed(client=user, body=Apply(user_id="carol", blueprint=bp_name, wait_seconds=31))
    assert "wait_seconds" in expect_error(too_long, HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT).message
    step(f"apply with wait_seconds 1 on an empty pool: 503 after {took:.2f} s; 400 for 31")

    # 6. Renew; stop and start one node, as the user it is applied to.
    renewed = renew_lease.sync(alice.id, client=user, body=Renewal(ttl_seconds=1200, user_id="alice"))
    assert renewed.expires_at > alice.expires_at
    expect_error(
        renew_lease.sync_detailed(alice.id, client=user, body=Renewal(ttl_seconds=60, user_id="mallory")),
        HTTPStatus.FORBIDDEN,
        ErrorCode.FORBIDDEN,
    )
    expect_error(renew_lease.sync_detailed(alice.id, client=user, body=Renewal(ttl_seconds=60)), HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    stopped = stop_cluster.sync(alice.id, client=user, body=NodeTarget(node="vp0", user_id="alice"))
    assert stopped.stopped_nodes == ["vp0"] and stopped.status == ClusterStatus.APPLIED, stopped
    started_again = start_cluster.sync(alice.id, client=user, body=NodeTarget(node="vp0", user_id="alice"))
    assert started_again.stopped_nodes == [], started_again
    step("renew_lease (403 for another user, 400 without user_id), stop_cluster and start_cluster of vp0")

    # 7. Release: one cluster, then all of a user's. Dave waits in line meanwhile and is
    # served the cluster alice gives back, once it is made anew.
    waited = {}

    def dave_applies():
        waited["response"] = apply.sync_detailed(client=user, body=Apply(user_id="dave", blueprint=bp_name, wait_seconds=25))
        waited["at"] = time.monotonic()

    dave_thread = threading.Thread(target=dave_applies)
    dave_thread.start()
    deadline = time.time() + 10
    while get_stats.sync(client=admin).waiting != 1:
        assert time.time() < deadline, "dave's apply is not waiting"
        time.sleep(0.05)
    released = release.sync(client=user, body=Release(cluster_id=alice.id, user_id="alice"))
    released_at = time.monotonic()
    assert released.released == [alice.id]
    expect_error(
        release.sync_detailed(client=user, body=Release(cluster_id=alice.id, user_id="alice")),
        HTTPStatus.CONFLICT,
        ErrorCode.CONFLICT,
    )
    dave_thread.join(60)
    dave = waited["response"].parsed
    assert waited["response"].status_code == HTTPStatus.OK and isinstance(dave, Cluster), waited["response"].content
    assert dave.id == alice.id and dave.user_id == "dave" and dave.status == ClusterStatus.APPLIED, dave
    assert get_stats.sync(client=admin).waiting == 0
    step(f"apply with wait_seconds: dave served alice's cluster {waited['at'] - released_at:.2f} s after its release")
    assert release.sync(client=user, body=Release(user_id="dave")).released == [dave.id]
    assert release.sync(client=user, body=Release(user_id="bob")).released == [bob.id]
    fresh = wait_cluster(alice.id, lambda c: c.status == ClusterStatus.READY and c.health.value == "ok")
    assert isinstance(fresh, Cluster) and fresh.name == alice.name
    step("release by cluster and by user (409 twice); the cluster is recreated fresh")

    # 8. Leases, stats, history, listing.
    leases = list_leases.sync(client=admin, user_id="alice")
    assert leases.total == 1 and leases.items[0].released_at and leases.items[0].release_reason.value == "release"
    stats = get_stats.sync(client=admin)
    assert stats.hosts_by_status.active >= 1
    history = get_stats_history.sync(client=admin, bucket=60)
    assert sum(b.applied for b in history.buckets) >= 2 and sum(b.released for b in history.buckets) >= 2, history
    ready = list_clusters.sync(client=user, host_id=host.id, status=ClusterStatus.READY)
    assert ready.limit == 100 and ready.offset == 0
    step(f"list_leases, get_stats, get_stats_history ({len(history.buckets)} bucket(s)), list_clusters")

    # Sorted by the server, pages following the order; filtered by health.
    newest = list_clusters.sync(client=user, host_id=host.id, sort=ClusterSortKey.CREATED_AT, order=SortOrder.DESC)
    made = [c.created_at for c in newest.items]
    assert newest.total == len(made) >= 2 and made == sorted(made, reverse=True), newest
    second = list_clusters.sync(client=user, host_id=host.id, sort=ClusterSortKey.CREATED_AT, order=SortOrder.DESC, limit=1, offset=1)
    assert [c.id for c in second.items] == [newest.items[1].id], second
    healthy = list_clusters.sync(client=user, host_id=host.id, status=ClusterStatus.READY, health=Health.OK)
    assert healthy.total >= 1 and all(c.health == Health.OK for c in healthy.items), healthy
    assert list_clusters.sync(client=user, host_id=host.id, health=Health.FAILING).total == 0
    bad = httpx.get(f"{BASE}/clusters", params={"sort": "size"}, headers={"Authorization": f"Bearer {USER}"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input", bad.text
    step("list_clusters sorted by created_at desc and paged, filtered by health; 400 for an unknown sort")

    # A ready buffer set on the blueprint (the two ready clusters hold it), shown
    # against its target in the stats; refused above max_total; removed with null.
    held = update_blueprint.sync(bp_name, client=admin, body=BlueprintPatch(min_ready=2, min_ready_percent=50))
    assert (held.min_ready, held.min_ready_percent) == (2, 50), held
    of = [b for b in get_stats.sync(client=admin).blueprints if b.name == bp_name][0]
    assert of.ready_target == 2, of
    response = update_blueprint.sync_detailed(bp_name, client=admin, body=BlueprintPatch(min_ready=3, max_total=2))
    expect_error(response, HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    assert "max_total" in response.parsed.message, response.parsed.message
    missing = update_blueprint.sync_detailed(f"{bp_name}-none", client=admin, body=BlueprintPatch(min_ready=1))
    expect_error(missing, HTTPStatus.NOT_FOUND, ErrorCode.NOT_FOUND)
    both = update_blueprint.sync_detailed(bp_name, client=admin, body=BlueprintPatch(min_ready=1, unset=[BlueprintPolicy.MIN_READY]))
    expect_error(both, HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    unset = [BlueprintPolicy.MIN_READY, BlueprintPolicy.MIN_READY_PERCENT]
    cleared = update_blueprint.sync(bp_name, client=admin, body=BlueprintPatch(unset=unset))
    assert cleared.min_ready in (None, UNSET) and cleared.min_ready_percent in (None, UNSET), cleared
    of = [b for b in get_stats.sync(client=admin).blueprints if b.name == bp_name][0]
    assert of.ready_target in (None, UNSET), of
    step("update_blueprint: min_ready 2 and 50% gives ready_target 2; 400 above max_total, 404 unknown; unset removes")

    # Placement and release mode: a selector the host does not meet refuses its fill.
    placed = update_blueprint.sync(bp_name, client=admin, body=BlueprintPatch(
        host_selector=Labels.from_dict({"zone": "nowhere"}), placement=PlacementStrategy.PACKED,
        release_mode=ReleaseMode.RESET))
    assert placed.host_selector.to_dict() == {"zone": "nowhere"}, placed
    assert (placed.placement, placed.release_mode) == (PlacementStrategy.PACKED, ReleaseMode.RESET), placed
    refused = fill_host.sync_detailed(host.id, client=admin, body=Fill(blueprint=bp_name))
    expect_error(refused, HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    assert "zone=nowhere" in refused.parsed.message, refused.parsed.message
    back = update_blueprint.sync(bp_name, client=admin, body=BlueprintPatch(
        host_selector=Labels.from_dict({}), placement=PlacementStrategy.SPREAD, release_mode=ReleaseMode.RECREATE))
    assert back.host_selector.to_dict() == {} and back.placement == PlacementStrategy.SPREAD, back
    step("update_blueprint: host_selector, packed and reset read back; a fill of a host it does not admit is 400")

    # A new version, rolled out on release: the clusters keep version 1 until then.
    on_release = update_blueprint.sync(bp_name, client=admin, body=BlueprintPatch(
        rollout=RolloutStrategy.ON_RELEASE, rollout_per_minute=5))
    assert (on_release.rollout, on_release.rollout_per_minute) == (RolloutStrategy.ON_RELEASE, 5), on_release
    v2_nodes = [NodeSpec(name=n, image=IMAGE, ports=Ports.from_dict({"web": "80/tcp"})) for n in ("vp0", "vp1", "vp2")]
    v2 = create_blueprint_version.sync(bp_name, client=admin, body=NewBlueprintVersion(nodes=v2_nodes, api_port="vp2.web"))
    assert (v2.version, v2.api_port, len(v2.nodes)) == (2, "vp2.web", 3), v2
    assert [v.version for v in v2.earlier_versions] == [1] and len(v2.earlier_versions[0].nodes) == 2, v2
    rollout = get_blueprint_rollout.sync(bp_name, client=user)
    of_bp = list_clusters.sync(client=user, blueprint=bp_name).items
    assert all(c.blueprint_version == 1 for c in of_bp), of_bp
    assert [v.version for v in rollout.versions] == [2, 1] and rollout.outdated == len(of_bp), rollout
    assert rollout.versions[0].total == 0 and not rollout.complete, rollout
    bad = create_blueprint_version.sync_detailed(bp_name, client=admin, body=NewBlueprintVersion(nodes=v2_nodes, api_port="vp9.web"))
    expect_error(bad, HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_INPUT)
    unknown = create_blueprint_version.sync_detailed(f"{bp_name}-none", client=admin, body=NewBlueprintVersion(nodes=v2_nodes))
    expect_error(unknown, HTTPStatus.NOT_FOUND, ErrorCode.NOT_FOUND)
    expect_error(get_blueprint_rollout.sync_detailed(f"{bp_name}-none", client=user), HTTPStatus.NOT_FOUND, ErrorCode.NOT_FOUND)
    step("create_blueprint_version 2 (on_release): clusters stay at 1, get_blueprint_rollout counts them; 400 bad api_port, 404 unknown")

    # 413: a body over 1 MiB.
    huge = Apply(user_id="alice", metadata=Metadata.from_dict({"note": "x" * (2 << 20)}))
    expect_error(apply.sync_detailed(client=user, body=huge), HTTPStatus.REQUEST_ENTITY_TOO_LARGE, ErrorCode.PAYLOAD_TOO_LARGE)
    step("413 payload_too_large")

    # 9. The event stream saw it all happen.
    deadline = time.time() + 30
    while not any(e.kind == EventKind.RELEASED for e in events.events) and time.time() < deadline:
        time.sleep(0.2)
    assert events.error is None, events.error
    kinds = {e.kind.value for e in events.events}
    assert {"host", "applied", "released", "operation"} <= kinds, kinds
    step(f"stream_events: {len(events.events)} events, kinds {sorted(kinds)}")

    # Clean up.
    delete_host.sync_detailed(host.id, client=admin, force=True)
    expect_error(get_host.sync_detailed(host.id, client=admin), HTTPStatus.NOT_FOUND, ErrorCode.NOT_FOUND)
    assert delete_blueprint.sync_detailed(bp_name, client=admin).status_code == HTTPStatus.NO_CONTENT
    step("delete_host (force), delete_blueprint")
    print(f"client scenario: {len(steps)} steps passed")


if __name__ == "__main__":
    main()
