import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { signatureHeaders } from '../lib/signing';
import { AlertVerificationError, verifyAlert, type VerificationCheck } from '../lib/verify';
import { freePort } from '../runtime/host';
import { Receiver, type Received } from './support/receiver';
import { useStack, type TestStack } from './support/stack';

/**
 * The receiver kit of docs/receiving.md: verifyAlert, the CLI receiver (npm run receiver) and the
 * Node, Python and Go snippets in docs/receiving/, each run against a real alert sent by the
 * embedded stack. Python's and Go's Standard Webhooks libraries are installed on first run into
 * node_modules/.cache/receiver-kit (from PyPI and the Go module proxy), as a fresh CI machine needs.
 */

const ROOT = path.resolve(__dirname, '..');
const SNIPPETS = path.join(ROOT, 'docs', 'receiving');
const CACHE = path.join(ROOT, 'node_modules', '.cache', 'receiver-kit');
const PYTHON_PACKAGE = 'standardwebhooks==1.1.0';

const uid = () => randomBytes(5).toString('hex');
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** runs a command to its end (asynchronously: the embedded stack shares this event loop) */
function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string | undefined>; input?: string | Buffer; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' ? new Error(`${command} is not installed (or not on PATH)`) : err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** PYTHONPATH holding the standardwebhooks PyPI package, installed with pip --target once and cached */
async function pythonWithStandardWebhooks(): Promise<string> {
  const target = path.join(CACHE, `python-${PYTHON_PACKAGE.replace('==', '-')}`);
  if (fs.existsSync(path.join(target, 'standardwebhooks'))) return target;
  const version = await run('python3', ['--version']).catch(() => undefined);
  assert.ok(version?.code === 0, 'python3 is not installed: install Python 3.9+ with pip (e.g. apt-get install python3 python3-pip)');
  const staging = `${target}.partial-${uid()}`;
  const pip = (extra: string[]) => run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', '--target', staging, ...extra, PYTHON_PACKAGE], { timeoutMs: 120_000 });
  let install = await pip([]);
  // Debian's Python refuses pip installs outside a venv (PEP 668) unless told otherwise
  if (install.code !== 0 && /externally-managed-environment/.test(install.stderr)) install = await pip(['--break-system-packages']);
  assert.equal(install.code, 0, `pip could not install ${PYTHON_PACKAGE} from PyPI (is pip installed? apt-get install python3-pip):\n${install.stderr}`);
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(staging, target);
  return target;
}

