// Runs the interop tests with '@weft/core' replaced by ws itself: a check of
// the tests, not of weft. Every test must pass except those whose name holds
// "[weft-specific]" (deliberate differences from ws); skip them with
//   npx vitest run --config test/interop/vitest.vs-ws.config.ts -t '^(?!.*weft-specific)'
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  resolve: { alias: { '@weft/core': 'ws' } },
  test: {
    include: ['test/interop/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    teardownTimeout: 10_000,
  },
});
