"""Every rule against a real server: the demo target, probed over loopback by the engine.

One test per demo path. Each asserts that the path's expected findings are
reported (rule, origin class, severity, and the origin that proves it among
the evidence), that nothing else is, and that the probes really reached the
server, so "no finding" can never mean "no response".
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scanner.core.catalogue import CATALOGUE
from scanner.core.checks import Assessment, ProbeResult
from scanner.core.findings import Finding
from scanner.core.plan import Endpoint, ProbeKind
from scanner.core.variants import VariantKind
from scanner.demo import APP_ORIGIN, DEMO_CASES, DemoCase, ExpectedFinding, case_for
from scanner.engine import Engine, ScanOptions, Target
from scanner.hostnames import default_public_suffixes
from scanner.prober.limits import ProbeLimits

# Fixed, so expected attacker origins can be written down (https://{token}acme.test).
TOKEN = "cs0demo0"
BROKEN = [pytest.param(case, id=case.path) for case in DEMO_CASES if not case.correct]
CORRECT = [pytest.param(case, id=case.path) for case in DEMO_CASES if case.correct]


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    # No retries: a demo path that resets a connection is a bug to see, not to paper over.
    options = ScanOptions(limits=ProbeLimits(retries=0, trust_env=False, total_timeout=10))
    async with Engine(options, default_public_suffixes()) as running:
        yield running


async def scan(engine: Engine, base: str, case: DemoCase) -> Assessment:
    target = Target(Endpoint(base + case.path, case.method), case.policy())
    assessment = await engine.assess(target, token=TOKEN)
    failed = [f"{o.request.key}: {o.error} {o.error_detail}" for o in assessment.errors]
    assert not failed, f"{case.path}: probes got no response: {failed}"
    assert assessment.reachable
    return assessment


def describe(findings: tuple[Finding, ...] | list[Finding]) -> str:
    return "; ".join(f"{f.rule_id} [{f.severity}, {f.origin_class}]: {f.summary}" for f in findings)


def check_expected(case: DemoCase, assessment: Assessment, expected: ExpectedFinding) -> None:
    matching = [f for f in assessment.findings if f.rule_id == expected.rule_id]
    got = describe(assessment.findings) or "nothing"
    assert matching, f"{case.path}: expected {expected.rule_id}, got: {got}"
    assert len(matching) == 1, (
        f"{case.path}: {expected.rule_id} reported twice: {describe(matching)}"
    )
    finding = matching[0]
    assert finding.origin_class == expected.origin_class
    assert finding.severity is expected.severity, (
        f"{case.path}: {expected.rule_id} is {finding.severity}, expected {expected.severity}"
    )
    proof = expected.proof_for(TOKEN)
    origins = [e.origin for e in finding.evidence]
    assert proof in origins, (
        f"{case.path}: {proof} not in the evidence of {expected.rule_id}: {origins}"
    )
    assert finding.endpoint_url.endswith(case.path)
    assert finding.endpoint_method == case.method


@pytest.mark.parametrize("case", BROKEN)
async def test_misconfigured_path_is_reported_exactly(
    engine: Engine, demo_base: str, case: DemoCase
) -> None:
    assessment = await scan(engine, demo_base, case)
    for expected in case.expected:
        check_expected(case, assessment, expected)
    unexpected = [f for f in assessment.findings if f.rule_id not in case.rule_ids]
    assert not unexpected, f"{case.path}: unexpected findings: {describe(unexpected)}"


@pytest.mark.parametrize("case", CORRECT)
async def test_correct_path_has_no_finding(engine: Engine, demo_base: str, case: DemoCase) -> None:
    assessment = await scan(engine, demo_base, case)
    assert assessment.findings == (), f"{case.path}: {describe(assessment.findings)}"


def simple_probe(assessment: Assessment, origin: str) -> ProbeResult:
    return next(
        p
        for p in assessment.probes
        if p.observation.request.kind is ProbeKind.SIMPLE
        and p.observation.request.origin.value == origin
    )


def attacker_probe(assessment: Assessment) -> ProbeResult:
    return next(
        p
        for p in assessment.probes
        if p.observation.request.kind is ProbeKind.SIMPLE
        and p.observation.request.origin.kind is VariantKind.ARBITRARY
    )


@pytest.mark.parametrize("path", ["/good", "/good-put"])
async def test_correct_allowlist_serves_its_front_end_and_nobody_else(
    engine: Engine, demo_base: str, path: str
) -> None:
    # The positive control behind "no finding": the front end really can read, with
    # cookies and (for PUT) through its preflight, and an attacker really cannot.
    assessment = await scan(engine, demo_base, case_for(path))
    legit = simple_probe(assessment, APP_ORIGIN)
    assert legit.verdict_with_credentials is not None
    assert legit.verdict_with_credentials.readable
    # /good's front end sends custom headers, /good-put's uses PUT: both go through a preflight.
    assert legit.verdict_with_credentials.preflight_needed
    foreign = attacker_probe(assessment)
    assert foreign.verdict is not None
    assert not foreign.verdict.readable
    assert foreign.verdict_with_credentials is not None
    assert not foreign.verdict_with_credentials.readable


async def test_public_endpoint_is_readable_by_anyone_without_credentials(
    engine: Engine, demo_base: str
) -> None:
    assessment = await scan(engine, demo_base, case_for("/good-public"))
    foreign = attacker_probe(assessment)
    assert foreign.verdict is not None
    assert foreign.verdict.readable
    assert foreign.verdict_with_credentials is not None
    assert not foreign.verdict_with_credentials.readable


async def test_closed_endpoint_is_readable_by_nobody(engine: Engine, demo_base: str) -> None:
    assessment = await scan(engine, demo_base, case_for("/closed"))
    simple = [p for p in assessment.probes if p.observation.request.kind is ProbeKind.SIMPLE]
    assert simple
    assert not any(p.verdict and p.verdict.readable for p in simple if _cross_origin(p))


def _cross_origin(result: ProbeResult) -> bool:
    return result.observation.request.origin.kind is not VariantKind.SELF


def test_demo_cases_cover_every_rule() -> None:
    # The demo is the integration suite's coverage: a rule without a demo path
    # would never be exercised over real sockets.
    covered = {rule for case in DEMO_CASES for rule in case.rule_ids}
    missing = sorted(set(CATALOGUE) - covered)
    assert not missing, f"rules without a demo path: {missing}"