/** docs/receiving/verify.go built with its go.mod (module proxy, GOFLAGS=-mod=mod), cached by source and Go version */
async function goVerifier(): Promise<string> {
  const version = await run('go', ['version']).catch(() => undefined);
  assert.ok(version?.code === 0, 'go is not installed: install Go 1.21 or newer (https://go.dev/dl/)');
  const hash = createHash('sha256').update(version.stdout);
  for (const file of ['verify.go', 'go.mod', 'go.sum']) hash.update(fs.readFileSync(path.join(SNIPPETS, file)));
  const binary = path.join(CACHE, `verify-go-${hash.digest('hex').slice(0, 16)}`);
  if (fs.existsSync(binary)) return binary;
  const env = { GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=mod`.trim(), GOTOOLCHAIN: 'local' };
  const build = await run('go', ['build', '-o', `${binary}.partial`, '.'], { cwd: SNIPPETS, env, timeoutMs: 120_000 });
  if (/requires go >=|toolchain/.test(build.stderr)) assert.fail(`the Go snippet needs a newer Go toolchain than ${version.stdout.trim()}:\n${build.stderr}`);
  assert.equal(build.code, 0, `go build of docs/receiving/verify.go failed (is proxy.golang.org reachable?):\n${build.stderr}`);
  fs.renameSync(`${binary}.partial`, binary);
  return binary;
}

/** asserts that `verify` throws an AlertVerificationError for `check`, with a message matching `message` */
function assertRejected(check: VerificationCheck, verify: () => unknown, message?: RegExp): void {
  assert.throws(verify, (err: unknown) => {
    assert.ok(err instanceof AlertVerificationError, `an AlertVerificationError, not ${String(err)}`);
    assert.equal(err.name, 'AlertVerificationError');
    assert.equal(err.check, check, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('receiver kit (verifyAlert, npm run receiver, the Node, Python and Go snippets)', function () {
  const body = JSON.stringify({ text: 'Orders sync failure: HTTP 500 from CRM', run: { id: 'run_789' } });
  const sentAt = Date.parse('2026-11-29T10:00:00Z');
  const now = new Date(sentAt + 2_000);

  describe('verifyAlert', () => {
    const secret = newSecret();
    const headers = signatureHeaders([secret], 'dlv_1', body, sentAt);

    it('accepts a real signature and returns the parsed body, from a string, a Buffer, headers in any case or a fetch Headers', () => {
      assert.deepEqual(verifyAlert(body, headers, secret, { now }), JSON.parse(body));
      assert.deepEqual(verifyAlert(Buffer.from(body), headers, [secret], { now }), JSON.parse(body));
      const shouted = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
      assert.deepEqual(verifyAlert(body, shouted, secret, { now }), JSON.parse(body));
      assert.deepEqual(verifyAlert(body, new Headers(headers), secret, { now }), JSON.parse(body));
    });

    it('accepts an alert signed during a rotation, whichever of the old and new secrets each side holds', () => {
      const [older, newer] = [newSecret(), newSecret()];
      const signedWithBoth = signatureHeaders([older, newer], 'dlv_2', body, sentAt);
      assert.equal(signedWithBoth['webhook-signature'].split(' ').length, 2);
      assert.deepEqual(verifyAlert(body, signedWithBoth, newer, { now }), JSON.parse(body));
      assert.deepEqual(verifyAlert(body, signedWithBoth, older, { now }), JSON.parse(body));
      const signedWithNewer = signatureHeaders([newer], 'dlv_2', body, sentAt);
      assert.deepEqual(verifyAlert(body, signedWithNewer, [older, newer], { now }), JSON.parse(body));
      assertRejected('bad_signature', () => verifyAlert(body, signedWithNewer, [older, newSecret()], { now }), /any of the 2 secrets/);
    });

    it('skips signatures of other versions or shapes in the list and still finds the v1 one', () => {
      const mixed = { ...headers, 'webhook-signature': `v1a,${randomBytes(32).toString('base64')} garbage v1,AAAA ${headers['webhook-signature']}` };
      assert.deepEqual(verifyAlert(body, mixed, secret, { now }), JSON.parse(body));
    });

    it('rejects a tampered body, a changed webhook-id and a wrong secret as bad_signature', () => {
      assertRejected('bad_signature', () => verifyAlert(body.replace('500', '501'), headers, secret, { now }), /raw body/);
      assertRejected('bad_signature', () => verifyAlert(body, { ...headers, 'webhook-id': 'dlv_other' }, secret, { now }));
      assertRejected('bad_signature', () => verifyAlert(body, headers, newSecret(), { now }), /the secret/);
      assertRejected('bad_signature', () => verifyAlert(body, { ...headers, 'webhook-signature': 'v1,' }, secret, { now }));
    });

    it('rejects an alert older or newer than the tolerance, and accepts one just inside it', () => {
      const at = (seconds: number) => new Date(sentAt + seconds * 1000);
      assert.ok(verifyAlert(body, headers, secret, { now: at(300) }));
      assert.ok(verifyAlert(body, headers, secret, { now: at(-300) }));
      assertRejected('timestamp_too_old', () => verifyAlert(body, headers, secret, { now: at(301) }), /301 s old, more than the 300 s tolerance/);
      assertRejected('timestamp_too_new', () => verifyAlert(body, headers, secret, { now: at(-301) }), /301 s in the future/);
      assertRejected('timestamp_too_old', () => verifyAlert(body, headers, secret, { now: at(31), toleranceSeconds: 30 }), /30 s tolerance/);
      // without `now`, the clock: an alert signed a moment ago passes, one signed an hour ago does not
      assert.ok(verifyAlert(body, signatureHeaders([secret], 'dlv_3', body), secret));
      assertRejected('timestamp_too_old', () => verifyAlert(body, signatureHeaders([secret], 'dlv_3', body, Date.now() - 3_600_000), secret));
    });

    it('rejects a timestamp that is not unix seconds as bad_timestamp', () => {
      for (const timestamp of ['', 'soon', '1764410400.5', '2026-11-29T10:00:00Z']) {
        if (timestamp === '') assertRejected('missing_header', () => verifyAlert(body, { ...headers, 'webhook-timestamp': timestamp }, secret, { now }));
        else assertRejected('bad_timestamp', () => verifyAlert(body, { ...headers, 'webhook-timestamp': timestamp }, secret, { now }), /not unix seconds/);
      }
    });

    it('rejects a request missing any of the three headers as missing_header, naming the header', () => {
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
        const { [name]: _dropped, ...rest } = headers;
        assertRejected('missing_header', () => verifyAlert(body, rest, secret, { now }), new RegExp(`the ${name} header is missing`));
      }
      assertRejected('missing_header', () => verifyAlert(body, new Headers(), secret, { now }));
    });

    it('rejects a secret that is not whsec_ + base64 of at least 24 bytes, or none, as bad_secret', () => {
      for (const bad of [secret.slice('whsec_'.length), 'whsec_', `whsec_${randomBytes(16).toString('base64')}`, 'whsec_not base64!']) {
        assertRejected('bad_secret', () => verifyAlert(body, headers, [secret, bad], { now }), /whsec_/);
      }
      assertRejected('bad_secret', () => verifyAlert(body, headers, [], { now }), /no secret/);
    });

    it('rejects a correctly signed body that is not JSON or not UTF-8 as bad_body', () => {
      const text = 'not json';
      assertRejected('bad_body', () => verifyAlert(text, signatureHeaders([secret], 'dlv_4', text, sentAt), secret, { now }), /not JSON/);
      const latin1 = Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x7d]); // {"é"} in Latin-1
      assertRejected('bad_body', () => verifyAlert(latin1, signatureHeaders([secret], 'dlv_4', latin1.toString('utf8'), sentAt), secret, { now }), /UTF-8/);
    });
  });

  describe('a real alert from the embedded stack', function () {
    let stack: TestStack;
    let receiver: Receiver;
    let secret: string;
    let alert: Received;
    let deliveryId: string;
    let pythonPath: string;
    let goBinary: string;
    const files = fs.mkdtempSync(path.join(os.tmpdir(), 'receiver-kit-'));
    const [headersFile, bodyFile] = [path.join(files, 'headers.json'), path.join(files, 'body.json')];

    before(async function () {
      this.timeout(240_000);
      // the stack and the toolchains start together: both are slow only on a first run
      [stack, pythonPath, goBinary] = await Promise.all([useStack(), pythonWithStandardWebhooks(), goVerifier()]);
      receiver = await Receiver.start();
      const workflowId = `wf_receiver_kit_${uid()}`;
      const hook = `/receiver-kit-${uid()}`;
      const created = await stack.api('POST', '/api/alerts/config', {
        config: {
          workflowId,
          name: 'Receiver kit',
          conditions: [{ type: 'failure' }],
          webhook: { url: `${receiver.url}${hook}`, timeoutMs: 5_000 },
          payload: { template: { text: '{{ workflow.name }} {{ condition }}: {{ error.message }}', run: '{{ run.id }}', café: 'crème brûlée ✓' } },
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      secret = created.body.secret;
      const posted = await stack.api('POST', '/api/events', {
        id: `evt_${uid()}`,
        type: 'run.failed',
        workflowId,
        runId: 'run_789',
        workflow: { name: 'Orders sync', version: 3 },
        error: { message: 'HTTP 500 from CRM', step: 'createContact' },
      });
      assert.equal(posted.status, 202, JSON.stringify(posted.body));
      deliveryId = posted.body.deliveries[0].deliveryId;
      [alert] = await receiver.waitFor(hook);
      fs.writeFileSync(headersFile, JSON.stringify(alert.headers));
      fs.writeFileSync(bodyFile, alert.body);
    });

    after(async () => {
      await receiver?.close();
      fs.rmSync(files, { recursive: true, force: true });
    });

    const expected = () => ({ text: 'Orders sync failure: HTTP 500 from CRM', run: 'run_789', café: 'crème brûlée ✓' });
    const tampered = () => alert.body.replace('HTTP 500', 'HTTP 501');

    it('is verified by verifyAlert with the config secret, and a tampered copy is not', () => {
      assert.equal(alert.headers['webhook-id'], deliveryId);
      assert.deepEqual(verifyAlert(alert.body, alert.headers, secret), expected());
      assertRejected('bad_signature', () => verifyAlert(tampered(), alert.headers, secret));
      assertRejected('bad_signature', () => verifyAlert(alert.body, alert.headers, newSecret()));
    });

    /** each snippet: the command that runs it; all read WEBHOOK_SECRET, the headers file and the body on stdin */
    const snippets: Record<string, () => [string, string[], Record<string, string>?]> = {
      'Node (standardwebhooks on npm)': () => [process.execPath, [path.join(SNIPPETS, 'verify.mjs'), headersFile]],
      'Node (verifyAlert)': () => [process.execPath, ['--import', 'tsx', path.join(SNIPPETS, 'verify-alert.ts'), headersFile], { TSX_TSCONFIG_PATH: path.join(SNIPPETS, 'tsconfig.json') }],
      'Python (standardwebhooks on PyPI)': () => ['python3', [path.join(SNIPPETS, 'verify.py'), headersFile], { PYTHONPATH: pythonPath }],
      'Go (standard-webhooks/libraries/go)': () => [goBinary, [headersFile]],
    };

    for (const [name, command] of Object.entries(snippets)) {
      it(`is verified by the ${name} snippet, which prints the payload, and a tampered copy is rejected`, async function () {
        this.timeout(30_000);
        const [file, args, env] = command();
        const good = await run(file, args, { env: { ...env, WEBHOOK_SECRET: secret }, input: fs.readFileSync(bodyFile) });
        assert.equal(good.code, 0, `exit code ${good.code}: ${good.stderr}`);
        assert.deepEqual(JSON.parse(good.stdout), expected());

        const bad = await run(file, args, { env: { ...env, WEBHOOK_SECRET: secret }, input: tampered() });
        assert.notEqual(bad.code, 0, `a tampered body must fail: ${bad.stdout}`);
        assert.match(bad.stderr, /rejected.*(no matching signature|bad_signature)/i);
        assert.equal(bad.stdout, '');
      });
    }

    it('docs/receiving.md shows each snippet file exactly as the test runs it', () => {
      const doc = fs.readFileSync(path.join(ROOT, 'docs', 'receiving.md'), 'utf8');
      for (const file of ['verify.mjs', 'verify-alert.ts', 'verify.py', 'verify.go', 'go.mod']) {
        assert.ok(doc.includes(fs.readFileSync(path.join(SNIPPETS, file), 'utf8').trim()), `docs/receiving.md includes docs/receiving/${file} verbatim`);
      }
    });
  });

  describe('npm run receiver', function () {
    /** starts the CLI as a user would (npm run receiver -- …) in its own process group, so SIGINT reaches it as Ctrl-C does */
    function startReceiver(args: string[]) {
      const child = spawn('npm', ['run', '--silent', 'receiver', '--', ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined } });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c));
      child.stderr.on('data', (c: Buffer) => (output += c));
      const exited = new Promise<string>((resolve) => child.on('close', (code, signal) => resolve(signal ?? `exit ${code}`)));
      const waitFor = async (pattern: RegExp, timeoutMs = 20_000) => {
        const deadline = Date.now() + timeoutMs;
        while (!pattern.test(output)) {
          if (Date.now() > deadline || child.exitCode !== null) throw new Error(`receiver output never matched ${pattern}:\n${output}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      return { child, exited, waitFor, output: () => output, interrupt: () => process.kill(-child.pid!, 'SIGINT') };
    }

    it('answers 204 to a signed alert and 400 with the failed check to a tampered one, printing both, and stops on Ctrl-C', async function () {
      this.timeout(30_000);
      const [older, newer] = [newSecret(), newSecret()];
      const port = await freePort();
      const cli = startReceiver(['--secret', older, '--secret', newer, '--port', String(port)]);
      try {
        await cli.waitFor(new RegExp(`listening on http://127\\.0\\.0\\.1:${port} with 2 secrets`));
        const url = `http://127.0.0.1:${port}/hooks/alerts`;
        const signed = signatureHeaders([newer], 'dlv_cli_1', body);
        const ok = await fetch(url, { method: 'POST', headers: { ...signed, 'content-type': 'application/json' }, body });
        assert.equal(ok.status, 204);
        await cli.waitFor(/✔ verified alert dlv_cli_1 \(POST \/hooks\/alerts/);
        assert.ok(cli.output().includes(JSON.stringify(JSON.parse(body), null, 2)), `the body, indented:\n${cli.output()}`);

        const bad = await fetch(url, { method: 'POST', headers: { ...signed, 'content-type': 'application/json' }, body: body.replace('500', '501') });
        assert.equal(bad.status, 400);
        const answer = (await bad.json()) as { error: { code: string; message: string } };
        assert.equal(answer.error.code, 'bad_signature');
        assert.match(answer.error.message, /any of the 2 secrets/);
        await cli.waitFor(/✘ rejected dlv_cli_1 .*: bad_signature: no v1 signature matches/);

        const stale = await fetch(url, { method: 'POST', headers: signatureHeaders([older], 'dlv_cli_2', body, Date.now() - 3_600_000), body });
        assert.equal(stale.status, 400);
        assert.equal(((await stale.json()) as { error: { code: string } }).error.code, 'timestamp_too_old');
        assert.equal((await fetch(url)).status, 405);
      } finally {
        cli.interrupt();
      }
      // npm, in the same process group, ends by the SIGINT itself; the receiver closes its server first
      assert.match(await cli.exited, /^(exit 0|SIGINT)$/, cli.output());
      assert.match(cli.output(), /receiver stopped\s*$/);
    });

    it('prints its usage with --help, and refuses to start without a secret or with a malformed one', async function () {
      this.timeout(30_000);
      const [help, none, malformed] = await Promise.all([
        run('npm', ['run', '--silent', 'receiver', '--', '--help']),
        run('npm', ['run', '--silent', 'receiver']),
        run('npm', ['run', '--silent', 'receiver', '--', '--secret', 'whsec_tooshort']),
      ]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /Usage: npm run receiver -- --secret whsec_/);
      assert.match(help.stdout, /--port .*default 8787/);
      assert.notEqual(none.code, 0);
      assert.match(none.stderr, /--secret is required/);
      assert.notEqual(malformed.code, 0);
      assert.match(malformed.stderr, /bad --secret: .*whsec_.*at least 24 bytes/);
      assert.doesNotMatch(malformed.stderr, /tooshort/, 'the secret is not echoed');
    });
  });
});
