import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Agent, buildConnector } from 'undici';
import { checkTarget, EgressRefusedError, isAllowedHost, judgedHost, resolvedRefusal, webhookTarget, type EgressPolicy } from '../lib/egress';

/**
 * The egress policy (lib/egress.ts) where it meets the network: the checked
 * connection every delivery uses, and the check of a config's URL when it is saved.
 */

/**
 * A `lookup` for net/tls.connect that resolves every address of the name, refuses
 * the name when any of them is refused, and hands the connection exactly the
 * addresses it checked: no second lookup, so no DNS-rebinding window. The name
 * looked up is the one the policy judged (judgedHost: `Hooks.Example.` is
 * `hooks.example`), the one a save looks up too.
 */
function checkedLookup(policy: EgressPolicy): LookupFunction {
  return (written, options, callback) => {
    const host = judgedHost(written);
    if (host.kind === 'invalid') return callback(new EgressRefusedError(host.reason), '', 0);
    const hostname = host.kind === 'ip' ? host.ip : host.name;
    dns.lookup(hostname, { all: true, verbatim: true }, (err, resolved) => {
      if (err) return callback(err, '', 0);
      // a host listed by name in ALERTS_EGRESS_ALLOW may resolve where the operator chose
      const refusal = isAllowedHost(policy, hostname) ? null : resolvedRefusal(policy, hostname, resolved.map((a) => a.address));
      if (refusal) return callback(new EgressRefusedError(refusal), '', 0);
      const usable = options.family ? resolved.filter((a) => a.family === options.family) : resolved;
      if (usable.length === 0) return callback(Object.assign(new Error(`${hostname} has no IPv${options.family} address`), { code: 'ENOTFOUND' }), '', 0);
      if (options.all) return callback(null, usable);
      return callback(null, usable[0].address, usable[0].family);
    });
  };
}

/**
 * The dispatcher of every webhook POST: one shared undici Agent (keep-alive pools
 * per origin, as before) whose connections open only to checked addresses. IP
 * literals are checked before connecting (net.connect does not look them up);
 * names are checked in the lookup. TLS still verifies the certificate against the
 * URL's host: undici sets SNI and the name to verify from it, not from the address.
 * Redirects are not followed (undici's request() never does without a redirect
 * interceptor, and this Agent has none): a 3xx is the receiver's answer.
 * `tls` adds TLS options (tests pass a private CA).
 */
export function createEgressDispatcher(policy: EgressPolicy, tls: ConnectionOptions = {}): Agent {
  const connectChecked = buildConnector({ ...tls, lookup: checkedLookup(policy) } as buildConnector.BuildOptions);
  return new Agent({
    connect(options, callback) {
      const verdict = checkTarget(policy, options);
      if (verdict.kind === 'refused') return callback(new EgressRefusedError(verdict.reason), null);
      return connectChecked(options, callback);
    },
  });
}

/** How long a save waits for DNS before it takes the name as not decidable now. */
const SAVE_LOOKUP_TIMEOUT_MS = 3_000;

/**
 * Why a webhook URL template may not be saved, or null. Decided when the host is
 * an IP literal or a name that resolves now; a name that does not resolve (yet)
 * is accepted, since receivers may be set up after their config. Every delivery
 * checks again on the addresses it connects to.
 */
export async function savedTargetRefusal(policy: EgressPolicy, urlTemplate: string): Promise<string | null> {
  let target: URL;
  try {
    target = webhookTarget(urlTemplate);
  } catch (err) {
    return (err as Error).message;
  }
  const verdict = checkTarget(policy, target);
  if (verdict.kind !== 'check-addresses') return verdict.kind === 'refused' ? verdict.reason : null;
  let timer: NodeJS.Timeout | undefined;
  const addresses = await Promise.race([
    dns.promises.lookup(verdict.hostname, { all: true, verbatim: true }).then((all) => all.map((a) => a.address)),
    new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), SAVE_LOOKUP_TIMEOUT_MS))),
  ])
    .catch(() => null)
    .finally(() => clearTimeout(timer));
  return addresses ? resolvedRefusal(policy, verdict.hostname, addresses) : null;
}
