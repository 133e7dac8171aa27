'use strict';
/**
 * mocha's spec reporter, plus one plain (uncoloured) summary line printed last:
 *
 *   12 passed, 0 failed
 *   12 passed, 0 failed, 1 skipped     (only when tests were pending)
 *
 * A failed hook counts as a failure, as in mocha's own summary. CI reads this line.
 */
const Mocha = require('mocha');

const { Base, Spec } = Mocha.reporters;

class SummaryReporter extends Spec {
  epilogue(...args) {
    super.epilogue(...args);
    const { passes = 0, failures = 0, pending = 0 } = this.stats;
    Base.consoleLog(`${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}`);
  }
}

SummaryReporter.description = 'spec, then a last line "N passed, N failed"';
module.exports = SummaryReporter;
