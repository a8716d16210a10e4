"""The check catalogue: every rule's stable id, title, explanation and fix.

Rule ids are a public contract (JSON output, SARIF rule ids, suppressions,
fingerprints): never rename one; add a new id instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.core.findings import Category
from scanner.core.severity import Severity

# The ruleset's revision, recorded on every run. Bump it whenever a change to
# the checks, the probe plan or the header normalisation can make the same
# target yield other findings or other header lines: the next run's
# differences are then reported as ``finding.rule_change``, never as
# regressions, so a scanner upgrade pages nobody.
RULES_REVISION = 1


@dataclass(frozen=True, slots=True)
class Remediation:
    """The fix, for the servers people actually run."""

    generic: str
    express: str
    nginx: str
    apache: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    category: Category
    severity: Severity  # the usual severity; a finding may be raised or lowered with reason
    description: str
    remediation: Remediation
    cwe: int | None = None


_ALLOWLIST = Remediation(
    generic=(
        "Compare the Origin header with an exact allowlist of full origins "
        "(scheme://host[:port]); echo it back only on an exact match, add 'Vary: Origin', "
        "and send 'Access-Control-Allow-Credentials: true' only for those origins."
    ),
    express=(
        "cors({ origin: ['https://app.example.com'], credentials: true }) — pass an array of "
        "exact origins (or a function doing an exact Set lookup), never `origin: true` or a "
        "regex built from a domain name."
    ),
    nginx=(
        "map $http_origin $cors_origin { default ''; 'https://app.example.com' $http_origin; } "
        "then add_header Access-Control-Allow-Origin $cors_origin always; "
        "add_header Vary Origin always;"
    ),
    apache=(
        'SetEnvIf Origin "^https://app\\.example\\.com$" CORS_ORIGIN=$0 then '
        'Header always set Access-Control-Allow-Origin "%{CORS_ORIGIN}e" env=CORS_ORIGIN and '
        "Header always merge Vary Origin"
    ),
)

_REGEX = Remediation(
    generic=(
        "Replace the pattern with an exact allowlist, or anchor it and escape dots: "
        "^https://([a-z0-9-]+\\.)*example\\.com$ — never a substring, prefix or suffix test."
    ),
    express=(
        "cors({ origin: ['https://app.example.com'] }) or "
        "origin: /^https:\\/\\/([a-z0-9-]+\\.)*example\\.com$/ — anchored, dots escaped."
    ),
    nginx=(
        'map $http_origin $cors_origin { default ""; '
        '"~^https://([a-z0-9-]+\\.)*example\\.com$" $http_origin; } with both anchors, '
        "then add_header Access-Control-Allow-Origin $cors_origin always;"
    ),
    apache=(
        'SetEnvIf Origin "^https://([a-z0-9-]+\\.)*example\\.com$" CORS_ORIGIN=$0 — '
        "anchored at both ends, dots escaped."
    ),
)

_NO_NULL = Remediation(
    generic=(
        "Never allow the origin 'null': sandboxed iframes, data: URLs and file: pages of any "
        "site send it. Remove 'null' from the allowlist."
    ),
    express="Remove 'null' from the origin list passed to cors(); do not use `origin: true`.",
    nginx="Do not map the value 'null' to an allowed origin.",
    apache='Make sure the SetEnvIf pattern cannot match "null".',
)

_HTTPS_ONLY = Remediation(
    generic="Allow only https:// origins; a network attacker can inject script into any http:// page.",
    express="List only https:// origins in cors({ origin: [...] }).",
    nginx="Match ^https:// in the map that selects the allowed origin.",
    apache='Anchor the SetEnvIf pattern on "^https://".',
)

_WILDCARD_CRED = Remediation(
    generic=(
        "Browsers refuse '*' with credentials. If credentialed clients exist, echo an "
        "allowlisted origin instead of '*'; if not, drop Access-Control-Allow-Credentials."
    ),
    express="cors({ origin: ['https://app.example.com'], credentials: true }) instead of origin: '*'.",
    nginx="Replace add_header Access-Control-Allow-Origin * with an allowlist map, or remove "
    "Access-Control-Allow-Credentials.",
    apache="Replace Header set Access-Control-Allow-Origin * with an allowlist, or remove "
    "Access-Control-Allow-Credentials.",
)

_WILDCARD_PUBLIC = Remediation(
    generic=(
        "'*' lets every site read the response. Keep it only for truly public, "
        "unauthenticated data; otherwise use an allowlist. Mark the endpoint public in its "
        "policy to accept it."
    ),
    express="cors({ origin: ['https://app.example.com'] }) instead of cors() (which sends '*').",
    nginx="Replace add_header Access-Control-Allow-Origin * always; with an allowlist map.",
    apache='Replace Header always set Access-Control-Allow-Origin "*" with an allowlist.',
)

_VARY = Remediation(
    generic=(
        "Whenever Access-Control-Allow-Origin depends on the request's Origin, send "
        "'Vary: Origin' on every response (including ones without CORS headers)."
    ),
    express="The cors package adds 'Vary: Origin' for non-'*' origins; custom code must call "
    "res.vary('Origin').",
    nginx="add_header Vary Origin always;",
    apache="Header always merge Vary Origin",
)

_PREFLIGHT_LISTS = Remediation(
    generic=(
        "Answer preflights with fixed lists: Access-Control-Allow-Methods with the methods the "
        "endpoint supports, Access-Control-Allow-Headers with the headers its clients send. "
        "Never echo Access-Control-Request-Method/-Headers."
    ),
    express="cors({ methods: ['GET','POST'], allowedHeaders: ['Content-Type','Authorization'] }) — "
    "without allowedHeaders the package reflects the request's headers.",
    nginx="add_header Access-Control-Allow-Methods 'GET, POST' always; "
    "add_header Access-Control-Allow-Headers 'Content-Type, Authorization' always;",
    apache='Header always set Access-Control-Allow-Methods "GET, POST" and '
    'Header always set Access-Control-Allow-Headers "Content-Type, Authorization"',
)

_MAX_AGE = Remediation(
    generic="Lower Access-Control-Max-Age to the policy's maximum (Chromium caps at 7200 s anyway), "
    "so policy changes reach browsers quickly.",
    express="cors({ maxAge: 600 })",
    nginx="add_header Access-Control-Max-Age 600 always;",
    apache='Header always set Access-Control-Max-Age "600"',
)

_PNA = Remediation(
    generic="Send 'Access-Control-Allow-Private-Network: true' only to allowlisted origins, "
    "only in answer to a preflight that asked for it.",
    express="Set the header in a middleware that first checks the Origin against the allowlist.",
    nginx="Only add Access-Control-Allow-Private-Network when $cors_origin is not empty.",
    apache="Set Access-Control-Allow-Private-Network with env=CORS_ORIGIN only.",
)

_PREFLIGHT_ROUTE = Remediation(
    generic="Route OPTIONS for this path to the CORS handler before authentication and method "
    "routing; answer 204 (or 200) with the CORS headers for allowlisted origins.",
    express="app.options('*', cors(corsOptions)) before other routes and before auth middleware.",
    nginx="if ($request_method = OPTIONS) { add_header … always; return 204; } in the location.",
    apache="RewriteCond %{REQUEST_METHOD} OPTIONS + RewriteRule ^ - [R=204,L] with "
    "Header always set for the CORS headers.",
)

_ERROR_PATH = Remediation(
    generic="Add CORS headers on every response, errors included (4xx/5xx): otherwise the front "
    "end sees an opaque network error instead of the status and body.",
    express="Register cors() before routes and error handlers, so errors carry the headers too.",
    nginx="Use add_header … always; — without 'always' nginx drops the header on 4xx/5xx.",
    apache="Use 'Header always set' — plain 'Header set' skips error responses.",
)

_LEGIT = Remediation(
    generic="Send back exactly the origin the browser sent (scheme://host[:port], lowercase, no "
    "trailing slash, no default port) for every origin the front ends use.",
    express="Check the origin list passed to cors(): exact strings, no trailing slashes.",
    nginx="Check the map's keys: exact origins, no trailing slash; and $http_origin echoed.",
    apache="Check the SetEnvIf pattern matches the exact origin and echo it with %{…}e.",
)

_INVALID = Remediation(
    generic="Send one Access-Control-Allow-Origin header with one value: '*' or one exact origin. "
    "Lists, several headers, paths and trailing slashes all make browsers block the response.",
    express="Pass an array to cors({ origin }) — the package picks the one matching value; do "
    "not set the header yourself as well (duplicates).",
    nginx="Remove duplicate add_header lines (and proxy_hide_header the upstream's copy).",
    apache="Use Header always set (not add/append), and unset the backend's copy.",
)

_RULES: tuple[Rule, ...] = (
    Rule(
        "reflect_any_origin_credentials",
        "Any origin can read responses with the user's credentials",
        Category.EXPOSURE,
        Severity.CRITICAL,
        "The server echoes an arbitrary Origin in Access-Control-Allow-Origin and sends "
        "Access-Control-Allow-Credentials: true: any web page the user visits can read this "
        "endpoint's responses as the logged-in user.",
        _ALLOWLIST,
        942,
    ),
    Rule(
        "reflect_any_origin",
        "Any origin can read responses",
        Category.EXPOSURE,
        Severity.HIGH,
        "The server echoes an arbitrary Origin in Access-Control-Allow-Origin (without "
        "credentials): any site can read what this endpoint returns to anonymous requests, "
        "including content reachable only from the victim's network.",
        _ALLOWLIST,
        942,
    ),
    Rule(
        "null_origin_trusted",
        "The 'null' origin is trusted",
        Category.EXPOSURE,
        Severity.HIGH,
        "Access-Control-Allow-Origin: null matches sandboxed iframes, data: and file: documents "
        "of any site: an attacker gets the origin 'null' at will.",
        _NO_NULL,
        942,
    ),
    Rule(
        "prefix_match",
        "Origins that merely start with a trusted origin are trusted",
        Category.EXPOSURE,
        Severity.HIGH,
        "The origin check accepts https://trusted.example.attacker.tld: it tests a prefix, "
        "not the whole origin. Anyone can register such a domain.",
        _REGEX,
        942,
    ),
    Rule(
        "suffix_match",
        "Origins that merely end with the trusted domain are trusted",
        Category.EXPOSURE,
        Severity.HIGH,
        "The origin check accepts https://attackerexample.com: it tests a suffix without a "
        "dot boundary. Anyone can register such a domain.",
        _REGEX,
        942,
    ),
    Rule(
        "unescaped_dot",
        "The origin pattern has an unescaped dot",
        Category.EXPOSURE,
        Severity.HIGH,
        "The origin check accepts https://appxexample.com for app.example.com: a regex dot "
        "matches any character. Anyone can register such a domain.",
        _REGEX,
        185,
    ),
    Rule(
        "any_subdomain_trusted",
        "Every subdomain is trusted",
        Category.EXPOSURE,
        Severity.MEDIUM,
        "Any subdomain of the trusted domain is allowed, though the policy does not say so: "
        "one subdomain takeover or XSS on any of them reads this endpoint.",
        _REGEX,
        942,
    ),
    Rule(
        "http_origin_trusted",
        "An http:// origin is trusted",
        Category.EXPOSURE,
        Severity.MEDIUM,
        "A plain-http origin is allowed: a network attacker (public Wi-Fi) can inject script "
        "into that origin and read this endpoint.",
        _HTTPS_ONLY,
        319,
    ),
    Rule(
        "special_chars_bypass",
        "Origins with special characters after the trusted host are trusted",
        Category.EXPOSURE,
        Severity.HIGH,
        "The origin check accepts https://trusted.example_.attacker.tld (or with ` ! $ & …): "
        "some browsers send such hosts, and the attacker owns them.",
        _REGEX,
        942,
    ),
    Rule(
        "third_party_origin_trusted",
        "A third-party hosting origin is trusted",
        Category.EXPOSURE,
        Severity.HIGH,
        "An origin on a shared hosting or sandbox domain (github.io, herokuapp.com, vercel.app, "
        "codepen.io, jsfiddle.net…) is allowed: anyone can publish a page there.",
        _ALLOWLIST,
        942,
    ),
    Rule(
        "localhost_trusted",
        "A localhost development origin is trusted",
        Category.EXPOSURE,
        Severity.MEDIUM,
        "http://localhost or http://127.0.0.1 is allowed in production: any program or page "
        "served locally on the user's machine can read this endpoint.",
        _ALLOWLIST,
        942,
    ),
    Rule(
        "wildcard_with_credentials",
        "Wildcard origin combined with credentials",
        Category.BREAKAGE,
        Severity.LOW,
        "Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true: browsers "
        "refuse the pair, so credentialed clients break; it is a sign of a hand-rolled policy "
        "that often turns into reflection.",
        _WILDCARD_CRED,
        942,
    ),
    Rule(
        "wildcard_public",
        "Any origin can read responses (wildcard)",
        Category.EXPOSURE,
        Severity.INFO,
        "Access-Control-Allow-Origin: * lets every site read responses to requests without "
        "credentials. Fine for public data; a leak for anything meant to stay internal.",
        _WILDCARD_PUBLIC,
        942,
    ),
    Rule(
        "missing_vary_origin",
        "Origin-dependent CORS headers without 'Vary: Origin'",
        Category.HARDENING,
        Severity.MEDIUM,
        "Access-Control-Allow-Origin changes with the Origin header but responses lack "
        "'Vary: Origin': a shared cache can serve one origin's response to another, leaking "
        "it or breaking legitimate front ends. Reported as low when only the refusals (the "
        "responses without Access-Control-Allow-Origin) lack it: a cached refusal can still "
        "break an allowed front end.",
        _VARY,
        524,
    ),
    Rule(
        "preflight_reflects_any_method",
        "Preflight allows any requested method",
        Category.HARDENING,
        Severity.LOW,
        "The preflight echoes Access-Control-Request-Method (even unusual ones like PROPFIND) "
        "in Access-Control-Allow-Methods: method restrictions are not enforced by CORS. "
        "Asked with no unusual header, so a server that refuses headers cannot hide it.",
        _PREFLIGHT_LISTS,
        942,
    ),
    Rule(
        "preflight_reflects_any_header",
        "Preflight allows any requested header",
        Category.HARDENING,
        Severity.LOW,
        "The preflight echoes Access-Control-Request-Headers (even random names) in "
        "Access-Control-Allow-Headers. Asked with the endpoint's own method, so a server "
        "that refuses unusual methods (Flask-CORS, aiohttp-cors) cannot hide it.",
        _PREFLIGHT_LISTS,
        942,
    ),
    Rule(
        "excessive_max_age",
        "Preflight results cached too long",
        Category.HARDENING,
        Severity.LOW,
        "Access-Control-Max-Age exceeds the policy's maximum: a tightened policy takes that "
        "long to reach browsers (Chromium caps at 7200 s, Firefox at 86400 s).",
        _MAX_AGE,
    ),
    Rule(
        "private_network_any_origin",
        "Private network access granted to any origin",
        Category.EXPOSURE,
        Severity.HIGH,
        "The preflight answers 'Access-Control-Allow-Private-Network: true' to an untrusted "
        "origin: public web pages may reach this private-network endpoint through the "
        "user's browser.",
        _PNA,
        942,
    ),
    Rule(
        "preflight_not_handled",
        "Preflight from a legitimate origin fails",
        Category.BREAKAGE,
        Severity.HIGH,
        "The preflight a legitimate front end sends for this endpoint's method and headers "
        "does not pass (non-2xx status, or missing CORS headers): the browser never sends the "
        "actual request.",
        _PREFLIGHT_ROUTE,
    ),
    Rule(
        "cors_missing_on_error",
        "CORS headers missing on error responses",
        Category.BREAKAGE,
        Severity.MEDIUM,
        "An error response (4xx/5xx) to a legitimate origin carries no usable CORS headers: "
        "the front end sees an opaque network error instead of the status and message.",
        _ERROR_PATH,
    ),
    Rule(
        "legit_origin_blocked",
        "A legitimate origin is blocked",
        Category.BREAKAGE,
        Severity.HIGH,
        "An origin the policy allows cannot read the response as its front end needs (with "
        "credentials when the policy allows them).",
        _LEGIT,
    ),
    Rule(
        "invalid_acao",
        "Invalid Access-Control-Allow-Origin value",
        Category.BREAKAGE,
        Severity.MEDIUM,
        "Access-Control-Allow-Origin holds several values, a list, a path or a trailing slash: "
        "browsers block every origin.",
        _INVALID,
    ),
)

CATALOGUE: dict[str, Rule] = {rule.id: rule for rule in _RULES}


def rule(rule_id: str) -> Rule:
    """The rule with this id (KeyError for an unknown id: a bug, not user input)."""
    return CATALOGUE[rule_id]
