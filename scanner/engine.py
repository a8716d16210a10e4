"""The scanning engine: targets in, assessments out.

Plan (core) → send (prober) → assess (core), one endpoint at a time per task,
with a bounded number of endpoints in flight so memory stays flat however long
the target list is. The one-shot ``scan`` command, the API and the workers all
scan through here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from scanner.core.checks import Assessment, assess
from scanner.core.origin import Origin
from scanner.core.plan import Endpoint, PlanSettings, ProbeRequest, plan_probes, replan
from scanner.core.policy import Policy
from scanner.core.variants import (
    DEFAULT_THIRD_PARTY_HOSTS,
    ProbeOrigin,
    PublicSuffixes,
    VariantKind,
    VariantSettings,
    probe_origins,
)
from scanner.hostnames import uts46_host_encoder
from scanner.prober.execute import Prober
from scanner.prober.guard import target_policy
from scanner.prober.limits import DEFAULT_USER_AGENT, ProbeLimits
from scanner.settings import Settings

DEFAULT_ENDPOINT_CONCURRENCY = 32
# Distinct (endpoint origin, policy) pairs whose probe origins are kept.
ORIGIN_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint and the policy it should have."""

    endpoint: Endpoint
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How to scan, built once from settings and flags."""

    limits: ProbeLimits = field(default_factory=ProbeLimits)
    variants: VariantSettings = field(default_factory=VariantSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    origins: tuple[str, ...] = ()  # extra Origin values to probe (scan --origin)
    only_origins: bool = False  # probe exactly ``origins`` and nothing else
    endpoint_concurrency: int = DEFAULT_ENDPOINT_CONCURRENCY


def scan_options(settings: Settings) -> ScanOptions:
    """How to scan, from settings: the one mapping, used by `scan`, `explain`, the API and workers.

    Commands with flags apply them to the settings first (``dataclasses.replace``).
    """
    timeout = settings.timeout
    limits = ProbeLimits(
        connect_timeout=min(settings.connect_timeout, timeout),
        read_timeout=timeout,
        total_timeout=timeout,
        retries=settings.retries,
        global_concurrency=settings.concurrency,
        per_host_concurrency=settings.per_host,
        per_host_rate=settings.per_host_rate,
        endpoint_budget=settings.endpoint_budget,
        unresponsive_after=settings.unresponsive_after,
        kept_header_bytes=settings.probe_header_bytes,
        user_agent=settings.user_agent or DEFAULT_USER_AGENT,
        ca_bundle=settings.ca_bundle,
        verify_tls=not settings.insecure,
        target_policy=target_policy(settings),
    )
    variants = VariantSettings(
        attacker_domain=settings.attacker_domain,
        third_party_hosts=settings.third_party_hosts or DEFAULT_THIRD_PARTY_HOSTS,
    )
    return ScanOptions(limits=limits, variants=variants)


def new_token() -> str:
    """The random part of attacker origins: short, lowercase, valid in a host label."""
    return "cs" + secrets.token_hex(4)


class Engine:
    """Scans targets with one shared prober (one connection pool, one set of limits)."""

    def __init__(self, options: ScanOptions, suffixes: PublicSuffixes) -> None:
        self.options = options
        self.suffixes = suffixes
        self._prober = Prober(options.limits)
        # Origins depend on the endpoint's origin, the policy and the token, not
        # its path: thousands of endpoints on one API share one computation.
        self._origins: dict[tuple[str, Policy, str], tuple[tuple[ProbeOrigin, ...], str]] = {}
        self._plans: dict[tuple[object, ...], tuple[ProbeRequest, ...]] = {}

    async def __aenter__(self) -> Engine:
        await self._prober.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._prober.__aexit__(None, None, None)

    def _plan(self, target: Target, token: str) -> tuple[ProbeRequest, ...]:
        """The probes for ``target``: planned once per origin, method, headers and policy,
        then rebased onto each endpoint's URL (``core.plan.replan``)."""
        endpoint = target.endpoint
        key = (
            "/".join(endpoint.url.split("/", 3)[:3]),
            endpoint.method,
            endpoint.headers,
            target.policy,
            token,
        )
        template = self._plans.get(key)
        if template is None:
            origins, own = self._origins_and_self(target, token)
            template = plan_probes(
                endpoint,
                target.policy,
                origins,
                token=token,
                settings=self.options.plan,
                target_origin=own,
            )
            if len(self._plans) >= ORIGIN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = template
            return (
                template
                if template[0].url == endpoint.url
                else replan(template, endpoint.url, token)
            )
        return replan(template, endpoint.url, token)

    def origins_for(self, target: Target, token: str) -> tuple[ProbeOrigin, ...]:
        return self._origins_and_self(target, token)[0]

    def _origins_and_self(self, target: Target, token: str) -> tuple[tuple[ProbeOrigin, ...], str]:
        """The origins to probe ``target`` with, and the serialised origin of its URL."""
        url = target.endpoint.url
        key = ("/".join(url.split("/", 3)[:3]), target.policy, token)
        cached = self._origins.get(key)
        if cached is None:
            own = Origin.from_url(url, encode_host=uts46_host_encoder).serialize()
            cached = (self._origins_for(target, token), own)
            if len(self._origins) >= ORIGIN_CACHE_SIZE:
                self._origins.pop(next(iter(self._origins)))
            self._origins[key] = cached
        return cached

    def _origins_for(self, target: Target, token: str) -> tuple[ProbeOrigin, ...]:
        custom = tuple(self._custom(target.policy, value) for value in self.options.origins)
        if self.options.only_origins:
            return custom
        generated = probe_origins(
            target.endpoint.url,
            target.policy,
            suffixes=self.suffixes,
            token=token,
            settings=self.options.variants,
            encode_host=uts46_host_encoder,
        )
        known = {o.value for o in generated}
        return generated + tuple(o for o in custom if o.value not in known)

    @staticmethod
    def _custom(policy: Policy, value: str) -> ProbeOrigin:
        if value == "null":
            origin = Origin.null()
        else:
            origin = Origin.parse(value, encode_host=uts46_host_encoder)
        if policy.allows(origin):
            return ProbeOrigin(value, VariantKind.ALLOWED, trusted=True, note="given with --origin")
        return ProbeOrigin(value, VariantKind.CUSTOM, note="given with --origin")

    async def assess(self, target: Target, *, token: str | None = None) -> Assessment:
        """Probe one endpoint and judge it. Target faults become data, never exceptions."""
        token = token or new_token()
        plan = self._plan(target, token)
        observations = await self._prober.send_all(plan)
        return assess(target.endpoint, target.policy, observations)

    async def scan(self, targets: Iterable[Target]) -> AsyncIterator[Assessment]:
        """Assess every target, yielding each assessment as soon as it is done.

        At most ``endpoint_concurrency`` endpoints are in flight; the rest wait
        in the iterator, so memory does not grow with the number of targets.
        """
        token = new_token()
        limit = max(1, self.options.endpoint_concurrency)
        pending: set[asyncio.Task[Assessment]] = set()
        iterator = iter(targets)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < limit:
                    try:
                        target = next(iterator)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.add(asyncio.create_task(self.assess(target, token=token)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
