import assert from 'node:assert/strict';
import { loadEnv } from '../../lib/env';
import { webhookSchema } from '../../lib/schemas';
import { renderString } from '../../lib/templates';
import {
  addressRefusal,
  checkTarget,
  classifyAddress,
  EgressRefusedError,
  egressRefusalOf,
  isAllowedHost,
  judgedHost,
  literalAuthority,
  parseEgressPolicy,
  resolvedRefusal,
  webhookTarget,
  type RefusedKind,
} from '../../lib/egress';

/** The egress policy without I/O: address classes, ALERTS_EGRESS_ALLOW, the production http:// rule, URL spellings. */

const refusedAs = (address: string, kind: RefusedKind) => {
  const verdict = classifyAddress(address);
  assert.equal(verdict.public, false, `${address} should be refused as ${kind}`);
  assert.equal(verdict.public === false && verdict.kind, kind, `${address}: ${verdict.public === false && verdict.reason}`);
  return verdict.public === false ? verdict.reason : '';
};
const isPublic = (address: string) => assert.deepEqual(classifyAddress(address), { public: true }, address);

/** what a webhook URL's host decides under a policy (the host as WHATWG URL parsing leaves it) */
const verdictOf = (url: string, policy = parseEgressPolicy()) => checkTarget(policy, webhookTarget(url));
const refusalOf = (url: string, policy = parseEgressPolicy()) => {
  const verdict = verdictOf(url, policy);
  assert.equal(verdict.kind, 'refused', `${url} should be refused, got ${JSON.stringify(verdict)}`);
  return verdict.kind === 'refused' ? verdict.reason : '';
};

