import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

/**
 * The egress policy (SSRF guard): which webhook targets the service may
 * connect to. Pure: the DNS lookups and the connection that enforce it live in
 * runtime/egress.ts. Checked when a config is saved (when the host is
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
  /** ALERTS_EGRESS_ALLOW hosts, matched against the URL's host as written, both as judgedHost() writes them: names (lower case, IDNA, no trailing dot) and IP literals (canonical, no brackets) */
  allowedHosts: Set<string>;
  /** ALERTS_EGRESS_ALLOW `*.example.internal`: any subdomain (stored as `.example.internal`) */
  allowedSuffixes: string[];
  /** ALERTS_EGRESS_ALLOW CIDRs, matched against addresses: IP-literal hosts and what names resolve to */
  allowedNetworks: BlockList;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** A host as every rule of the policy judges it: an IP literal, a name, or neither. */
export type JudgedHost = { kind: 'ip'; ip: string } | { kind: 'name'; name: string } | { kind: 'invalid'; reason: string };

// what cannot be inside a host, so that `http://${host}/` below parses this host and nothing else
const NOT_IN_HOST = /[\u0000-\u0020/\\?#@:[\]\u007f]/;

/**
 * A host (a URL's hostname, undici's connect options, an ALERTS_EGRESS_ALLOW entry) in the one form
 * the rules compare: WHATWG URL host parsing (lower case, IDNA/UTS #46 as browsers do, every IPv4
 * spelling a dotted quad), then one trailing dot removed from a name (`localhost.` is `localhost`,
 * and DNS resolves them alike); a name ending in more than one dot is not a host.
 */
export function judgedHost(hostname: string): JudgedHost {
  const host = bare(hostname);
  const ip = host.replace(/%.*$/, ''); // a zone id (fe80::1%eth0) says nothing about the address
  if (isIP(ip)) return { kind: 'ip', ip: bare(new URL(`http://${isIPv6(ip) ? `[${ip}]` : ip}/`).hostname) };
  let parsed = '';
  try {
    if (!NOT_IN_HOST.test(host)) parsed = bare(new URL(`http://${host}/`).hostname);
  } catch {
    // not a host: refused below
  }
  if (isIP(parsed)) return { kind: 'ip', ip: parsed };
  if (/\.\.$/.test(parsed)) return { kind: 'invalid', reason: `${hostname.slice(0, 253)} ends in more than one dot, which is not a host name` };
  const name = parsed.replace(/\.$/, '');
  if (!name) return { kind: 'invalid', reason: `${hostname.slice(0, 253) || '(empty)'} is not a host name` };
  return { kind: 'name', name };
}

/** `localhost` and every name under it are this machine (RFC 6761), whatever DNS says or fails to say. */
const isLocalhostName = (name: string) => name === 'localhost' || name.endsWith('.localhost');
const LOCALHOST_ADDRESSES = ['127.0.0.1', '::1'];

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
      continue;
    }
    const wildcard = entry.startsWith('*.');
    const host = judgedHost(wildcard ? entry.slice(2) : entry);
    if (host.kind === 'name' && HOST_NAME.test(host.name) && wildcard) policy.allowedSuffixes.push(`.${host.name}`);
    else if ((host.kind === 'name' && HOST_NAME.test(host.name)) || (host.kind === 'ip' && !wildcard)) policy.allowedHosts.add(host.kind === 'ip' ? host.ip : host.name);
    else throw new Error(`ALERTS_EGRESS_ALLOW: "${raw.trim()}" is not a host name, *.domain, IP address or CIDR`);
  }
  return policy;
}

/** Whether ALERTS_EGRESS_ALLOW lists this host (a URL's hostname) itself. */
export function isAllowedHost(policy: EgressPolicy, hostname: string): boolean {
  return isListed(policy, judgedHost(hostname));
}

