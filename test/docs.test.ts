import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BEGIN, extractBlock, generatedDocs, slug } from '../scripts/gen-docs';

const ROOT = path.resolve(__dirname, '..');

/** README.md and every docs/*.md, as paths from the repository root. */
function markdownFiles(): string[] {
  const docs = fs
    .readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

/** Link targets of a markdown text, code blocks and code spans left out. */
function linkTargets(text: string): string[] {
  const prose = text.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]);
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

function headingAnchors(text: string): Set<string> {
  const prose = text.replace(/^(```|~~~)[\s\S]*?^\1/gm, '');
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(heading.replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe('docs', () => {
  for (const doc of generatedDocs()) {
    it(`${doc.file} is what npm run docs generates from the code`, () => {
      const file = path.join(ROOT, doc.file);
      assert.ok(fs.existsSync(file), `${doc.file} is missing: run npm run docs`);
      const text = fs.readFileSync(file, 'utf8');
      const committed = extractBlock(text);
      assert.ok(committed !== undefined, `${doc.file} has no generated block (its markers are gone): run npm run docs`);
      if (committed === doc.block) return;
      const have = committed.split('\n');
      const want = doc.block.split('\n');
      const line = want.findIndex((w, i) => have[i] !== w);
      const at = line < 0 ? want.length : line;
      const firstBlockLine = text.slice(0, text.indexOf(BEGIN)).split('\n').length + 1;
      assert.fail(
        `${doc.file} is out of date: run npm run docs\n` +
          `  first difference at ${doc.file}:${firstBlockLine + at}:\n` +
          `  committed: ${have[at] ?? '(nothing)'}\n` +
          `  generated: ${want[at] ?? '(nothing)'}`,
      );
    });
  }

  it('every relative link in README.md and docs/*.md points at a file that exists', () => {
    const broken: string[] = [];
    for (const file of markdownFiles()) {
      for (const target of linkTargets(fs.readFileSync(path.join(ROOT, file), 'utf8'))) {
        if (isExternal(target) || target.startsWith('#')) continue;
        const pathPart = decodeURIComponent(target.split('#')[0]);
        if (!fs.existsSync(path.resolve(path.dirname(path.join(ROOT, file)), pathPart))) broken.push(`${file}: ${target}`);
      }
    }
    assert.deepEqual(broken, [], `links to files that do not exist:\n  ${broken.join('\n  ')}`);
  });

  it('every #anchor of a link into README.md or docs/*.md names a heading there', () => {
    const broken: string[] = [];
    for (const file of markdownFiles()) {
      const from = path.join(ROOT, file);
      for (const target of linkTargets(fs.readFileSync(from, 'utf8'))) {
        if (isExternal(target) || !target.includes('#')) continue;
        const [pathPart, anchor] = target.split('#');
        const to = pathPart ? path.resolve(path.dirname(from), decodeURIComponent(pathPart)) : from;
        if (!to.endsWith('.md') || !fs.existsSync(to)) continue; // a missing file is the test above
        if (!headingAnchors(fs.readFileSync(to, 'utf8')).has(anchor)) broken.push(`${file}: ${target}`);
      }
    }
    assert.deepEqual(broken, [], `links to headings that do not exist:\n  ${broken.join('\n  ')}`);
  });
});
