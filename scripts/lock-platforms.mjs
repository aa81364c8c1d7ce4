#!/usr/bin/env node
// The npm registry reachable here does not serve every platform build of packages such as
// @rollup/rollup-*, @biomejs/cli-* and @turbo/*, so `npm install` leaves them out of
// package-lock.json and `npm ci` then refuses the lock as out of sync. This adds a lock entry
// for each missing optional platform package, with the os/cpu/libc it is for, so `npm ci`
// skips it on this platform exactly as it would with a complete lock.
// Run after `npm install` changes the lock: `npm run lock:platforms`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;

const OS = [
  'darwin',
  'win32',
  'android',
  'freebsd',
  'openbsd',
  'openharmony',
  'linux',
  'sunos',
  'aix',
];
const CPU = ['x64', 'arm64', 'arm', 'ia32', 'loong64', 'ppc64', 'riscv64', 's390x'];

function platformOf(name) {
  const tokens = name.split('/').pop().split('-');
  const os = tokens.includes('windows')
    ? 'win32'
    : (OS.find((candidate) => tokens.includes(candidate)) ?? null);
  const cpu =
    tokens.includes('64') && tokens.includes('darwin')
      ? 'x64'
      : (CPU.find((candidate) => tokens.includes(candidate)) ?? null);
  const libc = tokens.some((token) => token.startsWith('musl'))
    ? 'musl'
    : tokens.some((token) => token.startsWith('gnu'))
      ? 'glibc'
      : null;
  return { os, cpu, libc };
}

let added = 0;
for (const [path, meta] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const nested = path === '' ? `node_modules/${name}` : `${path}/node_modules/${name}`;
    if (packages[nested] || packages[`node_modules/${name}`]) continue;
    const { os, cpu, libc } = platformOf(name);
    if (os === null) continue; // not a platform build: a real missing dependency, leave it to npm
    const entry = { version, optional: true };
    if (meta.dev) entry.dev = true;
    entry.os = [os];
    if (cpu) entry.cpu = [cpu];
    if (libc) entry.libc = [libc];
    packages[`node_modules/${name}`] = entry;
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
lock.packages = sorted;
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platforms: ${added} platform package entr${added === 1 ? 'y' : 'ies'} added`);