describe('lib/egress', () => {
  describe('classifyAddress: IPv4', () => {
    it('refuses loopback 127.0.0.0/8, not only 127.0.0.1', () => {
      for (const a of ['127.0.0.1', '127.0.0.2', '127.255.255.254']) refusedAs(a, 'loopback');
    });

    it('refuses the private ranges 10/8, 172.16/12 and 192.168/16, and only them', () => {
      for (const a of ['10.0.0.1', '10.255.255.255', '172.16.0.1', '172.31.255.255', '192.168.0.1', '192.168.255.255']) refusedAs(a, 'private');
      for (const a of ['9.255.255.255', '11.0.0.0', '172.15.255.255', '172.32.0.0', '192.167.255.255', '192.169.0.0']) isPublic(a);
    });

    it('refuses link-local 169.254/16, naming the cloud metadata address', () => {
      const reason = refusedAs('169.254.169.254', 'link-local');
      assert.match(reason, /169\.254\.0\.0\/16.*metadata/);
      refusedAs('169.254.0.1', 'link-local');
    });

    it('refuses unspecified, "this network", broadcast and multicast', () => {
      refusedAs('0.0.0.0', 'unspecified');
      refusedAs('0.1.2.3', 'reserved');
      refusedAs('255.255.255.255', 'broadcast');
      for (const a of ['224.0.0.1', '239.255.255.250']) refusedAs(a, 'multicast');
    });

    it('refuses carrier-grade NAT 100.64/10, benchmarking, documentation and reserved ranges', () => {
      refusedAs('100.64.0.1', 'shared (carrier-grade NAT)');
      refusedAs('100.127.255.255', 'shared (carrier-grade NAT)');
      isPublic('100.63.255.255');
      isPublic('100.128.0.0');
      refusedAs('198.18.0.1', 'benchmarking');
      refusedAs('198.19.255.255', 'benchmarking');
      for (const a of ['192.0.2.1', '198.51.100.7', '203.0.113.9']) refusedAs(a, 'documentation');
      for (const a of ['192.0.0.8', '192.88.99.1', '240.0.0.1', '254.1.2.3']) refusedAs(a, 'reserved');
    });

    it('lets public addresses through', () => {
      for (const a of ['8.8.8.8', '1.1.1.1', '93.184.215.14', '172.217.0.1']) isPublic(a);
    });
  });

  describe('classifyAddress: IPv6', () => {
    it('refuses ::1, ::, fe80::/10, fc00::/7, ff00::/8 and deprecated site-local', () => {
      refusedAs('::1', 'loopback');
      refusedAs('[::1]', 'loopback');
      refusedAs('::', 'unspecified');
      refusedAs('fe80::1', 'link-local');
      refusedAs('febf:ffff::1', 'link-local');
      refusedAs('fe80::1%eth0', 'link-local');
      refusedAs('fc00::1', 'unique-local');
      refusedAs('fd00::1', 'unique-local');
      refusedAs('fd12:3456:789a::1', 'unique-local');
      refusedAs('ff02::1', 'multicast');
      refusedAs('ff05::1:3', 'multicast');
      refusedAs('fec0::1', 'private');
    });

    it('refuses IPv4-mapped addresses of refused IPv4 addresses, in either spelling', () => {
      assert.match(refusedAs('::ffff:127.0.0.1', 'loopback'), /IPv4-mapped IPv6 of 127\.0\.0\.1/);
      refusedAs('::ffff:7f00:1', 'loopback');
      refusedAs('::FFFF:7F00:0001', 'loopback');
      refusedAs('0:0:0:0:0:ffff:a9fe:a9fe', 'link-local');
      refusedAs('::ffff:10.0.0.1', 'private');
      refusedAs('::ffff:0.0.0.0', 'unspecified');
      isPublic('::ffff:8.8.8.8');
    });

    it('refuses every IPv4-compatible address (deprecated ::a.b.c.d)', () => {
      refusedAs('::127.0.0.1', 'loopback');
      refusedAs('::7f00:1', 'loopback');
      assert.match(refusedAs('::8.8.8.8', 'reserved'), /IPv4-compatible/);
    });

    it('refuses NAT64 64:ff9b::/96 and 6to4 2002::/16 when the IPv4 address inside is refused', () => {
      assert.match(refusedAs('64:ff9b::10.0.0.1', 'private'), /NAT64.*10\.0\.0\.1/);
      refusedAs('64:ff9b::a9fe:a9fe', 'link-local');
      refusedAs('64:ff9b::7f00:1', 'loopback');
      isPublic('64:ff9b::8.8.8.8');
      refusedAs('64:ff9b:1::1', 'reserved'); // local-use NAT64: its mapping is the network's own
      assert.match(refusedAs('2002:c0a8:0101::1', 'private'), /6to4.*192\.168\.1\.1/);
      refusedAs('2002:7f00:1::', 'loopback');
      refusedAs('2002:a9fe:a9fe::1', 'link-local');
      isPublic('2002:0808:0808::1');
    });

    it('refuses Teredo, benchmarking, documentation, discard and unallocated space', () => {
      refusedAs('2001::1', 'reserved');
      refusedAs('2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved');
      refusedAs('2001:2::1', 'benchmarking');
      refusedAs('2001:db8::1', 'documentation');
      refusedAs('3fff::1', 'documentation');
      refusedAs('100::1', 'reserved');
      refusedAs('4000::1', 'reserved');
      refusedAs('::ffff:0:1.2.3.4', 'reserved');
    });

    it('lets global unicast through', () => {
      for (const a of ['2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001:80b::200e']) isPublic(a);
    });

    it('refuses what is not an IP address', () => {
      assert.equal(classifyAddress('example.com').public, false);
      assert.equal(classifyAddress('999.1.1.1').public, false);
    });
  });

  describe('IPv4 literals in other spellings (WHATWG URL parsing makes them dotted quads first)', () => {
    const spellings: [string, string][] = [
      ['http://2130706433/', '127.0.0.1'],
      ['http://2852039166/latest/meta-data/', '169.254.169.254'],
      ['http://0177.0.0.1/', '127.0.0.1'],
      ['http://0251.0376.0251.0376/', '169.254.169.254'],
      ['http://0x7f.1/', '127.0.0.1'],
      ['http://0xa9fea9fe/', '169.254.169.254'],
      ['http://0x7f.0x0.0x0.0x2/', '127.0.0.2'],
      ['http://127.1/', '127.0.0.1'],
      ['http://10.1/', '10.0.0.1'],
      ['http://0/', '0.0.0.0'],
      ['http://017700000001/', '127.0.0.1'],
      ['http://１２７.０.０.１/', '127.0.0.1'],
      ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
      ['http://[0:0:0:0:0:ffff:169.254.169.254]/', '[::ffff:a9fe:a9fe]'],
    ];
    for (const [url, host] of spellings) {
      it(`${url} is ${host}, and refused`, () => {
        assert.equal(new URL(url).hostname, host);
        assert.equal(webhookTarget(url).hostname, host);
        refusalOf(url);
      });
    }

    it('reads the host of a URL template (the host is fixed text, the rest may be templates)', () => {
      const target = webhookTarget('https://0x7f.1:8443/alerts/{{ workflow.id }}?run={% if run.id %}{{ run.id }}{% endif %}');
      assert.equal(target.hostname, '127.0.0.1');
      assert.equal(target.protocol, 'https:');
      refusalOf('https://0x7f.1:8443/alerts/{{ workflow.id }}');
    });
  });

  describe('the host of a URL template is the one WHATWG URL parsing finds in what it renders', () => {
    // Each of these puts template markup where a delivery's URL parser reads the host (or the user
    // info or port before or around it): after extra slashes or backslashes, after a tab or newline
    // (dropped), in the user info (which moves where the host starts), in the port, or glued to the host.
    const bypasses = [
      'http:///{{ data.host }}/x',
      'http:///{% if true %}169.254.169.254{% endif %}/x',
      'https:////{{ data.host }}/x',
      'http://\\{{ data.host }}/x',
      'http://\\\\/{{ data.host }}/x',
      'http://\\/\\{{ data.host }}/x',
      'HTTP:///{{ data.host }}/x',
      'http://\t/{{ data.host }}/x',
      'http://\n/{{ data.host }}/x',
      'http:/\r/{{ data.host }}/x',
      'http://{{- data.host -}}/x',
      'http://{%- if true -%}169.254.169.254{%- endif -%}/x',
      'http://{{ data.user }}@169.254.169.254/',
      'http://user:{{ data.password }}@hooks.example.com/',
      'http://{% if true %}169.254.169.254/{% endif %}@hooks.example.com/',
      'http://{% if true %}169.254.169.254?{% endif %}@hooks.example.com/',
      'http://a@b@{{ data.host }}/',
      'http://hooks.example.com:{{ data.port }}/x',
      'http://1.2.3.4:{% if true %}@169.254.169.254{% endif %}/x',
      'http://hooks.example.com{{ data.suffix }}/x',
      'http://hooks.example.com\t{{ data.suffix }}/x',
      'http://{% raw %}{% endraw %}169.254.169.254/x',
      'http://{{ data.host }}',
    ];
    for (const url of bypasses) {
      it(`refuses ${JSON.stringify(url)} at save and never judges a host for it`, () => {
        const parsed = webhookSchema.safeParse({ url });
        assert.equal(parsed.success, false, `${JSON.stringify(url)} was accepted`);
        assert.match(parsed.error!.issues[0].message, /^url (host must not contain template expressions|must start with https:\/\/ or http:\/\/)/);
        assert.equal(literalAuthority(url), null);
        assert.throws(() => webhookTarget(url), /host is not fixed text/);
      });
    }

    it('refuses percent-encoding and braces in the authority, and judges the decoded host anyway', () => {
      for (const url of ['http://%31%36%39.254.169.254/x', 'http://169.254.169.254%2f@hooks.example.com/', 'http://user:p%40ss@hooks.example.com/', 'http://a{b}.example.com/']) {
        const parsed = webhookSchema.safeParse({ url });
        assert.equal(parsed.success, false, url);
        assert.match(parsed.error!.issues[0].message, /^url host must not contain template expressions/);
      }
      assert.equal(webhookTarget('http://%31%36%39.254.169.254/x').hostname, '169.254.169.254');
      assert.match(refusalOf('http://%31%36%39.254.169.254/x'), /^169\.254\.169\.254 is a link-local/);
    });

    // Literal hosts, however they are written: the host judged is the host every rendering connects to.
    const literal: [string, string][] = [
      ['https://hooks.example.com/alerts/{{ workflow.id }}', 'hooks.example.com'],
      ['https://hooks.example.com?run={{ run.id }}', 'hooks.example.com'],
      ['https://hooks.example.com#{{ run.id }}', 'hooks.example.com'],
      ['https://hooks.example.com:8443/{{ run.id }}', 'hooks.example.com'],
      ['https://bot@hooks.example.com/{{ run.id }}', 'hooks.example.com'],
      ['http:///hooks.example.com/{{ run.id }}', 'hooks.example.com'],
      ['http:\\\\\\hooks.example.com\\{{ run.id }}', 'hooks.example.com'],
      ['http://\t169.254.169.254/{{ run.id }}', '169.254.169.254'],
      ['http:///169.254.169.254/{{ run.id }}', '169.254.169.254'],
      ['http://a@b@169.254.169.254/{{ run.id }}', '169.254.169.254'],
      ['http://hooks.example.com/{% if true %}@169.254.169.254{% endif %}', 'hooks.example.com'],
      ['http://hooks.example.com/   {{- run.id }}', 'hooks.example.com'],
    ];
    const hostile = { id: 'x', host: '169.254.169.254', user: 'a@169.254.169.254', path: '/@169.254.169.254/', dots: '..', slash: '\\\\169.254.169.254' };
    for (const [url, host] of literal) {
      it(`${JSON.stringify(url)} is judged and delivered to ${host}`, () => {
        assert.equal(webhookTarget(url).hostname, host);
        // whatever the run data holds, the rendered URL's host is the one judged
        for (const value of Object.values(hostile)) {
          const rendered = renderString(url, { run: { id: value }, workflow: { id: value } }, 'url');
          assert.equal(new URL(rendered).hostname, host, `${url} with ${value}: ${rendered}`);
        }
      });
    }

    it('accepts those literal hosts at save, then the egress policy judges them', () => {
      // (the schema also wants the URL to start with http:// or https:// as written)
      for (const [url] of literal.filter(([u]) => /^https?:\/\//.test(u))) assert.equal(webhookSchema.safeParse({ url }).success, true, url);
      assert.match(refusalOf('http:///169.254.169.254/{{ run.id }}'), /^169\.254\.169\.254 is a link-local/);
      assert.match(refusalOf('http://a@b@169.254.169.254/{{ run.id }}'), /^169\.254\.169\.254 is a link-local/);
    });
  });

  describe('host names are normalised before every rule (judgedHost)', () => {
    it('lower case, IDNA as WHATWG does it, one trailing dot removed, IPv4 spellings as dotted quads', () => {
      assert.deepEqual(judgedHost('LOCALHOST.'), { kind: 'name', name: 'localhost' });
      assert.deepEqual(judgedHost('Hooks.Example.COM.'), { kind: 'name', name: 'hooks.example.com' });
      assert.deepEqual(judgedHost('ｌｏｃａｌｈｏｓｔ'), { kind: 'name', name: 'localhost' });
      assert.deepEqual(judgedHost('Bücher.example'), { kind: 'name', name: 'xn--bcher-kva.example' });
      assert.deepEqual(judgedHost('127.0.0.1.'), { kind: 'ip', ip: '127.0.0.1' });
      assert.deepEqual(judgedHost('0x7f.1'), { kind: 'ip', ip: '127.0.0.1' });
      assert.deepEqual(judgedHost('[::FFFF:127.0.0.1]'), { kind: 'ip', ip: '::ffff:7f00:1' });
      for (const bad of ['localhost..', 'a.example...', '.', '', 'a b', 'a/b', 'user@host']) assert.equal(judgedHost(bad).kind, 'invalid', bad);
    });

    const localhostNames = ['http://localhost./x', 'http://LOCALHOST./x', 'http://LocalHost/x', 'http://foo.localhost/x', 'http://foo.localhost./x', 'http://a.b.LOCALHOST./x', 'http://ｌｏｃａｌｈｏｓｔ/x'];
    for (const url of localhostNames) {
      it(`${url} is judged as localhost (loopback) before any lookup`, () => {
        assert.match(refusalOf(url, parseEgressPolicy({ allow: '127.0.0.1' })), /^([a-z.]*\.)?localhost resolves to 127\.0\.0\.1, which is a loopback address \(127\.0\.0\.0\/8\)/);
      });
    }

    it('refuses a name with more than one trailing dot', () => {
      for (const url of ['http://localhost../x', 'http://hooks.example.com../x', 'https://a.corp.example../x']) {
        assert.match(refusalOf(url, parseEgressPolicy({ allow: '*.corp.example' })), /ends in more than one dot/);
      }
      assert.match(checkTarget(parseEgressPolicy(), { protocol: 'http:', hostname: 'localhost..' }).kind, /^refused$/);
    });

    it('judges what the connector is handed the same way (undici passes the URL hostname as written)', () => {
      for (const hostname of ['localhost.', 'LOCALHOST.', 'foo.localhost.']) {
        assert.equal(checkTarget(parseEgressPolicy(), { protocol: 'http:', hostname }).kind, 'refused', hostname);
      }
      assert.deepEqual(checkTarget(parseEgressPolicy(), { protocol: 'https:', hostname: 'Hooks.Example.COM.' }), { kind: 'check-addresses', hostname: 'hooks.example.com' });
    });

    it('a localhost name opens as its loopback addresses would: listed by name, a CIDR of both, or every network', () => {
      assert.deepEqual(verdictOf('http://LOCALHOST./x', parseEgressPolicy({ allow: 'localhost' })), { kind: 'allowed' });
      assert.equal(verdictOf('http://foo.localhost./x', parseEgressPolicy({ allow: 'localhost' })).kind, 'refused', 'localhost does not list its subdomains');
      assert.deepEqual(verdictOf('http://localhost./x', parseEgressPolicy({ allow: '127.0.0.0/8,::1/128' })), { kind: 'check-addresses', hostname: 'localhost' });
      assert.match(refusalOf('http://localhost./x', parseEgressPolicy({ allow: '127.0.0.0/8' })), /^localhost resolves to ::1, which is a loopback address/);
      assert.deepEqual(verdictOf('http://foo.localhost/x', parseEgressPolicy({ allowPrivateNetworks: true })), { kind: 'check-addresses', hostname: 'foo.localhost' });
    });

    it('ALERTS_EGRESS_ALLOW matches names normalised the same way, and its entries are normalised too', () => {
      const policy = parseEgressPolicy({ allow: 'HOOKS.internal.,*.Corp.Example,bücher.example' });
      assert.deepEqual([...policy.allowedHosts].sort(), ['hooks.internal', 'xn--bcher-kva.example']);
      assert.deepEqual(policy.allowedSuffixes, ['.corp.example']);
      for (const url of ['https://hooks.internal/x', 'https://HOOKS.INTERNAL./x', 'https://a.CORP.example./x', 'https://BÜCHER.example./x']) {
        assert.deepEqual(verdictOf(url, policy), { kind: 'allowed' }, url);
      }
      assert.equal(isAllowedHost(policy, 'hooks.internal..'), false);
      assert.equal(isAllowedHost(policy, 'Hooks.Internal.'), true);
      assert.throws(() => parseEgressPolicy({ allow: 'hooks.internal..' }), /"hooks\.internal\.\."/);
      assert.throws(() => parseEgressPolicy({ allow: '*.10.0.0.1' }), /"\*\.10\.0\.0\.1"/);
    });
  });

  describe('parseEgressPolicy (ALERTS_EGRESS_ALLOW)', () => {
    it('reads hosts, *.domain wildcards, IPv4 and IPv6 addresses and CIDRs', () => {
      const policy = parseEgressPolicy({ allow: ' hooks.internal , *.corp.example, 10.20.0.0/16, fd00:1::/64, 127.0.0.1, [::1], Receiver.Local. ' });
      assert.deepEqual([...policy.allowedHosts].sort(), ['127.0.0.1', '::1', 'hooks.internal', 'receiver.local']);
      assert.deepEqual(policy.allowedSuffixes, ['.corp.example']);
      assert.equal(policy.allowedNetworks.check('10.20.3.4', 'ipv4'), true);
      assert.equal(policy.allowedNetworks.check('fd00:1::9', 'ipv6'), true);
      assert.equal(policy.allowPrivateNetworks, false);
      assert.equal(policy.production, false);
    });

    it('refuses an entry it cannot read, naming it', () => {
      for (const bad of ['10.0.0.0/33', 'fd00::/129', 'not a host', '10.0.0.0/x', 'http://hooks.internal', '*.']) {
        assert.throws(() => parseEgressPolicy({ allow: `hooks.internal,${bad}` }), (err: Error) => err.message.includes(`"${bad}"`), bad);
      }
    });

    it('an empty or absent list allows nothing extra', () => {
      for (const allow of [undefined, '', ' , ']) {
        const policy = parseEgressPolicy({ allow });
        assert.equal(policy.allowedHosts.size, 0);
        refusalOf('http://127.0.0.1/', policy);
      }
    });
  });

  describe('checkTarget and resolvedRefusal', () => {
    it('an allowed host is exactly that host: 127.0.0.1 does not open 127.0.0.2, ::ffff:127.0.0.1 or localhost', () => {
      const policy = parseEgressPolicy({ allow: '127.0.0.1' });
      assert.deepEqual(verdictOf('http://127.0.0.1:8080/x', policy), { kind: 'allowed' });
      assert.deepEqual(verdictOf('http://2130706433:8080/x', policy), { kind: 'allowed' }, 'the same host spelled in decimal');
      refusalOf('http://127.0.0.2/', policy);
      refusalOf('http://[::ffff:127.0.0.1]/', policy);
      // localhost is loopback by name (RFC 6761), whatever DNS answers or fails to
      assert.match(refusalOf('http://localhost/', policy), /^localhost resolves to 127\.0\.0\.1, which is a loopback address/);
      assert.match(resolvedRefusal(policy, 'localhost', ['127.0.0.1'])!, /^localhost resolves to 127\.0\.0\.1, which is a loopback address/);
    });

    it('a listed name is allowed whatever it resolves to; *.domain covers subdomains only', () => {
      const policy = parseEgressPolicy({ allow: 'hooks.internal,*.corp.example' });
      assert.deepEqual(verdictOf('https://hooks.internal/x', policy), { kind: 'allowed' });
      assert.deepEqual(verdictOf('https://HOOKS.internal./x', policy), { kind: 'allowed' });
      assert.deepEqual(verdictOf('https://a.b.corp.example/x', policy), { kind: 'allowed' });
      assert.equal(isAllowedHost(policy, 'corp.example'), false);
      assert.equal(isAllowedHost(policy, 'evilcorp.example'), false);
      assert.equal(isAllowedHost(policy, 'hooks.internal.evil.com'), false);
      assert.deepEqual(verdictOf('https://other.internal/x', policy), { kind: 'check-addresses', hostname: 'other.internal' });
    });

    it('a CIDR allows the addresses inside it, as literals or as what a name resolves to', () => {
      const policy = parseEgressPolicy({ allow: '10.20.0.0/16,fd00:1::/64' });
      assert.deepEqual(verdictOf('http://10.20.1.2/', policy), { kind: 'allowed' });
      assert.deepEqual(verdictOf('http://[fd00:1::5]/', policy), { kind: 'allowed' });
      refusalOf('http://10.21.0.1/', policy);
      assert.equal(resolvedRefusal(policy, 'svc.internal', ['10.20.9.9', 'fd00:1::2']), null);
      assert.match(resolvedRefusal(policy, 'svc.internal', ['10.20.9.9', '10.99.0.1'])!, /10\.99\.0\.1, which is a private address/);
    });

    it('a name is refused when any one of its addresses is refused', () => {
      const policy = parseEgressPolicy();
      assert.equal(resolvedRefusal(policy, 'hooks.example.com', ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']), null);
      assert.match(resolvedRefusal(policy, 'rebind.example', ['93.184.215.14', '169.254.169.254'])!, /^rebind\.example resolves to 169\.254\.169\.254, which is a link-local address/);
      assert.match(resolvedRefusal(policy, 'v6.example', ['::ffff:7f00:1'])!, /IPv4-mapped IPv6 of 127\.0\.0\.1/);
      assert.match(resolvedRefusal(policy, 'empty.example', [])!, /no address/);
    });

    it('ALERTS_ALLOW_PRIVATE_NETWORKS opens every address', () => {
      const policy = parseEgressPolicy({ allowPrivateNetworks: true });
      for (const url of ['http://127.0.0.1/', 'http://169.254.169.254/', 'http://[::1]/', 'http://10.0.0.1/', 'http://0.0.0.0/']) {
        assert.deepEqual(verdictOf(url, policy), { kind: 'allowed' }, url);
      }
      assert.equal(addressRefusal(policy, 'fd00::1'), null);
      assert.equal(resolvedRefusal(policy, 'localhost', ['127.0.0.1', '::1']), null);
    });

    it('with NODE_ENV=production, plain http:// goes only to hosts allowed explicitly', () => {
      const policy = parseEgressPolicy({ production: true, allow: 'hooks.internal,10.20.0.0/16' });
      assert.match(refusalOf('http://hooks.example.com/x', policy), /plain http:\/\/ is refused with NODE_ENV=production/);
      assert.match(refusalOf('http://93.184.215.14/x', policy), /plain http:\/\//);
      assert.deepEqual(verdictOf('https://hooks.example.com/x', policy), { kind: 'check-addresses', hostname: 'hooks.example.com' });
      assert.deepEqual(verdictOf('http://hooks.internal/x', policy), { kind: 'allowed' });
      assert.deepEqual(verdictOf('http://10.20.0.7/x', policy), { kind: 'allowed' });
      // ALERTS_ALLOW_PRIVATE_NETWORKS opens addresses, not plaintext
      assert.match(refusalOf('http://10.0.0.1/x', parseEgressPolicy({ production: true, allowPrivateNetworks: true })), /plain http:\/\//);
      // outside production http:// is fine
      assert.equal(verdictOf('http://hooks.example.com/x', parseEgressPolicy()).kind, 'check-addresses');
    });

    it('refuses schemes other than http and https', () => {
      assert.match(refusalOf('ftp://hooks.example.com/x'), /https:\/\/ or http:\/\/ only/);
      assert.equal(checkTarget(parseEgressPolicy(), { protocol: 'file:', hostname: '' }).kind, 'refused');
    });
  });

  describe('loadEnv', () => {
    it('builds the policy from ALERTS_EGRESS_ALLOW, ALERTS_ALLOW_PRIVATE_NETWORKS and NODE_ENV', () => {
      const env = loadEnv({ ALERTS_EGRESS_ALLOW: 'hooks.internal,10.0.0.0/8', ALERTS_ALLOW_PRIVATE_NETWORKS: 'true', NODE_ENV: 'production' });
      assert.equal(env.ALERTS_EGRESS_ALLOW, 'hooks.internal,10.0.0.0/8');
      assert.equal(env.egress.allowPrivateNetworks, true);
      assert.equal(env.egress.production, true);
      assert.ok(env.egress.allowedHosts.has('hooks.internal'));
      const plain = loadEnv({});
      assert.equal(plain.egress.allowPrivateNetworks, false);
      assert.equal(plain.egress.production, false);
      assert.equal(plain.egress.allowedHosts.size, 0);
    });

    it('refuses a bad ALERTS_EGRESS_ALLOW at start', () => {
      assert.throws(() => loadEnv({ ALERTS_EGRESS_ALLOW: '10.0.0.0/40' }), /invalid environment: ALERTS_EGRESS_ALLOW: "10\.0\.0\.0\/40"/);
    });
  });

  it('egressRefusalOf finds a refusal inside wrapping errors, and nothing in others', () => {
    const refusal = new EgressRefusedError('127.0.0.2 is a loopback address (127.0.0.0/8)');
    assert.equal(egressRefusalOf(refusal), refusal);
    assert.equal(egressRefusalOf(new Error('fetch failed', { cause: refusal })), refusal);
    assert.equal(egressRefusalOf(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), undefined);
    assert.equal(egressRefusalOf(undefined), undefined);
  });
});
