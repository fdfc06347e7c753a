import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/__tests__/**/*.spec.ts'],
    // Rows and the widget build DOM nodes; nothing needs a real browser.
    environment: 'jsdom',
    setupFiles: ['src/__tests__/setup.ts'],
    // Row times are local wall-clock times: pin the zone so they are exact.
    env: { TZ: 'UTC' }
  }
});
