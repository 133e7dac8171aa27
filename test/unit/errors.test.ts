import assert from 'node:assert/strict';
import { dependencyUnavailable } from '../../lib/errors';

describe('dependencyUnavailable', () => {
  const withCode = (code: unknown, message = 'x', extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { code, ...extra });

  it('recognises PostgreSQL down, restarting or full', () => {
    for (const code of ['57P01', '57P02', '57P03', '08006', '08001', '53300']) assert.ok(dependencyUnavailable(withCode(code, 'the database system is starting up')), code);
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN']) assert.ok(dependencyUnavailable(withCode(code)), code);
    assert.ok(dependencyUnavailable(new Error('Connection terminated unexpectedly')));
    assert.ok(dependencyUnavailable(new Error('timeout exceeded when trying to connect')));
    assert.ok(dependencyUnavailable(Object.assign(new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')]), {})));
  });

  it("recognises Temporal's gRPC unavailable, deadline and exhausted, also wrapped", () => {
    const grpc = (code: number) => withCode(code, `${code} UNAVAILABLE: No connection established`, { details: 'x', metadata: {} });
    for (const code of [4, 8, 14]) assert.ok(dependencyUnavailable(grpc(code)), String(code));
    const wrapped = Object.assign(new Error('Failed to start workflow'), { name: 'ServiceError', cause: grpc(14) });
    assert.ok(dependencyUnavailable(wrapped));
  });

  it('leaves every other error to be a 500', () => {
    for (const err of [new Error('boom'), new TypeError('x is undefined'), withCode('23505', 'duplicate key'), withCode('42P01', 'relation does not exist'), withCode(5, 'NOT_FOUND', { details: 'x' }), withCode(3, 'INVALID_ARGUMENT', { details: 'x' }), null, undefined, 'text']) {
      assert.equal(dependencyUnavailable(err), undefined, String((err as Error)?.message ?? err));
    }
  });
});
