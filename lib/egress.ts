import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

/**
 * The egress policy (SSRF guard): which webhook targets the service may
 * connect to. Pure: the DNS lookups and the connection that enforce it live in
 * activities/egress.ts. Checked when a config is saved (when the host is
 * decidable then) and on every connection a delivery opens.
 */

/** Why an address is refused; the words appear in 400 answers and log rows. */
export type RefusedKind =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unique-local'
  | 'multicast'
  | 'broadcast'
  | 'shared (carrier-grade NAT)'
  | 'benchmarking'
  | 'documentation'
  | 'reserved';

/** `description` completes "<address> is …"; `reason` is that sentence. */
export type AddressClass = { public: true } | { public: false; kind: RefusedKind; range: string; description: string; reason: string };

interface SpecialRange {
  network: string;
  prefix: number;
  kind: RefusedKind;
  note?: string;
  /** built once: the CIDR match itself is node's */
  list: BlockList;
}

function range(family: 'ipv4' | 'ipv6', cidr: string, kind: RefusedKind, note?: string): SpecialRange {
  const [network, prefix] = cidr.split('/');
  const list = new BlockList();
  list.addSubnet(network, Number(prefix), family);
  return { network, prefix: Number(prefix), kind, note, list };
}

// IANA IPv4 Special-Purpose Address Registry; first match wins.
const IPV4_RANGES: SpecialRange[] = [
  range('ipv4', '0.0.0.0/32', 'unspecified'),
  range('ipv4', '0.0.0.0/8', 'reserved', '"this network"'),
  range('ipv4', '10.0.0.0/8', 'private'),
  range('ipv4', '100.64.0.0/10', 'shared (carrier-grade NAT)'),
  range('ipv4', '127.0.0.0/8', 'loopback'),
  range('ipv4', '169.254.0.0/16', 'link-local', 'cloud metadata services live at 169.254.169.254'),
  range('ipv4', '172.16.0.0/12', 'private'),
  range('ipv4', '192.0.0.0/24', 'reserved', 'IETF protocol assignments'),
  range('ipv4', '192.0.2.0/24', 'documentation'),
  range('ipv4', '192.88.99.0/24', 'reserved', '6to4 relay anycast'),
  range('ipv4', '192.168.0.0/16', 'private'),
  range('ipv4', '198.18.0.0/15', 'benchmarking'),
  range('ipv4', '198.51.100.0/24', 'documentation'),
  range('ipv4', '203.0.113.0/24', 'documentation'),
  range('ipv4', '224.0.0.0/4', 'multicast'),
  range('ipv4', '255.255.255.255/32', 'broadcast'),
  range('ipv4', '240.0.0.0/4', 'reserved', 'future use'),
];

// IANA IPv6 Special-Purpose Address Registry (the ranges that embed an IPv4 address are handled before these).
const IPV6_RANGES: SpecialRange[] = [
  range('ipv6', '::/128', 'unspecified'),
  range('ipv6', '::1/128', 'loopback'),
  range('ipv6', '::ffff:0:0:0/96', 'reserved', 'IPv4-translated'),
  range('ipv6', '64:ff9b:1::/48', 'reserved', 'local-use NAT64'),
  range('ipv6', '100::/64', 'reserved', 'discard-only'),
  range('ipv6', '2001::/32', 'reserved', 'Teredo tunnelling'),
  range('ipv6', '2001:2::/48', 'benchmarking'),
  range('ipv6', '2001::/23', 'reserved', 'IETF protocol assignments'),
  range('ipv6', '2001:db8::/32', 'documentation'),
  range('ipv6', '3fff::/20', 'documentation'),
  range('ipv6', 'fc00::/7', 'unique-local'),
  range('ipv6', 'fe80::/10', 'link-local'),
  range('ipv6', 'fec0::/10', 'private', 'deprecated site-local'),
  range('ipv6', 'ff00::/8', 'multicast'),
];
const GLOBAL_UNICAST_V6 = range('ipv6', '2000::/3', 'reserved');

/** a host without the brackets of an IPv6 literal */
const bare = (host: string) => host.replace(/^\[(.*)\]$/, '$1');
const article = (kind: string) => (/^([aeio]|un(?!i))/.test(kind) ? 'an' : 'a');

/** "a loopback address (127.0.0.0/8)" */
const describe = (r: SpecialRange) => `${article(r.kind)} ${r.kind} address (${r.network}/${r.prefix}${r.note ? `, ${r.note}` : ''})`;

function refused(address: string, kind: RefusedKind, range: string, description: string): AddressClass {
  return { public: false, kind, range, description, reason: `${address} is ${description}` };
}

const refusedBy = (r: SpecialRange, address: string, embedded?: { ipv4: string; how: string }) =>
  refused(address, r.kind, `${r.network}/${r.prefix}`, embedded ? `${embedded.how} IPv6 of ${embedded.ipv4}, ${describe(r)}` : describe(r));

