'use strict';
/**
 * mocha configuration for every test of MeshHook Alerts (`npm test`).
 *
 * - TypeScript runs through tsx's CommonJS hook (`tsx/cjs`); tsconfig's module is commonjs and mocha
 *   loads each spec with require(), so no ESM loader or separate node process is needed.
 * - Root hooks: every file in test/setup/*.ts (and test/hooks.ts, when present) is required before the
 *   specs; a file there exports `mochaHooks = { beforeAll, afterAll, ... }` for run-wide setup such as
 *   the Temporal dev server or the shared PostgreSQL server.
 * - test/reporter.cjs is mocha's spec reporter plus a last line `N passed, N failed`.
 */
const fs = require('node:fs');
const path = require('node:path');

const setupDir = path.join(__dirname, 'test', 'setup');
const setupFiles = fs.existsSync(setupDir)
  ? fs
      .readdirSync(setupDir)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
      .sort()
      .map((f) => path.join(setupDir, f))
  : [];
const hooksFile = path.join(__dirname, 'test', 'hooks.ts');

/**
 * mocha adds the `spec` of this file to the files named on the command line, so
 * `npx mocha test/store.test.ts` would run everything. The default spec applies only when the command
 * line names none (read with mocha's own table of which options take a value).
 */
function commandLineNamesSpecs(args) {
  let meta;
  try {
    meta = require('mocha/lib/cli/run-option-metadata.cjs');
  } catch {
    return false;
  }
  const takesValue = new Set([...meta.types.array, ...meta.types.number, ...meta.types.string]);
  for (const [name, aliases] of Object.entries(meta.aliases)) if (takesValue.has(name)) for (const alias of aliases) takesValue.add(alias);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') return i + 1 < args.length;
    if (i === 0 && arg === 'inspect') continue; // `mocha inspect …` is a subcommand, not a spec
    if (!arg.startsWith('-')) return true;
    const name = arg.replace(/^--?/, '');
    if (name === 'spec' || name.startsWith('spec=')) return true;
    if (!name.includes('=') && takesValue.has(name)) i++; // skip the option's value
  }
  return false;
}

module.exports = {
  require: ['tsx/cjs', ...(fs.existsSync(hooksFile) ? [hooksFile] : []), ...setupFiles],
  extension: ['ts'],
  ...(commandLineNamesSpecs(process.argv.slice(2)) ? {} : { spec: ['test/**/*.test.ts'] }),
  timeout: 60_000,
  slow: 2_000,
  reporter: path.join(__dirname, 'test', 'reporter.cjs'),
  // end the process when the run is over, even if a handle (a socket, a timer) is still open
  exit: true,
  // a test that does not run is a failure (no skipped tests); `.only` left in a file fails CI
  'forbid-pending': true,
  'forbid-only': Boolean(process.env.CI),
};
