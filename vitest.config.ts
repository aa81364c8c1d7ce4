import { defineConfig } from 'vitest/config';

// One runner for every workspace: package unit tests live in packages/*/test,
// cross-package tests (interop with ws, browser) in test/.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    teardownTimeout: 10_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
