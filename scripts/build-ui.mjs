// Builds the web UI (ui/ → ui/dist) with Vite when ui/dist is missing or older than its sources.
// Runs from the root package's `prepare` script (npm install / npm ci) and from `npm start`.
//   --force   build even when ui/dist is up to date
// When Vite is not installed (npm ci --omit=dev) and ui/dist exists, it keeps that build.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(import.meta.dirname, '..');
const ui = path.join(root, 'ui');
const built = path.join(ui, 'dist', 'index.html');

function newest(p) {
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...fs.readdirSync(p).map((f) => newest(path.join(p, f))));
}

const sources = [path.join(ui, 'src'), path.join(ui, 'index.html'), path.join(ui, 'vite.config.mjs')];
const builtAt = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0;
const stale = builtAt === 0 || Math.max(...sources.map(newest)) > builtAt;
if (!stale && !process.argv.includes('--force')) process.exit(0);

let vite;
try {
  const pkg = createRequire(path.join(root, 'package.json')).resolve('vite/package.json');
  vite = path.join(path.dirname(pkg), 'bin', 'vite.js');
  if (!fs.existsSync(vite)) throw new Error('no vite binary');
} catch {
  if (builtAt) {
    console.warn('[ui] vite is not installed (dev dependencies omitted); keeping the existing ui/dist');
    process.exit(0);
  }
  console.error('[ui] vite is not installed: run `npm install` (with dev dependencies) to build the web UI');
  process.exit(1);
}
console.log(`[ui] building the web UI (ui/ → ui/dist)${builtAt ? ': sources changed' : ''}`);
const result = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: ui, stdio: 'inherit' });
process.exit(result.status ?? 1);
