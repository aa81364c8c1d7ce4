/** What the run happened on, and the limits it must respect (open files, ephemeral ports, CPUs). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** RLIMIT_NOFILE as Node sees it (Node raises its soft limit to the hard one at startup). */
export function fdLimit() {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line.trim().split(/\s+/)[3];
    return soft === 'unlimited' ? 1_000_000 : Number(soft);
  } catch {
    const soft = execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return soft === 'unlimited' ? 1_000_000 : Number(soft);
  }
}

/** How many ephemeral ports one source address has (ip_local_port_range). */
export function ephemeralPorts() {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return high - low + 1;
  } catch {
    return 16_384;
  }
}

function which(command) {
  try {
    return execFileSync('/bin/sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** "0-2,5" -> [0, 1, 2, 5] */
function parseCpuList(list) {
  const cpus = [];
  for (const part of list.split(',')) {
    const [from, to] = part.split('-').map(Number);
    for (let cpu = from; cpu <= (to ?? from); cpu++) cpus.push(cpu);
  }
  return cpus;
}

/**
 * Where the server and the load generator run: two different CPUs through `taskset -c` when
 * taskset exists and this process may use at least two CPUs; otherwise unpinned, with why.
 */
export function pinning(disabled) {
  const taskset = which('taskset');
  if (disabled) return { taskset: null, server: null, client: null, note: 'not pinned (--no-pin)' };
  if (taskset === null) {
    return {
      taskset: null,
      server: null,
      client: null,
      note: 'not pinned: taskset not found (install util-linux)',
    };
  }
  let allowed = [];
  try {
    const out = execFileSync(taskset, ['-pc', String(process.pid)], { encoding: 'utf8' });
    allowed = parseCpuList(out.split(':').pop().trim());
  } catch {
    allowed = [];
  }
  if (allowed.length < 2) {
    return {
      taskset: null,
      server: null,
      client: null,
      note: `not pinned: only ${allowed.length} CPU allowed`,
    };
  }
  return {
    taskset,
    server: allowed[0],
    client: allowed[1],
    note: `server on CPU ${allowed[0]}, load generator on CPU ${allowed[1]} (taskset -c)`,
  };
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}
