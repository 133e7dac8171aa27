/**
 * `npm run bench:tuning`: each tuning knob of issue 5 measured on its own.
 * Runs bench/latency.ts as a child process (a fresh stack each) at a fixed
 * rate once per variant (a name, a description and environment overrides;
 * the service reads those variables, this runner only sets them), then times
 * the prebuilt workflow bundle: `loadWorkflowBundle` cold (an empty cache
 * dir) against warm (the cached file), each in a fresh process.
 *
 * Environment:
 *   TUNING_RATE       events/s (default 20; passed as BENCH_RATE)
 *   TUNING_SECONDS    measured seconds per variant (default 30; passed as BENCH_SECONDS)
 *   TUNING_VARIANTS   comma-separated variant names to run (default all; see VARIANTS below; `none`: only the bundle timing)
 *   TUNING_BUNDLE     0 skips the workflow bundle timing
 *   BENCH_PROFILE     default 0 here (the profile's probes add load)
 *   BENCH_BASELINE    default 0 here (it doubles each run)
 *   any other BENCH_* / service variable is passed to every run
 *
 * CPU ms per alert = CPU seconds of the measured window (the results JSON's
 * cpu.processUserSeconds + processSystemSeconds, and cpu.temporalServerSeconds)
 * × 1000 / events measured (counts.sent). The service figure includes the bench
 * client and receiver, which share its process; the window includes the grace
 * wait (idle pollers).
 *
 * Writes bench/results/tuning-<timestamp>.json and .md. The exit code is 0
 * when every variant gave results, else 1.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gitState } from './lib/stack';
import { fmt, round } from './lib/stats';
import { commitLine, BENCH_DIR, hostLine, markdownTable, positiveEnv, resultPaths, ROOT, runLatency, textTable, type LatencyRun } from './lib/runs';

interface Variant {
  name: string;
  description: string;
  env: Record<string, string>;
}

const VARIANTS: Variant[] = [
  { name: 'baseline', description: 'defaults (eager workflow start, WAL + synchronous=OFF, SDK worker defaults)', env: {} },
  { name: 'no-eager-start', description: 'no eager workflow start: the workflow task goes through the matching service', env: { ALERTS_EAGER_WORKFLOW_START: 'false' } },
  { name: 'sqlite-defaults', description: "dev server SQLite at SQLite's defaults (rollback journal, synchronous=FULL)", env: { TEMPORAL_DEV_SQLITE_PRAGMAS: 'journal_mode=DELETE,synchronous=FULL' } },
  { name: 'cache-10', description: 'worker sticky cache of 10 workflows', env: { TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: '10' } },
  { name: 'wf-tasks-4', description: 'at most 4 concurrent workflow tasks', env: { TEMPORAL_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '4' } },
  { name: 'local-acts-20', description: 'at most 20 concurrent local activities', env: { TEMPORAL_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: '20' } },
  { name: 'wf-threads-1', description: '1 workflow thread', env: { TEMPORAL_WORKER_WORKFLOW_THREADS: '1' } },
  { name: 'wf-threads-4', description: '4 workflow threads', env: { TEMPORAL_WORKER_WORKFLOW_THREADS: '4' } },
  { name: 'data-in-ram', description: 'DATA_DIR in /dev/shm: the disk out of the picture', env: { BENCH_TMPDIR: '/dev/shm' } },
];

const RATE = positiveEnv('TUNING_RATE', 20);
const SECONDS = positiveEnv('TUNING_SECONDS', 30);
const log = (line: string) => console.log(`[tuning] ${line}`);

function selectedVariants(): Variant[] {
  const wanted = (process.env.TUNING_VARIANTS ?? '').split(',').map((v) => v.trim()).filter(Boolean);
  if (wanted.length === 0) return VARIANTS;
  if (wanted.length === 1 && wanted[0] === 'none') return [];
  const unknown = wanted.filter((w) => !VARIANTS.some((v) => v.name === w));
  if (unknown.length) throw new Error(`unknown TUNING_VARIANTS ${unknown.join(', ')}; known: ${VARIANTS.map((v) => v.name).join(', ')}`);
  return VARIANTS.filter((v) => wanted.includes(v.name));
}

/** CPU ms per measured alert: service process and dev server. */
function cpuPerAlert(run: LatencyRun): { serviceMs: number | null; devServerMs: number | null } {
  const r = run.results;
  if (!r || r.counts.sent === 0) return { serviceMs: null, devServerMs: null };
  return {
    serviceMs: round(((r.cpu.processUserSeconds + r.cpu.processSystemSeconds) * 1000) / r.counts.sent, 2),
    devServerMs: r.cpu.temporalServerSeconds === null ? null : round((r.cpu.temporalServerSeconds * 1000) / r.counts.sent, 2),
  };
}

