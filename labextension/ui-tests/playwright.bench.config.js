/**
 * Galata configuration for the browser-in-the-loop benchmarks
 * (`benchmarks/bench_complete_browser.py` runs them; they are not tests).
 */
const config = require('./playwright.config.js');

module.exports = {
  ...config,
  testDir: './bench',
  testMatch: '*.bench.ts',
  outputDir: './test-results/bench',
  // Building a catalog snapshot of 20,000 tables, then hundreds of rounds.
  timeout: 30 * 60 * 1000
};