/** The eight 16-bit groups of an IPv6 address (valid per net.isIPv6, zone id stripped). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1].split('.').map(Number);
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const parse = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  return tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
}

const ipv4Of = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;

/** An IPv4 address carried inside an IPv6 one, and how; these are refused whenever the IPv4 address would be. */
function embeddedIPv4(g: number[]): { ipv4: string; how: string; alwaysRefused?: boolean } | undefined {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return { ipv4: ipv4Of(g[6], g[7]), how: 'IPv4-mapped' };
  // ::a.b.c.d, deprecated since 2006 (RFC 4291): nothing legitimate is reached this way
  if (zeros(0, 6) && (g[6] !== 0 || g[7] > 1)) return { ipv4: ipv4Of(g[6], g[7]), how: 'IPv4-compatible (deprecated)', alwaysRefused: true };
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return { ipv4: ipv4Of(g[6], g[7]), how: 'NAT64 (64:ff9b::/96)' };
  if (g[0] === 0x2002) return { ipv4: ipv4Of(g[1], g[2]), how: '6to4 (2002::/16)' };
  return undefined;
}

const ipv4Range = (address: string) => IPV4_RANGES.find((r) => r.list.check(address, 'ipv4'));

/**
 * Public, or refused with the reason. Accepts IPv4 and IPv6 literals (IPv6 with or
 * without brackets, with or without a zone id); anything else is refused as not an address.
 */
export function classifyAddress(input: string): AddressClass {
  const address = bare(input).replace(/%.*$/, '');
  if (isIPv4(address)) {
    const hit = ipv4Range(address);
    return hit ? refusedBy(hit, address) : { public: true };
  }
  if (!isIPv6(address)) return refused(input, 'reserved', '', 'not an IP address');
  const embedded = embeddedIPv4(ipv6Groups(address));
  if (embedded) {
    const hit = ipv4Range(embedded.ipv4);
    if (hit) return refusedBy(hit, address, embedded);
    if (embedded.alwaysRefused) return refused(address, 'reserved', '::/96', `${embedded.how} IPv6 of ${embedded.ipv4}`);
    return { public: true };
  }
  const hit = IPV6_RANGES.find((r) => r.list.check(address, 'ipv6'));
  if (hit) return refusedBy(hit, address);
  if (!GLOBAL_UNICAST_V6.list.check(address, 'ipv6')) return refused(address, 'reserved', '2000::/3', 'a reserved address (outside global unicast 2000::/3)');
  return { public: true };
}

// ---------------------------------------------------------------- policy

