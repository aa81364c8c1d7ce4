import type { Options } from 'tsup';

/** How every package builds: ESM + CJS + .d.ts for Node 20, one bundle per entry. */
export const libraryBuild: Options = {
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  // import.meta.url in the CJS build (core resolves optional modules with createRequire).
  shims: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
};
