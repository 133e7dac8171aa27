import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevServer } from '../runtime/dev-server';
import { resolveTemporalCli } from '../runtime/temporal-cli';
import { freePort } from '../runtime/host';
import { devServerPids, eventually, killDevServers, processAlive } from './support/dev-server-processes';
import { startServiceProcess, stopAllServiceProcesses, type ServiceProcess } from './support/processes';

/**
 * `npm start` killed with SIGKILL (no shutdown code runs) must not leave its Temporal dev server
 * behind: the kernel kills it with its parent (setpriv --pdeathsig), and a start that finds one left
 * over anyway (a machine without setpriv) stops it before it checks its ports. A process that is not
 * such a leftover is never touched.
 */
describe('the embedded dev server after a crash (SIGKILL of npm start)', function () {
  this.timeout(240_000);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-alerts-takeover-'));
  let cliPath: string;
  let ports: { api: number; dev: number; ui: number };

  const npmStart = (env: Record<string, string> = {}): ServiceProcess =>
    startServiceProcess('npm start', 'main.ts', {
      DATA_DIR: dataDir,
      PORT: String(ports.api),
      HOST: '127.0.0.1',
      TEMPORAL_DEV_PORT: String(ports.dev),
      TEMPORAL_UI_PORT: String(ports.ui),
      TEMPORAL_CLI_PATH: cliPath,
      TEMPORAL_ADDRESS: '',
      DATABASE_URL: '',
      ALERTS_API_TOKENS: '',
      ALERTS_ENCRYPTION_KEYS: '',
      ALERTS_EGRESS_ALLOW: '',
      LOG_LEVEL: 'warn',
      ...env,
    });
  const READY = /ready; press Ctrl-C to stop/;

  before(async function () {
    this.timeout(10 * 60_000);
    cliPath = await resolveTemporalCli({ log: (line) => process.stderr.write(`[temporal-cli] ${line}\n`) });
    ports = { api: await freePort(), dev: await freePort(), ui: await freePort() };
  });
  afterEach(async () => {
    // one test's failure leaves nothing running for the next
    await stopAllServiceProcesses();
    killDevServers(dataDir);
  });
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('takes the dev server down with it, and the next start on the same DATA_DIR and ports succeeds', async () => {
    const first = npmStart();
    await first.waitForOutput(READY, 120_000);
    const [devPid] = devServerPids(dataDir);
    assert.ok(devPid, 'the dev server runs');

    await first.kill('SIGKILL');
    await eventually(`the dev server (pid ${devPid}) is gone after its parent was SIGKILLed`, () => !processAlive(devPid), 5_000);
    assert.deepEqual(devServerPids(dataDir), []);

    const second = npmStart();
    await second.waitForOutput(READY, 120_000);
    assert.doesNotMatch(second.output(), /already in use/);
    assert.equal((await fetch(`http://127.0.0.1:${ports.api}/readyz`)).status, 200);

    // another start on this DATA_DIR while the second runs: its dev server belongs to a live process and is left alone
    await assert.rejects(
      startDevServer({ cliPath, dataDir, namespace: 'default', port: await freePort(), uiPort: await freePort() }),
      /belongs to process \d+, which is still running: another `npm start` uses this DATA_DIR/,
    );
    assert.equal(devServerPids(dataDir).length, 1, 'the running dev server was not touched');

    await second.kill('SIGTERM');
    await eventually('no dev server after a SIGTERM', () => devServerPids(dataDir).length === 0, 5_000);
  });

  it('stops a dev server left running by a start without setpriv, saying so, and starts on the same ports', async () => {
    // no setpriv on PATH (nothing else is needed from PATH: the CLI comes by TEMPORAL_CLI_PATH)
    const first = npmStart({ PATH: path.join(dataDir, 'no-such-bin') });
    await first.waitForOutput(READY, 120_000);
    assert.match(first.output(), /no setpriv --pdeathsig here/);
    const [devPid] = devServerPids(dataDir);
    await first.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.ok(processAlive(devPid), 'without setpriv the dev server outlives a SIGKILL of its parent');

    const second = npmStart();
    await second.waitForOutput(READY, 120_000);
    assert.match(second.output(), new RegExp(`stopping the Temporal dev server left running by an earlier start on this DATA_DIR \\(pid ${devPid}`));
    assert.equal(processAlive(devPid), false);
    assert.equal(devServerPids(dataDir).length, 1);
    assert.equal((await fetch(`http://127.0.0.1:${ports.api}/readyz`)).status, 200);
    await second.kill('SIGTERM');
    await eventually('no dev server after a SIGTERM', () => devServerPids(dataDir).length === 0, 5_000);
  });

  it('never stops a process that is not a dev server of this DATA_DIR, whatever the pid file says', async () => {
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pidFile = path.join(dataDir, 'temporal.pid');
      fs.writeFileSync(pidFile, JSON.stringify({ pid: stranger.pid, owner: 999_999_999, cliPath, dbFile: path.join(dataDir, 'temporal.sqlite'), startedAt: new Date().toISOString() }));
      const devServer = await startDevServer({ cliPath, dataDir, namespace: 'default', port: await freePort(), uiPort: await freePort() });
      try {
        assert.ok(processAlive(stranger.pid!), 'the process named by the stale pid file is still running');
        assert.equal(JSON.parse(fs.readFileSync(pidFile, 'utf8')).pid, devServerPids(dataDir)[0], 'the pid file now names the new dev server');
      } finally {
        await devServer.stop();
      }
      assert.equal(fs.existsSync(pidFile), false, 'a clean stop removes the pid file');
    } finally {
      stranger.kill('SIGKILL');
    }
  });
});
