/**
 * Galata configuration for the pgmagic UI tests.
 *
 * Uses Debian's chromium (`apt-get install chromium`) instead of a browser
 * downloaded by Playwright, which this project's CI cannot reach.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.PGMAGIC_UI_PORT || '8891';

module.exports = {
  ...baseConfig,
  testDir: './tests',
  outputDir: './test-results',
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    video: 'off',
    trace: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  },
  webServer: {
    command: 'jupyter lab --config jupyter_server_test_config.py',
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
