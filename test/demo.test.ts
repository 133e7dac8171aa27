import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/**
 * `npm run demo -- --exit` as a newcomer runs it: one command, a verified alert on the terminal with
 * the links to look at it, exit 0, and nothing of it left running afterwards.
 */
const ROOT = path.resolve(__dirname, '..');
const DEMO_TIMEOUT_MS = 150_000;

interface DemoRun {
  code: number | null;
  output: string;
  ms: number;
}

/** Runs the demo in its own process group; on a timeout the whole group is stopped (the demo cleans up on SIGTERM). */
function runDemo(args: string[]): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn('npm', ['run', '--silent', 'demo', '--', '--exit', ...args], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, DEMO_EXIT: undefined },
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c));
    child.stderr.on('data', (c: Buffer) => (output += c));
    const timer = setTimeout(() => {
      output += `\n[test] no exit after ${DEMO_TIMEOUT_MS / 1000} s: SIGTERM to the demo's process group\n`;
      process.kill(-child.pid!, 'SIGTERM');
      setTimeout(() => child.exitCode === null && process.kill(-child.pid!, 'SIGKILL'), 15_000).unref();
    }, DEMO_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

/** The ports the demo printed (PostgreSQL, the API, the Temporal UI, the receiver): after its exit none may answer. */
function portsIn(output: string): number[] {
  return [...new Set([...output.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])))];
}

async function assertShowsVerifiedAlert(run: DemoRun): Promise<void> {
  const { output } = run;
  assert.equal(run.code, 0, `the demo exited ${run.code}:\n${output}`);
  const id = output.match(/webhook-id (dlv-\S+?),/)?.[1];
  assert.ok(id, `no webhook-id in:\n${output}`);
  assert.match(output, /✔ signature verified/);
  assert.match(output, /"message": "HTTP 500 from CRM"/);
  assert.match(output, /\d+ ms after the run failed/);
  assert.match(output, new RegExp(`"delivery": "${id}"`), 'the body printed is the alert that arrived');
  assert.match(output, new RegExp(`Web UI\\s+http://127\\.0\\.0\\.1:\\d+/#/d/${id}\\s+\\(sign in with the API token mha_\\S+\\)`));
  assert.match(output, new RegExp(`curl -H 'authorization: Bearer mha_\\S+' http://127\\.0\\.0\\.1:\\d+/api/alerts/deliveries/${id}`));
  assert.match(output, new RegExp(`Temporal UI\\s+http://127\\.0\\.0\\.1:\\d+/namespaces/default/workflows/${id}`));
  assert.match(output, /The delivery is delivered/);
  assert.match(output, /stopped; temp folders removed/);
  const ports = portsIn(output);
  assert.ok(ports.length >= 3, `expected the demo's ports in:\n${output}`);
  for (const port of ports) assert.equal(await listening(port), false, `something still listens on 127.0.0.1:${port} after the demo exited`);
}

describe('npm run demo', function () {
  this.timeout(DEMO_TIMEOUT_MS + 30_000);

  it('fails a run in a MeshHook-shaped PostgreSQL and prints the signed alert, verified, with its web UI, API and Temporal UI links, then exits 0 leaving nothing running', async () => {
    const run = await runDemo([]);
    assert.match(run.output, /MeshHook's database: PostgreSQL .*on 127\.0\.0\.1:\d+/, `the demo did not use PostgreSQL:\n${run.output}`);
    assert.match(run.output, /MeshHook run [0-9a-f-]{36} failed/);
    await assertShowsVerifiedAlert(run);
    console.log(`      (the demo took ${(run.ms / 1000).toFixed(1)} s)`);
  });

  it('plays MeshHook through POST /api/events when asked (--http), as it does without PostgreSQL, and says so', async () => {
    const run = await runDemo(['--http']);
    assert.match(run.output, /no throwaway PostgreSQL \(--http\): MeshHook's part is played by POST \/api\/events/);
    assert.match(run.output, /POST \/api\/events: run\.failed of run_[0-9a-f]+/);
    await assertShowsVerifiedAlert(run);
  });
});
