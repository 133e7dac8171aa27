import assert from 'node:assert/strict';
import { renderAlert } from '../../lib/render';
import { checkTemplateString, renderJsonTemplate, renderString, TEMPLATE_LIMITS, TemplateError, templateStrings } from '../../lib/templates';

const context = {
  workflow: { id: 'wf a/b', name: 'Orders sync', version: 3 },
  run: { id: 'run_789', startedAt: '2026-11-29T09:59:58Z', durationMs: 2000 },
  error: { message: 'HTTP 500 from "CRM" & co\nline 2', step: 'createContact' },
  data: { ok: true, tags: ['a', 'b'], nested: { count: 0 }, missing: null },
  condition: 'failure',
};

const render = (template: Parameters<typeof renderJsonTemplate>[0]) => JSON.parse(renderJsonTemplate(template, context));

/** asserts that fn throws a TemplateError whose message matches */
const throwsTemplateError = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TemplateError, `expected a TemplateError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });

describe('lib/templates', () => {
  describe('renderJsonTemplate', () => {
    it('keeps the JSON type of a value when the string is exactly one {{ expr }}', () => {
      assert.deepEqual(
        render({
          number: '{{ run.durationMs }}',
          padded: '  {{ workflow.version }}  ',
          bool: '{{ data.ok }}',
          array: '{{ data.tags }}',
          object: '{{ workflow }}',
          zero: '{{ data.nested.count }}',
          nullValue: '{{ data.missing }}',
          undefinedValue: '{{ nothing.here }}',
          filtered: '{{ run.durationMs | divided_by: 1000.0 }}',
          trimmed: '{{- run.durationMs -}}',
        }),
        {
          number: 2000,
          padded: 3,
          bool: true,
          array: ['a', 'b'],
          object: { id: 'wf a/b', name: 'Orders sync', version: 3 },
          zero: 0,
          nullValue: null,
          undefinedValue: null,
          filtered: 2,
          trimmed: 2000,
        },
      );
    });

    it('renders a string with text around or between expressions as a string', () => {
      assert.deepEqual(
        render({
          text: '{{ workflow.name }} {{ condition }}: {{ error.step }}',
          prefix: 'took {{ run.durationMs }}ms',
          two: '{{ run.durationMs }}{{ run.durationMs }}',
          plain: 'no template here',
        }),
        { text: 'Orders sync failure: createContact', prefix: 'took 2000ms', two: '20002000', plain: 'no template here' },
      );
    });

    it('walks arrays and objects, leaves keys and non-string values alone', () => {
      assert.deepEqual(render([{ '{{ key }}': '{{ run.id }}', n: 1, b: false, z: null }, ['{{ condition }}']]), [
        { '{{ key }}': 'run_789', n: 1, b: false, z: null },
        ['failure'],
      ]);
      assert.equal(renderJsonTemplate(null, context), 'null');
      assert.equal(renderJsonTemplate('{{ condition }}', context), '"failure"');
    });

    it('always produces valid JSON, whatever the values contain, without HTML escaping', () => {
      const body = renderJsonTemplate({ message: 'Error: {{ error.message }}', html: '<b>{{ error.message }}</b>' }, context);
      assert.deepEqual(JSON.parse(body), { message: `Error: ${context.error.message}`, html: `<b>${context.error.message}</b>` });
    });

    it('does not reach inherited properties', () => {
      assert.deepEqual(render({ ctor: '{{ workflow.constructor }}', proto: '{{ data.__proto__ }}', text: 'x{{ workflow.constructor }}x' }), {
        ctor: null,
        proto: null,
        text: 'xx',
      });
    });

    it(`refuses a payload larger than ${TEMPLATE_LIMITS.maxOutputBytes} bytes`, () => {
      const big = { data: { blob: 'x'.repeat(TEMPLATE_LIMITS.maxOutputBytes) } };
      throwsTemplateError(() => renderJsonTemplate({ a: '{{ data.blob }}' }, big), /rendered payload is larger than 262144 bytes/);
      assert.equal(JSON.parse(renderJsonTemplate({ a: '{{ data.blob | slice: 0, 1000 }}' }, big)).a.length, 1000);
    });
  });

  describe('URL templates', () => {
    it('URL-encode every value they insert, and leave the fixed text alone', () => {
      assert.equal(
        renderString('https://hooks.example.com/alerts/{{ workflow.id }}?step={{ error.step }}&m={{ error.message }}&n={{ nothing }}', context, 'url'),
        'https://hooks.example.com/alerts/wf%20a%2Fb?step=createContact&m=HTTP%20500%20from%20%22CRM%22%20%26%20co%0Aline%202&n=',
      );
    });

    it('text templates do not encode', () => {
      assert.equal(renderString('{{ workflow.id }} & {{ error.step }}', context), 'wf a/b & createContact');
    });
  });

  describe('what templates may not do', () => {
    for (const tag of ['include', 'render', 'layout']) {
      it(`refuses the {% ${tag} %} tag (it would read files)`, () => {
        const source = `{% ${tag} "../../etc/passwd" %}`;
        throwsTemplateError(() => checkTemplateString(source), new RegExp(`the "${tag}" tag is not allowed in alert templates`));
        throwsTemplateError(() => renderJsonTemplate({ a: source }, context), /is not allowed/);
        throwsTemplateError(() => renderString(`https://x.example/${source}`, context, 'url'), /is not allowed/);
      });
    }

    it('refuses an unknown filter when the template is saved, not only when it renders', () => {
      throwsTemplateError(() => checkTemplateString('{{ workflow.name | shout }}'), /undefined filter: shout/);
      throwsTemplateError(() => checkTemplateString('https://x.example/{{ workflow.id | shout }}', 'url'), /undefined filter: shout/);
      throwsTemplateError(() => renderJsonTemplate({ a: '{{ workflow.name | shout }}' }, context), /undefined filter: shout/);
      assert.doesNotThrow(() => checkTemplateString('{{ workflow.name | upcase }}'));
    });

    it('refuses broken syntax with a one-line message', () => {
      throwsTemplateError(() => checkTemplateString('{{ workflow.name '), /not closed/);
      throwsTemplateError(() => checkTemplateString('{% if x %}no end'), /not closed/);
      try {
        checkTemplateString(`{{ workflow.name\n\n${'x'.repeat(1000)}`);
        assert.fail('expected a TemplateError');
      } catch (err) {
        assert.ok(err instanceof TemplateError);
        assert.ok(!err.message.includes('\n') && err.message.length <= 300, 'the message is one short line');
      }
    });

    it(`refuses a template longer than ${TEMPLATE_LIMITS.maxTemplateChars} characters`, () => {
      throwsTemplateError(() => checkTemplateString('x'.repeat(TEMPLATE_LIMITS.maxTemplateChars + 1)), /template is longer than 16384 characters/);
      assert.doesNotThrow(() => checkTemplateString('x'.repeat(TEMPLATE_LIMITS.maxTemplateChars)));
    });

    it('stops a render that allocates too much memory', () => {
      throwsTemplateError(() => renderString('{% for i in (1..100000000) %}{{ i }}{% endfor %}', context), /memory alloc limit exceeded/);
      throwsTemplateError(
        () => renderString('{% assign s = "0123456789abcdef0123456789abcdef" %}{% for i in (1..24) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}', context),
        /memory alloc limit exceeded/,
      );
    });

    it('counts what capture builds against the memory budget (a capture doubled in a loop)', () => {
      const started = Date.now();
      throwsTemplateError(
        () => renderString('{% capture s %}xxxxxxxxxxxxxxxx{% endcapture %}{% for i in (1..24) %}{% capture s %}{{s}}{{s}}{% endcapture %}{% endfor %}{{ s | replace: "x", "yy" | size }}', context),
        /memory alloc limit exceeded/,
      );
      assert.ok(Date.now() - started < 1_000, 'it stops early, not after building the string');
      assert.equal(renderString('{% capture s %}{{ workflow.id }}!{% endcapture %}{{ s }}{{ s }}', context), 'wf a/b!wf a/b!');
    });

    it(`stops a render that runs longer than ${TEMPLATE_LIMITS.renderMs} ms`, () => {
      const started = Date.now();
      throwsTemplateError(() => renderString('{% for a in (1..5000) %}{% for b in (1..5000) %}{% endfor %}{% endfor %}', context), /render limit exceeded/);
      assert.ok(Date.now() - started < 5_000, 'it stops long before finishing 25 million iterations');
    });
  });

  describe('one alert, many template strings', () => {
    it(`stops a payload of many slow strings once the alert has rendered for ${TEMPLATE_LIMITS.alertRenderMs} ms in all`, () => {
      // a loop that takes 8-25 ms on this machine: each string stays within its own 50 ms
      let loop = '';
      for (let n = 1_000; ; n *= 2) {
        loop = `{% for a in (1..${n}) %}{% endfor %}`;
        const started = performance.now();
        renderString(loop, context);
        if (performance.now() - started >= 8) break;
      }
      // 200 of them would take seconds without the alert's budget
      const template = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, `x${loop}`]));
      const started = Date.now();
      throwsTemplateError(() => renderJsonTemplate(template, context), /rendering the alert took longer than 250 ms|render limit exceeded/);
      assert.ok(Date.now() - started < 1_000, `stopped after ${Date.now() - started} ms`);
    });

    it(`stops a payload of many large strings once their output passes ${TEMPLATE_LIMITS.maxOutputBytes} bytes, before building the body`, () => {
      // each string renders 64 KiB, within the memory limit of one render; 100 of them would be 6.4 MiB
      const blob = '{% assign s = "0123456789abcdef" %}{% for i in (1..12) %}{% assign s = s | append: s %}{% endfor %}{{ s }}';
      assert.equal(renderString(blob, context).length, 65_536);
      const template = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, blob]));
      throwsTemplateError(() => renderJsonTemplate(template, context), /rendered payload is larger than 262144 bytes \(all templates of the alert together\)/);
      const values = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, '{{ data.blob }}']));
      throwsTemplateError(() => renderJsonTemplate(values, { data: { blob: 'x'.repeat(4096) } }), /rendered payload is larger than 262144 bytes \(all templates/);
    });

    it('refuses to render a URL whose host is a template, even from a config stored before the save rule (renderAlert)', () => {
      for (const url of ['http:///{{ data.host }}/x', 'https://{{ workflow.id }}.example.com/', 'http://{{ x }}@169.254.169.254/', 'http:\\\\{% if true %}169.254.169.254{% endif %}/']) {
        throwsTemplateError(() => renderAlert({ webhook: { url, headers: {}, timeoutMs: 1000 }, payload: { template: { a: 'x' } } } as never, context as never), /webhook\.url: the user info, host and port must be fixed text/);
      }
      assert.equal(renderAlert({ webhook: { url: 'https://hooks.example.com/{{ workflow.id }}', headers: {}, timeoutMs: 1000 }, payload: { template: { a: 'x' } } } as never, context as never).url, 'https://hooks.example.com/wf%20a%2Fb');
    });

    it('shares one budget between the URL, the headers and the payload of an alert (renderAlert)', () => {
      const big = `{% assign s = "0123456789abcdef" %}{% for i in (1..13) %}{% assign s = s | append: s %}{% endfor %}{{ s }}`; // 128 KiB
      const config = {
        webhook: { url: 'https://hooks.example.com/x', headers: { 'X-A': big, 'X-B': big }, timeoutMs: 1000 },
        payload: { template: { text: big } },
      };
      throwsTemplateError(() => renderAlert(config, context as never), /rendered payload is larger than 262144 bytes/);
      const rendered = renderAlert({ ...config, webhook: { ...config.webhook, headers: { 'X-A': big } }, payload: { template: { text: big.replace('1..13', '1..12') } } }, context as never);
      assert.equal(JSON.parse(rendered.body).text.length, 65_536, 'a header of 128 KiB and a payload of 64 KiB fit');
    });
  });

  describe('templateStrings', () => {
    it('lists every string of a JSON template with its path, for save-time checks', () => {
      assert.deepEqual([...templateStrings({ a: 'x', b: [1, 'y', { c: 'z' }], d: null, e: true })], [
        ['x', ['a']],
        ['y', ['b', 1]],
        ['z', ['b', 2, 'c']],
      ]);
      assert.deepEqual([...templateStrings('top')], [['top', []]]);
    });
  });
});
