/**
 * Request/response over the IPC channel of child_process.fork, both ends.
 *
 * The orchestrator (run.mjs) sends `{ id, type, args }`; the child answers `{ id, ok, result }`
 * or `{ id, ok: false, error }`. A child can also send unsolicited `{ event, data }` messages
 * (the server announces its port that way).
 */
import { fork } from 'node:child_process';

// ---- child side ---------------------------------------------------------------------------

/**
 * Answers the orchestrator's requests with `handlers[type](args)` (sync or async). The child
 * exits when the orchestrator goes away, so no process outlives a crashed run.
 */
export function serveRequests(handlers) {
  process.on('message', async (message) => {
    if (message === null || typeof message !== 'object' || message.id === undefined) return;
    const { id, type, args } = message;
    try {
      const handler = handlers[type];
      if (handler === undefined) throw new Error(`unknown request "${type}"`);
      const result = await handler(args ?? {});
      process.send({ id, ok: true, result: result ?? null });
    } catch (error) {
      process.send({ id, ok: false, error: String(error?.stack ?? error) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/** Sends an unsolicited event to the orchestrator. */
export function emitEvent(event, data) {
  process.send({ event, data });
}

/** Exit on a later tick, after the answer to the current request went out. */
export function exitSoon(code = 0) {
  setTimeout(() => process.exit(code), 20);
}

// ---- orchestrator side --------------------------------------------------------------------

const live = new Set();

/** Kills every child still alive (SIGKILL): used on exit and on signals. */
export function killAllChildren() {
  for (const child of live) child.kill('SIGKILL');
}

/** A forked role process (server or load generator) and the requests it answers. */
export class Child {
  #process;
  #nextId = 1;
  #pending = new Map();
  #events = new Map();
  #waiters = new Map();
  #exited = false;
  #exit;
  name;

  /**
   * @param {string} name for messages
   * @param {string} script path of the role script
   * @param {string[]} args its arguments
   * @param {{ env?: object, execArgv?: string[], core?: number | null, taskset?: string | null }} options
   */
  constructor(name, script, args, options = {}) {
    this.name = name;
    const nodeArgs = options.execArgv ?? [];
    const pinned = options.taskset && options.core !== null && options.core !== undefined;
    this.#process = fork(script, args, {
      // taskset execs node in place, so the pid, the IPC channel and signals stay the node's.
      execPath: pinned ? options.taskset : process.execPath,
      execArgv: pinned ? ['-c', String(options.core), process.execPath, ...nodeArgs] : nodeArgs,
      env: options.env ?? process.env,
      // A child's stdout goes to our stderr: stdout carries only the results table.
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    live.add(this.#process);
    this.#exit = new Promise((resolve) => {
      this.#process.on('exit', (code, signal) => {
        this.#exited = true;
        live.delete(this.#process);
        const reason = new Error(
          `${this.name} exited (${signal ?? `code ${code}`}) with requests outstanding`,
        );
        for (const { reject } of this.#pending.values()) reject(reason);
        this.#pending.clear();
        for (const list of this.#waiters.values()) for (const { reject } of list) reject(reason);
        this.#waiters.clear();
        resolve({ code, signal });
      });
    });
    this.#process.on('error', () => {});
    this.#process.on('message', (message) => this.#onMessage(message));
  }

  get pid() {
    return this.#process.pid;
  }

  #onMessage(message) {
    if (message?.event !== undefined) {
      const waiting = this.#waiters.get(message.event);
      if (waiting?.length) waiting.shift().resolve(message.data);
      else this.#events.set(message.event, message.data);
      return;
    }
    const pending = this.#pending.get(message?.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (message.ok) pending.resolve(message.result);
    else pending.reject(new Error(`${this.name}: ${message.error}`));
  }

  /** Waits for an unsolicited event (it may already have arrived). */
  event(name) {
    if (this.#events.has(name)) {
      const data = this.#events.get(name);
      this.#events.delete(name);
      return Promise.resolve(data);
    }
    if (this.#exited) return Promise.reject(new Error(`${this.name} is not running`));
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(name) ?? [];
      list.push({ resolve, reject });
      this.#waiters.set(name, list);
    });
  }

  /** Sends a request and resolves with the child's answer. */
  request(type, args = {}) {
    if (this.#exited) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#process.send({ id, type, args }, (error) => {
        if (error && this.#pending.delete(id)) reject(error);
      });
    });
  }

  /**
   * Asks the child to exit (so a --cpu-prof profile gets written), then SIGKILLs it after
   * `graceMs` if it is still there.
   */
  async stop(graceMs = 2000) {
    if (this.#exited) return;
    this.request('exit').catch(() => {});
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }
}