// ---------------------------------------------------------------- the prebuilt workflow bundle

interface BundleTiming {
  coldMs: number;
  warmMs: number;
  warmSameProcessMs: number;
  coldBundled: boolean;
  warmBundled: boolean;
  codeBytes: number;
}

function timeBundleLoad(root: string): Promise<{ firstMs: number; secondMs: number; bundled: boolean; codeBytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'lib', 'time-bundle-load.ts'), root], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`timing the bundle load failed (exit ${code}): ${out.slice(-500)}`));
      }
    });
  });
}

/**
 * Cold and warm `loadWorkflowBundle`, measured on a copy of runtime/workflow-bundle.ts in a temp root with
 * copies of workflows/, lib/ and the package files, and a link to node_modules: the copy's cache dir
 * (<temp>/.temporal/workflow-bundles) starts empty, and the real cache, which other runs use, is left alone.
 */
async function measureBundle(): Promise<BundleTiming> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'meshhook-bundle-timing-'));
  try {
    fs.mkdirSync(path.join(root, 'runtime'));
    fs.copyFileSync(path.join(ROOT, 'runtime', 'workflow-bundle.ts'), path.join(root, 'runtime', 'workflow-bundle.ts'));
    // the bundle's inputs are copied (webpack resolves a linked workflows/ to its real path, outside the bundler's entry dir)
    for (const entry of ['workflows', 'lib', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      if (fs.existsSync(path.join(ROOT, entry))) fs.cpSync(path.join(ROOT, entry), path.join(root, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
    log('workflow bundle: cold load (empty cache dir, fresh process) ...');
    const cold = await timeBundleLoad(root);
    log('workflow bundle: warm load (cached file, fresh process) ...');
    const warm = await timeBundleLoad(root);
    return { coldMs: cold.firstMs, warmMs: warm.firstMs, warmSameProcessMs: cold.secondMs, coldBundled: cold.bundled, warmBundled: warm.bundled, codeBytes: cold.codeBytes };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main

const HEADER = ['variant', 'env', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'delivered/s', 'lost', 'dup', 'service CPU ms/alert', 'dev server CPU ms/alert', 'service CPU %', 'dev server CPU %', 'peak RSS MiB'];

async function main(): Promise<void> {
  const at = new Date().toISOString();
  const git = gitState();
  const variants = selectedVariants();
  const childEnv: Record<string, string> = { BENCH_RATE: String(RATE), BENCH_SECONDS: String(SECONDS), BENCH_PROFILE: process.env.BENCH_PROFILE ?? '0', BENCH_BASELINE: process.env.BENCH_BASELINE ?? '0' };
  log(`${variants.length} variant(s) at ${RATE}/s for ${SECONDS} s each, a fresh stack per variant: ${variants.map((v) => v.name).join(', ')}`);

  const runs: { variant: Variant; run: LatencyRun; cpuPerAlert: ReturnType<typeof cpuPerAlert> }[] = [];
  for (const [i, variant] of variants.entries()) {
    log(`variant ${i + 1}/${variants.length} ${variant.name}: ${variant.description} ${Object.entries(variant.env).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    const run = await runLatency({ ...childEnv, ...variant.env }, `[tuning ${variant.name}]`);
    const perAlert = cpuPerAlert(run);
    runs.push({ variant, run, cpuPerAlert: perAlert });
    const r = run.results;
    log(
      r
        ? `${variant.name}: p50 ${fmt(r.latencyMs.sendToReceived.p50)} ms, p99 ${fmt(r.latencyMs.sendToReceived.p99)} ms, delivered ${r.deliveredRatePerSecond}/s, lost ${r.counts.lost}, ` +
            `CPU ${perAlert.serviceMs ?? '-'} ms/alert (service) + ${perAlert.devServerMs ?? '-'} ms/alert (dev server)`
        : `${variant.name}: ${run.error}`,
    );
  }

  let bundle: BundleTiming | null = null;
  let bundleError: string | null = null;
  if (process.env.TUNING_BUNDLE !== '0') {
    try {
      bundle = await measureBundle();
    } catch (err) {
      bundleError = (err as Error).message;
      log(`workflow bundle timing failed: ${bundleError}`);
    }
  }

  const table = runs.map(({ variant, run, cpuPerAlert: c }) => {
    const envText = Object.entries(variant.env).map(([k, v]) => `${k}=${v}`).join(' ') || '(defaults)';
    const r = run.results;
    if (!r) return [variant.name, envText, ...Array(12).fill(null)];
    const l = r.latencyMs.sendToReceived;
    return [variant.name, envText, fmt(l.p50), fmt(l.p95), fmt(l.p99), fmt(l.max), r.deliveredRatePerSecond, r.counts.lost, r.counts.duplicates, c.serviceMs, c.devServerMs, r.cpu.processCorePercent, r.cpu.temporalServerCorePercent, r.memory.peakRssMiB];
  });
  const bundleHeader = ['workflow bundle', 'loadWorkflowBundle ms', 'note'];
  const bundleTable = bundle
    ? [
        ['cold (empty cache, fresh process)', bundle.coldMs, bundle.coldBundled ? 'webpack bundle + cache write' : 'UNEXPECTED: no bundling happened'],
        ['warm (cached file, fresh process)', bundle.warmMs, bundle.warmBundled ? 'UNEXPECTED: bundled again' : `hash of workflows/ + lib/ + lock file, read ${Math.round(bundle.codeBytes / 1024)} KiB`],
        ['warm (same process, second call)', bundle.warmSameProcessMs, 'page cache warm'],
      ]
    : [];

  console.log('');
  console.log(`tuning: send -> webhook received at ${RATE}/s for ${SECONDS} s per variant (open loop, a fresh embedded stack each)`);
  console.log(textTable(HEADER, table));
  for (const { variant } of runs) console.log(`  ${variant.name}: ${variant.description}`);
  if (bundle) {
    console.log('');
    console.log(textTable(bundleHeader, bundleTable));
  } else if (bundleError) console.log(`workflow bundle timing failed: ${bundleError}`);

  const passed = Object.entries(process.env)
    .filter(([k]) => /^(BENCH_|TEMPORAL_|ALERTS_|TUNING_)/.test(k) && k !== 'BENCH_OUT')
    .map(([k, v]) => `${k}=${v}`);
  const command = `${passed.length ? `${passed.join(' ')} ` : ''}npm run bench:tuning`;
  const paths = resultPaths('tuning', at);
  fs.writeFileSync(
    paths.json,
    `${JSON.stringify(
      {
        benchmark: 'tuning variants of bench/latency.ts, and the prebuilt workflow bundle',
        at,
        command,
        git,
        host: hostLine(),
        settings: { rate: RATE, seconds: SECONDS, childEnv },
        cpuPerAlertNote: 'CPU seconds of the measured window (send + grace wait) x 1000 / events measured; service = the Node process (API + worker + PGlite + bench client + receiver), dev server = the Temporal dev server child',
        columns: HEADER,
        table,
        workflowBundle: bundle ?? { error: bundleError },
        runs: runs.map(({ variant, run, cpuPerAlert: c }) => ({ ...variant, exitCode: run.exitCode, signal: run.signal, runSeconds: run.seconds, error: run.error, cpuPerAlert: c, results: run.results })),
      },
      null,
      2,
    )}\n`,
  );
  const commit = commitLine(git);
  fs.writeFileSync(
    paths.md,
    [
      '## Tuning: each change measured',
      '',
      `Command: \`${command}\` (${RATE}/s for ${SECONDS} s per variant, open loop, a fresh embedded stack each; profile ${childEnv.BENCH_PROFILE === '0' ? 'off' : 'on'}). ` +
        `Commit ${commit}. Host: ${hostLine()}. Run ${at}.`,
      '',
      markdownTable(HEADER, table),
      '',
      ...runs.map(({ variant }) => `- \`${variant.name}\`: ${variant.description}.`),
      '- Latency is send -> webhook received. CPU ms/alert = CPU seconds of the measured window (sends plus the wait for the last webhooks) × 1000 / events measured; ' +
        '"service" is the Node process (API + worker + PGlite + bench client + receiver), "dev server" the Temporal dev server child.',
      '',
      ...(bundle ? ['The prebuilt workflow bundle (`loadWorkflowBundle`, runtime/workflow-bundle.ts, on a copy with an empty cache dir):', '', markdownTable(bundleHeader, bundleTable), ''] : []),
      ...(bundleError ? [`Workflow bundle timing failed: ${bundleError}`, ''] : []),
      `Results: \`${path.relative(ROOT, paths.json)}\`.`,
      '',
    ].join('\n'),
  );
  log(`results written to ${path.relative(process.cwd(), paths.json)} and ${path.relative(process.cwd(), paths.md)}`);
  process.exit(runs.every((r) => r.run.results) && !bundleError ? 0 : 1);
}

void main();
