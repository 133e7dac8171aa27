// Temporal's determinism rule as a lint error, as in temporalio/samples-typescript's .eslintrc.js:
// code in the workflow bundle runs in a sandbox and is replayed from history, so it may not reach
// Node built-ins or do I/O. Run by `npm run lint` and by test/workflow-lint.test.ts (`npm test`).
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

// The workflow bundle's sources: workflows/, the lib/ modules they import (by value or by type;
// test/workflow-lint.test.ts fails when one is missing here), and the failure converter, which the
// worker bundles by path (failureConverterPath in runtime/workflow-bundle.ts).
const WORKFLOW_SOURCES = [
  'workflows/**/*.ts',
  'lib/conditions.ts',
  'lib/failure-converter.ts',
  'lib/noise.ts',
  'lib/operator-delivery.ts',
  'lib/operator-events.ts',
  'lib/retry.ts',
  'lib/schemas.ts',
  'lib/search-attributes.ts',
];

const DETERMINISM = 'workflow code must be deterministic: do I/O in an activity';
const NO_BUILTINS = `${DETERMINISM} (Node built-ins are not in the workflow sandbox)`;

// Packages that do I/O or belong outside the sandbox (@temporalio/workflow and /common are the ones to use).
const IO_PACKAGES = ['pg', '@electric-sql/pglite', 'undici', 'koa', '@koa/router', 'prom-client', '@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing'];

// Not in the sandbox's globals (a vm context) or not deterministic. Date, Math.random and setTimeout
// are fine: @temporalio/workflow replaces them with replay-safe versions.
const RESTRICTED_GLOBALS = ['process', 'Buffer', 'require', 'setImmediate', 'setInterval', 'fetch', 'crypto', 'performance'];

export default [
  // Nothing else is linted: ESLint would otherwise pick up every .js/.cjs/.mjs file of the repo.
  { ignores: ['**/*.{js,cjs,mjs}'] },
  {
    files: WORKFLOW_SOURCES,
    languageOptions: { parser: tseslint.parser },
    // the sources carry eslint-disable comments for rules run elsewhere (lib/schemas.ts: no-control-regex)
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // typescript-eslint's version, for allowTypeImports: `import type` is erased from the bundle,
      // so `import type { Activities } from '../activities'` stays allowed.
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          // every built-in, stricter than the samples (they allow assert; the bundler shims assert, url, util)
          paths: [
            ...builtinModules.map((name) => ({ name, message: NO_BUILTINS, allowTypeImports: true })),
            ...IO_PACKAGES.map((name) => ({ name, message: DETERMINISM, allowTypeImports: true })),
          ],
          patterns: [
            // every node: form, also those builtinModules leaves out (node:test, node:sqlite)
            { group: ['node:*'], message: NO_BUILTINS, allowTypeImports: true },
            { group: IO_PACKAGES.map((name) => `${name}/*`), message: DETERMINISM, allowTypeImports: true },
            { regex: '(^|/)activities(/|$)', message: 'workflows call activities through proxyActivities: import their types only (import type)', allowTypeImports: true },
          ],
        },
      ],
      'no-restricted-globals': ['error', ...RESTRICTED_GLOBALS.map((name) => ({ name, message: DETERMINISM }))],
      // no-restricted-imports does not see import(); the bundle is one webpack chunk anyway
      'no-restricted-syntax': ['error', { selector: 'ImportExpression', message: `${DETERMINISM} (no dynamic import() in workflow code)` }],
    },
  },
];
