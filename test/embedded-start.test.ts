import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../runtime/host';

const ROOT = path.resolve(__dirname, '..');

interface Started {
  child: ChildProcess;
  output: () => string;
  apiUrl: string;
  uiUrl: string;
  token: string;
}

/** Runs `npm start`'s command as a user would, with its own DATA_DIR and ports, until it prints "ready". */
async function npmStart(dataDir: string, ports: { api: number; dev: number; ui: number }): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATA_DIR: dataDir,
      PORT: String(ports.api),
      TEMPORAL_DEV_PORT: String(ports.dev),
      TEMPORAL_UI_PORT: String(ports.ui),
      TEMPORAL_ADDRESS: '',
      DATABASE_URL: '',
      ALERTS_API_TOKENS: '',
      ALERTS_ENCRYPTION_KEYS: '',
      ALERTS_EGRESS_ALLOW: '127.0.0.1', // the receiver
      ALERTS_ALLOW_PRIVATE_NETWORKS: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const deadline = Date.now() + 120_000;
  while (!text.includes('ready; press Ctrl-C to stop')) {
    if (child.exitCode !== null) throw new Error(`npm start exited early (${child.exitCode}):\n${text}`);
    if (Date.now() > deadline) throw new Error(`npm start did not get ready:\n${text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const grab = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`not in the output (${re}):\n${text}`);
    return m[1];
  };
  return {
    child,
    output: () => text,
    apiUrl: grab(/API\s+(http:\/\/\S+)/),
    uiUrl: grab(/Temporal UI\s+(http:\/\/\S+)/),
    token: grab(/API token\s+(mha_\S+)/),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** pids of the Temporal dev servers started on this data dir */
function devServerPids(dataDir: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join(dataDir, 'temporal.sqlite'));
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function stop(started: Started, signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
  started.child.kill(signal);
  return exited;
}

describe('npm start (the embedded default)', function () {
  this.timeout(240_000);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-start-'));
  let ports: { api: number; dev: number; ui: number };
  let running: Started | undefined;

  before(async () => {
    ports = { api: await freePort(), dev: await freePort(), ui: await freePort() };
  });
  after(async () => {
    if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
    for (const pid of devServerPids(dataDir)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts the dev server, store, worker and API, prints addresses and a token, and answers /readyz and the Web UI', async () => {
    running = await npmStart(dataDir, ports);
    assert.equal(running.apiUrl, `http://127.0.0.1:${ports.api}`);
    assert.equal(running.uiUrl, `http://127.0.0.1:${ports.ui}`);
    assert.match(running.output(), /created an encryption key .* \(mode 0600\)/);
    assert.equal(fs.statSync(path.join(dataDir, 'encryption-keys')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dataDir, 'api-token')).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim(), running.token);

    const ready = await fetch(`${running.apiUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as { checks: unknown }).checks, { store: 'ok', temporal: 'ok' });
    const ui = await fetch(running.uiUrl);
    assert.equal(ui.status, 200);
    assert.match(await ui.text(), /<html/i);
  });

  it('keeps configs across a Ctrl-C and a second start, and leaves no process behind', async () => {
    const created = await fetch(`${running!.apiUrl}/api/alerts/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${running!.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ config: { workflowId: 'wf_restart', name: 'survives', conditions: [{ type: 'failure' }], webhook: { url: 'https://hooks.example.com/x' } } }),
    });
    assert.equal(created.status, 201);
    const { config } = (await created.json()) as { config: { id: string } };
    const [devPid] = devServerPids(dataDir);
    assert.ok(devPid, 'the dev server runs as a child process');

    assert.equal(await stop(running!, 'SIGINT'), 0);
    assert.match(running!.output(), /SIGINT: shutting down[\s\S]*stopped/);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(alive(devPid), false, 'the dev server is gone after Ctrl-C');
    assert.deepEqual(devServerPids(dataDir), []);

    running = await npmStart(dataDir, ports);
    assert.doesNotMatch(running.output(), /created an (encryption key|API token)/);
    const list = await fetch(`${running.apiUrl}/api/alerts/config/wf_restart`, { headers: { authorization: `Bearer ${running.token}` } });
    assert.equal(list.status, 200);
    const { configs } = (await list.json()) as { configs: { id: string; webhook: { url: string } }[] };
    assert.deepEqual(configs.map((c: { id: string; webhook: { url: string } }) => [c.id, c.webhook.url]), [[config.id, 'https://hooks.example.com/x']]);

    assert.equal(await stop(running, 'SIGTERM'), 0);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(devServerPids(dataDir), []);
  });
});