export interface EgressPolicy {
  /** ALERTS_ALLOW_PRIVATE_NETWORKS: every address is allowed (development) */
  allowPrivateNetworks: boolean;
  /** NODE_ENV=production: plain http:// only to hosts allowed explicitly */
  production: boolean;
  /** ALERTS_EGRESS_ALLOW hosts, matched against the URL's host as written: names (lower case, no trailing dot) and IP literals (canonical, no brackets) */
  allowedHosts: Set<string>;
  /** ALERTS_EGRESS_ALLOW `*.example.internal`: any subdomain (stored as `.example.internal`) */
  allowedSuffixes: string[];
  /** ALERTS_EGRESS_ALLOW CIDRs, matched against addresses: IP-literal hosts and what names resolve to */
  allowedNetworks: BlockList;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

const normalizeName = (host: string) => host.toLowerCase().replace(/\.$/, '');
/** an IP literal the way WHATWG URL parsing writes a URL's host (127.1 -> 127.0.0.1, ::FFFF:127.0.0.1 -> ::ffff:7f00:1) */
const canonicalIp = (ip: string) => bare(new URL(`http://${isIPv6(ip) ? `[${ip}]` : ip}/`).hostname);

/**
 * The policy from ALERTS_EGRESS_ALLOW (comma-separated hosts, `*.domain`
 * wildcards or CIDRs), ALERTS_ALLOW_PRIVATE_NETWORKS and NODE_ENV. A host entry
 * (a name or an IP address) matches a URL whose host is written that way; a CIDR
 * matches addresses, so `10.0.0.5/32` allows any name that resolves there.
 * Throws on an entry it cannot read, naming it.
 */
export function parseEgressPolicy(options: { allow?: string; allowPrivateNetworks?: boolean; production?: boolean } = {}): EgressPolicy {
  const policy: EgressPolicy = {
    allowPrivateNetworks: options.allowPrivateNetworks ?? false,
    production: options.production ?? false,
    allowedHosts: new Set(),
    allowedSuffixes: [],
    allowedNetworks: new BlockList(),
  };
  for (const raw of (options.allow ?? '').split(',')) {
    const entry = bare(raw.trim());
    if (!entry) continue;
    const slash = entry.indexOf('/');
    if (slash >= 0) {
      const network = entry.slice(0, slash);
      const prefixText = entry.slice(slash + 1);
      const family = isIP(network);
      const prefix = Number(prefixText);
      if (!family || !/^\d{1,3}$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) {
        throw new Error(`ALERTS_EGRESS_ALLOW: "${raw.trim()}" is not a CIDR (like 10.1.0.0/16 or fd00:1::/64)`);
      }
      policy.allowedNetworks.addSubnet(network, prefix, family === 4 ? 'ipv4' : 'ipv6');
    } else if (isIP(entry)) {
      policy.allowedHosts.add(canonicalIp(entry));
    } else if (entry.startsWith('*.') && HOST_NAME.test(normalizeName(entry.slice(2)))) {
      policy.allowedSuffixes.push(`.${normalizeName(entry.slice(2))}`);
    } else if (HOST_NAME.test(normalizeName(entry))) {
      policy.allowedHosts.add(normalizeName(entry));
    } else {
      throw new Error(`ALERTS_EGRESS_ALLOW: "${raw.trim()}" is not a host name, *.domain, IP address or CIDR`);
    }
  }
  return policy;
}

/** Whether ALERTS_EGRESS_ALLOW lists this host (a URL's hostname) itself. */
export function isAllowedHost(policy: EgressPolicy, hostname: string): boolean {
  const host = bare(hostname);
  if (isIP(host)) return policy.allowedHosts.has(host.toLowerCase());
  const name = normalizeName(host);
  return policy.allowedHosts.has(name) || policy.allowedSuffixes.some((suffix) => name.endsWith(suffix));
}

/**
 * Why one address (resolved, or an IP-literal host) may not be connected to, or
 * null when it may: inside an allowed CIDR, every network open, or public.
 */
export function addressRefusal(policy: EgressPolicy, address: string): string | null {
  const refusal = refusedClass(policy, address);
  return refusal && refusal.reason;
}

function refusedClass(policy: EgressPolicy, address: string): Extract<AddressClass, { public: false }> | null {
  const ip = bare(address).replace(/%.*$/, '');
  const family = isIP(ip);
  if (family && policy.allowedNetworks.check(ip, family === 4 ? 'ipv4' : 'ipv6')) return null;
  if (policy.allowPrivateNetworks) return null;
  const verdict = classifyAddress(ip);
  return verdict.public ? null : verdict;
}

/** Why a host name that resolved to these addresses may not be connected to: every address must pass. */
export function resolvedRefusal(policy: EgressPolicy, hostname: string, addresses: readonly string[]): string | null {
  if (addresses.length === 0) return `${hostname} resolves to no address`;
  for (const address of addresses) {
    const refusal = refusedClass(policy, address);
    if (refusal) return `${hostname} resolves to ${address}, which is ${refusal.description}`;
  }
  return null;
}

/** What the scheme and host alone decide, before any DNS lookup. */
export type TargetVerdict =
  | { kind: 'refused'; reason: string }
  /** an IP literal that passed, or a host listed in ALERTS_EGRESS_ALLOW: no lookup needs checking */
  | { kind: 'allowed' }
  /** a host name: every address it resolves to must pass resolvedRefusal() */
  | { kind: 'check-addresses'; hostname: string };

const HTTP_IN_PRODUCTION = 'plain http:// is refused with NODE_ENV=production: use https://, or list the host in ALERTS_EGRESS_ALLOW';

/** The first check of a target (a URL, or undici's connect options): scheme, the production http:// rule, listed hosts, IP literals. */
export function checkTarget(policy: EgressPolicy, target: { protocol: string; hostname: string }): TargetVerdict {
  if (target.protocol !== 'https:' && target.protocol !== 'http:') return { kind: 'refused', reason: `${target.protocol}// targets are not allowed (https:// or http:// only)` };
  const hostname = bare(target.hostname);
  const literal = isIP(hostname.replace(/%.*$/, '')) !== 0;
  const listed = isAllowedHost(policy, hostname);
  const explicit = listed || (literal && policy.allowedNetworks.check(hostname.replace(/%.*$/, ''), isIPv4(hostname) ? 'ipv4' : 'ipv6'));
  if (policy.production && target.protocol === 'http:' && !explicit) return { kind: 'refused', reason: HTTP_IN_PRODUCTION };
  if (listed) return { kind: 'allowed' };
  if (literal) {
    const refusal = addressRefusal(policy, hostname);
    return refusal ? { kind: 'refused', reason: refusal } : { kind: 'allowed' };
  }
  return { kind: 'check-addresses', hostname };
}

/**
 * The scheme and host of a webhook URL template. The schema guarantees the host
 * is fixed text, so templates elsewhere are replaced by a placeholder. WHATWG URL
 * parsing turns every IPv4 spelling (2130706433, 0177.0.0.1, 0x7f.1, 127.1) into
 * a dotted quad, and IPv6 into its canonical form, before the policy sees it.
 */
export function webhookTarget(urlTemplate: string): URL {
  return new URL(urlTemplate.replace(/\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g, 'x'));
}

/** A target the policy refuses; `reason` says which rule. */
export class EgressRefusedError extends Error {
  readonly code = 'ERR_EGRESS_REFUSED';
  constructor(readonly reason: string) {
    super(`target refused by the egress policy: ${reason}`);
    this.name = 'EgressRefusedError';
  }
}

/** The refusal inside an error from a request (undici may wrap the connector's error), if there is one. */
export function egressRefusalOf(err: unknown): EgressRefusedError | undefined {
  for (let e = err as { code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e instanceof EgressRefusedError || e.code === 'ERR_EGRESS_REFUSED') return e as EgressRefusedError;
  }
  return undefined;
}