function isListed(policy: EgressPolicy, host: JudgedHost): boolean {
  if (host.kind === 'ip') return policy.allowedHosts.has(host.ip);
  if (host.kind === 'name') return policy.allowedHosts.has(host.name) || policy.allowedSuffixes.some((suffix) => host.name.endsWith(suffix));
  return false;
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

/** The first check of a target (a URL, or undici's connect options): scheme, the production http:// rule, listed hosts, IP literals, localhost names. */
export function checkTarget(policy: EgressPolicy, target: { protocol: string; hostname: string }): TargetVerdict {
  if (target.protocol !== 'https:' && target.protocol !== 'http:') return { kind: 'refused', reason: `${target.protocol}// targets are not allowed (https:// or http:// only)` };
  const host = judgedHost(target.hostname);
  if (host.kind === 'invalid') return { kind: 'refused', reason: host.reason };
  const listed = isListed(policy, host);
  const explicit = listed || (host.kind === 'ip' && policy.allowedNetworks.check(host.ip, isIPv4(host.ip) ? 'ipv4' : 'ipv6'));
  if (policy.production && target.protocol === 'http:' && !explicit) return { kind: 'refused', reason: HTTP_IN_PRODUCTION };
  if (listed) return { kind: 'allowed' };
  if (host.kind === 'ip') {
    const refusal = addressRefusal(policy, host.ip);
    return refusal ? { kind: 'refused', reason: refusal } : { kind: 'allowed' };
  }
  if (isLocalhostName(host.name)) {
    // judged as the loopback addresses it names, so a CIDR or ALERTS_ALLOW_PRIVATE_NETWORKS opens it as it would those
    for (const address of LOCALHOST_ADDRESSES) {
      const refusal = refusedClass(policy, address);
      if (refusal) return { kind: 'refused', reason: `${host.name} resolves to ${address}, which is ${refusal.description}; localhost and the names under it always mean this machine` };
    }
  }
  return { kind: 'check-addresses', hostname: host.name };
}

/**
 * Where the authority (user info, host and port) of a URL template ends, as WHATWG URL parsing (the
 * parser of `new URL` and of undici, so of every delivery) finds it in the URL the template renders:
 * tabs and newlines are dropped anywhere, every `/` and `\` after an http(s) scheme is skipped, the
 * authority runs to the first `/`, `\`, `?` or `#`, and the host starts after its last `@`. The text
 * before the first `{{` or `{%` renders as it is written, so the authority is known, and returned,
 * only when it ends before any markup; otherwise null: a template there could move the host.
 */
export function literalAuthority(urlTemplate: string): string | null {
  const markup = urlTemplate.search(/\{[{%]/);
  const literal = (markup < 0 ? urlTemplate : urlTemplate.slice(0, markup)).replace(/[\t\n\r]/g, '');
  const scheme = /^[\u0000-\u0020]*(https?):[/\\]*/i.exec(literal);
  if (!scheme) return null;
  const rest = literal.slice(scheme[0].length);
  const end = rest.search(/[/\\?#]/);
  if (end >= 0) return rest.slice(0, end);
  return markup < 0 ? rest.replace(/[\u0000-\u0020]+$/, '') : null;
}

/**
 * The scheme and host of a webhook URL template: the host a delivery of it will connect to. WHATWG
 * URL parsing turns every IPv4 spelling (2130706433, 0177.0.0.1, 0x7f.1, 127.1) into a dotted quad,
 * and IPv6 into its canonical form, before the policy sees it. Throws when the host is not fixed text
 * (the schema refuses those templates; this keeps the check honest for any other caller).
 */
export function webhookTarget(urlTemplate: string): URL {
  if (literalAuthority(urlTemplate) === null && /^[\u0000-\u0020]*https?:/i.test(urlTemplate.replace(/[\t\n\r]/g, ''))) {
    throw new Error('the URL\'s host is not fixed text: a template comes before the end of its host and port');
  }
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
