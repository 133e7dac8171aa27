import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';

/**
 * Temporal's determinism rule as a tool (eslint.config.mjs): the workflow bundle's sources pass the
 * lint, the lint fails a workflow that imports a Node built-in or an I/O package or reads a Node
 * global, and it covers every lib/ module that workflow code imports.
 */

const ROOT = path.resolve(__dirname, '..');
const IMPORT_RULE = '@typescript-eslint/no-restricted-imports';
const rel = (file: string) => path.relative(ROOT, file).split(path.sep).join('/');

// `import … from './x'`, `export … from './x'`, `import './x'`; group 1 is `type ` for a type-only import
const RELATIVE_IMPORT = /\b(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.\.?\/[^'"]+)['"]/g;

function resolveTs(from: string, specifier: string): string {
  const base = path.resolve(path.dirname(from), specifier);
  const found = [`${base}.ts`, path.join(base, 'index.ts'), base].find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
  assert.ok(found, `${rel(from)} imports ${specifier}, which is no .ts file`);
  return found;
}

/**
 * The workflows/ and lib/ files that workflow code imports. A file imported by value is in the
 * bundle, so its own imports are followed; one imported by type only is listed (one keyword away from
 * the bundle) but not followed, since none of its code runs there. activities/ is left out: workflows
 * may import its types only, which the lint itself enforces.
 */
function workflowImports(): Set<string> {
  const bundleDirs = ['workflows', 'lib'].map((dir) => path.join(ROOT, dir) + path.sep);
  const roots = fs.readdirSync(path.join(ROOT, 'workflows')).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, 'workflows', f));
  const imported = new Set<string>();
  const followed = new Set<string>(roots);
  const queue = [...roots];
  for (let file = queue.shift(); file; file = queue.shift()) {
    for (const [, typeOnly, specifier] of fs.readFileSync(file, 'utf8').matchAll(RELATIVE_IMPORT)) {
      const target = resolveTs(file, specifier);
      if (!bundleDirs.some((dir) => target.startsWith(dir))) continue;
      imported.add(target);
      if (!typeOnly && !followed.has(target)) {
        followed.add(target);
        queue.push(target);
      }
    }
  }
  return imported;
}

describe('workflow determinism lint (eslint.config.mjs)', () => {
  const eslint = new ESLint({ cwd: ROOT });
  const errorsIn = (results: ESLint.LintResult[]) =>
    results.flatMap((r) => r.messages.filter((m) => m.severity === 2).map((m) => `${rel(r.filePath)}:${m.line}:${m.column} ${m.ruleId ?? 'parse'}: ${m.message}`));
  const lintWorkflow = (text: string) => eslint.lintText(text, { filePath: path.join(ROOT, 'workflows', 'lint-probe.ts') });

  it("finds no error in the workflow bundle's sources", async () => {
    const results = await eslint.lintFiles(['.']);
    const linted = results.map((r) => rel(r.filePath));
    assert.ok(linted.includes('workflows/index.ts') && linted.includes('lib/conditions.ts'), `linted only: ${linted.join(', ')}`);
    assert.deepEqual(errorsIn(results), []);
  });

  it('fails a workflow that imports node:fs or pg, or reads process.env', async () => {
    const cases = [
      { text: "import { readFileSync } from 'node:fs';\nexport const config = readFileSync('config.json', 'utf8');\n", rule: IMPORT_RULE, names: 'node:fs' },
      { text: "import { Pool } from 'pg';\nexport const pool = new Pool();\n", rule: IMPORT_RULE, names: "'pg'" },
      { text: 'export const region = process.env.REGION;\n', rule: 'no-restricted-globals', names: "'process'" },
    ];
    for (const { text, rule, names } of cases) {
      const errors = errorsIn(await lintWorkflow(text));
      assert.equal(errors.length, 1, `${text}gave ${JSON.stringify(errors)}`);
      assert.match(errors[0], new RegExp(`${rule}: .*${names}.*workflow code must be deterministic`));
    }
  });

  it("lets a workflow import the activities' types, but not the activities", async () => {
    assert.deepEqual(errorsIn(await lintWorkflow("import type { Activities } from '../activities';\nexport type A = Activities;\n")), []);
    const [valueImport] = errorsIn(await lintWorkflow("import { activities } from '../activities';\nexport const a = activities;\n"));
    assert.match(valueImport ?? 'no error', new RegExp(`${IMPORT_RULE}: '../activities'`));
  });

  it('covers every lib/ module that workflow code imports, by value or by type', async () => {
    const libFiles = fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, 'lib', f));
    const covered = new Set<string>();
    for (const file of libFiles) {
      const config = await eslint.calculateConfigForFile(file);
      if (config?.rules?.[IMPORT_RULE]?.[0] === 2) covered.add(file);
    }
    const imported = [...workflowImports()].filter((f) => f.startsWith(path.join(ROOT, 'lib') + path.sep));
    assert.ok(imported.some((f) => rel(f) === 'lib/conditions.ts'), `found only ${imported.map(rel).join(', ')}`);
    const missing = imported.filter((f) => !covered.has(f)).map(rel);
    assert.deepEqual(missing, [], `workflow code imports ${missing.join(', ')}: add to WORKFLOW_SOURCES in eslint.config.mjs`);
  });
});
